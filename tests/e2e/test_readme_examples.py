"""The README's examples run as written against `scripts/run`'s demo: every ```bash block marked
"README example: runs against scripts/run's demo", in order, after connecting the demo drive.

The only rewriting is what differs between `scripts/run` with its defaults and a stack on free
ports in a temporary folder: the ports, the `.azurite/` data folder, the storage connection
string, and the repository's paths (the examples run in an empty folder, not in the checkout)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import ROOT, Ports, RunningStack, launch, stop
from tests.e2e.test_whole_stack import connect, drive_of, wait_until_mirrored

MARKER = "<!-- README example: runs against scripts/run's demo -->"


def readme_examples() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(re.escape(MARKER) + r"\n```bash\n(.*?)\n```", text, flags=re.S)


def as_run_here(block: str, stack: RunningStack, data: Path) -> str:
    connection_string = re.search(r"Storage connection string: (\S+)", stack.text).group(1)
    replacements = {
        "http://localhost:7071": stack.app_url,
        "http://127.0.0.1:8090": stack.emulator_url,
        ".azurite/": f"{data}/",
        '"UseDevelopmentStorage=true"': f'"{connection_string}"',
        ".venv/bin/python docs/examples/": f"{sys.executable} {ROOT}/docs/examples/",
    }
    for written, here in replacements.items():
        block = block.replace(written, here)
    return block


def test_the_readme_has_the_examples_it_promises():
    blocks = readme_examples()
    assert len(blocks) >= 4
    joined = "\n".join(blocks)
    for promised in ("/api/connections/$ID/files", "Range:", "If-None-Match", "-X DELETE", "/api/health",
                     "consume_change_events.py", "/revoke-consent", "/faults", "/drive/seed"):
        assert promised in joined, promised


def test_the_readme_examples_run_as_written_against_the_demo(tmp_path):
    work, sandbox = tmp_path / "stack", tmp_path / "reader"
    work.mkdir()
    sandbox.mkdir()
    stack = launch(work, Ports.free(), key=None)  # the key as scripts/run keeps it, in the data folder
    try:
        connection_id = connect(stack)  # what the README asks first: open the connect URL, Accept
        wait_until_mirrored(stack, connection_id, "the initial sync")
        outputs = []
        for block in readme_examples():
            script = as_run_here(block, stack, work / "data")
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=sandbox, capture_output=True,
                                    text=True, timeout=120)
            assert result.returncode == 0, f"README example failed ({result.returncode}):\n{block}\n--- stdout\n" \
                                           f"{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
            outputs.append(result.stdout)
        api, disconnect, events, emulator = outputs[:4]
        assert (sandbox / "Welcome.txt").read_bytes() == b"Welcome to the OneDrive emulator.\n"
        assert (sandbox / "first-mib.jpg").stat().st_size == 1024 * 1024
        assert re.search(r"(^|\D)304\n", api) and '"status":"healthy"' in api
        assert disconnect.strip().endswith("204")
        assert re.search(r"\d+ events handled", events) and "created" in events
        assert "Large/" in "".join(drive_of(stack)) and '"ok":true' in emulator
    finally:
        stop(stack.process)
