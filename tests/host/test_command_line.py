"""`python -m devtools.host` as a developer runs it: a separate process, a printed key, logs on
stderr; a failing function and a poison message are visible and the host keeps serving."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from devtools.serving import free_port
from tests.fixtures.waiting import eventually
from tests.host import sample_app
from tests.host.conftest import raw_queue

ROOT = Path(__file__).resolve().parents[2]


class Output:
    """A child process's stream, collected by a thread so the test can wait for lines."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=lambda: self.lines.extend(iter(stream.readline, "")), daemon=True)
        self.thread.start()

    @property
    def text(self) -> str:
        return "".join(self.lines)


def test_command_line_host_prints_its_key_logs_failures_and_keeps_serving(storage, tmp_path):
    host_json = json.loads((ROOT / "host.json").read_text())
    host_json["extensions"]["queues"].update(visibilityTimeout="00:00:00", maxDequeueCount=2, maxPollingInterval="00:00:01")
    (tmp_path / "host.json").write_text(json.dumps(host_json))
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {"SAMPLE_SCHEDULE": "0 0 0 1 1 *"}}))
    port = free_port()
    environment = {**os.environ, "AzureWebJobsStorage": storage.connection_string}
    environment.pop("LOCAL_FUNCTION_KEY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.host", "--app", "tests.host.sample_app:app", "--port", str(port),
         "--host-json", str(tmp_path / "host.json"), "--settings", str(tmp_path / "local.settings.json")],
        cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = Output(process.stdout), Output(process.stderr)
    try:
        key = eventually(lambda: re.search(r"Function key .*: (\S+)", stdout.text), timeout=30,
                         message=f"the printed key; stderr: {stderr.text}").group(1)
        url = f"http://127.0.0.1:{port}"
        assert f"list_invocations: [GET] {url}/api/invocations (function key)" in stdout.text
        assert "tick: timer 0 0 0 1 1 * (runs on startup)" in stdout.text

        raw_queue(sample_app.WORK_QUEUE).send_message(base64.b64encode(b'{"fail": true}').decode())
        eventually(lambda: raw_queue(sample_app.WORK_QUEUE + "-poison").peek_messages(), timeout=20, message="poisoned")
        eventually(lambda: "moved to poison queue host-test-work-poison after 2 attempts" in stderr.text, timeout=5)
        assert "Executed 'Functions.work' (Failed" in stderr.text
        assert "RuntimeError: work: failing on purpose" in stderr.text

        assert httpx.get(f"{url}/api/boom").status_code == 500
        invocations = httpx.get(f"{url}/api/invocations", params={"code": key}).json()
        assert [i["dequeue_count"] for i in invocations if i["function"] == "work"] == [1, 2]
        assert any(i["function"] == "tick" for i in invocations)  # from local.settings.json's schedule
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0, stderr.text
