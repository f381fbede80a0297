"""devtools/stack.py (what scripts/run runs): local settings it writes, and real-Microsoft mode."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading

import httpx
import pytest

from devtools.serving import free_port
from devtools.stack import ROOT, ensure_local_settings
from functions.settings import DEFAULTS, parse_encryption_keys
from tests.fixtures.waiting import eventually


def test_local_settings_are_created_from_the_example_with_a_fresh_key(tmp_path):
    path = tmp_path / "local.settings.json"
    assert ensure_local_settings(path) is True
    values = json.loads(path.read_text())["Values"]
    example = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    assert set(values) == set(example)
    [key] = parse_encryption_keys(values["TOKEN_ENCRYPTION_KEYS"])
    assert len(key.key) == 32
    assert path.stat().st_mode & 0o077 == 0  # a secret: readable by its owner only

    assert ensure_local_settings(path) is False  # a second run keeps it
    assert json.loads(path.read_text())["Values"]["TOKEN_ENCRYPTION_KEYS"] == values["TOKEN_ENCRYPTION_KEYS"]


def test_a_placeholder_key_is_replaced_and_other_values_kept(tmp_path):
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"Values": {"TOKEN_ENCRYPTION_KEYS": "replace-me: ...", "FILES_CONTAINER": "mine"}}))
    assert ensure_local_settings(path) is True
    values = json.loads(path.read_text())["Values"]
    parse_encryption_keys(values["TOKEN_ENCRYPTION_KEYS"])
    assert values["FILES_CONTAINER"] == "mine"


def test_with_a_real_app_registration_the_stack_skips_the_emulator_and_sends_sign_in_to_microsoft(tmp_path):
    settings = json.loads((ROOT / "local.settings.example.json").read_text())
    settings["Values"].update(MICROSOFT_CLIENT_ID="11111111-2222-3333-4444-555555555555", MICROSOFT_CLIENT_SECRET="s")
    (tmp_path / "local.settings.json").write_text(json.dumps(settings))
    environment = {k: v for k, v in os.environ.items() if k not in DEFAULTS and not k.startswith("AzureWebJobsStorage")}
    environment["LOCAL_FUNCTION_KEY"] = "k"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.stack", "--port", str(port), "--data", str(tmp_path / "data"),
         "--storage-ports", ",".join(str(free_port()) for _ in range(3)),
         "--settings", str(tmp_path / "local.settings.json")],
        cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(iter(process.stdout.readline, "")), daemon=True).start()
    try:
        eventually(lambda: "Everything is running." in "".join(output) or process.poll() is not None, timeout=90)
        text = "".join(output)
        assert "Microsoft:           the real service" in text, text
        assert "Change the drive" not in text
        assert not (tmp_path / "data" / "emulator.log").exists()

        printed = re.search(r"Connect a OneDrive:\s+(\S+)", text).group(1)
        assert printed == f"http://localhost:{port}/api/status/connect?code=k"
        session = httpx.get(printed)  # a fresh connect session on every visit
        assert session.status_code == 302 and "/api/connect?session=" in session.headers["location"]
        redirect = httpx.get(session.headers["location"])
        assert redirect.status_code == 302
        assert re.match(r"https://login\.microsoftonline\.com/consumers/oauth2/v2\.0/authorize\?.*client_id=11111111-2222",
                        redirect.headers["location"])
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, "".join(output)
    assert "Stopped." in "".join(output)


def test_a_port_held_only_by_time_wait_connections_of_a_stopped_run_is_free():
    """Restarting right after Ctrl-C: the old run's connections linger in TIME-WAIT for a minute."""
    import socket

    from devtools.stack import _port_free

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn listens
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server side closes first: its end goes to TIME-WAIT
    client.close()
    assert not _port_free(port)  # still listening: in use
    server.close()
    assert _port_free(port)


def _run_stack(tmp_path, settings_text: str, timeout: float = 60) -> subprocess.CompletedProcess:
    path = tmp_path / "local.settings.json"
    path.write_text(settings_text)
    environment = {k: v for k, v in os.environ.items() if k not in DEFAULTS and not k.startswith("AzureWebJobsStorage")}
    return subprocess.run(
        [sys.executable, "-m", "devtools.stack", "--port", str(free_port()), "--data", str(tmp_path / "data"),
         "--storage-ports", ",".join(str(free_port()) for _ in range(3)), "--settings", str(path)],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout)


def _example_with(**values: str) -> str:
    settings = json.loads((ROOT / "local.settings.example.json").read_text())
    settings["Values"].update(values)
    return json.dumps(settings)


@pytest.mark.parametrize("name,value", [
    ("TOKEN_ENCRYPTION_KEYS", "k1:c2hvcnQ="), ("SYNC_TIME_BUDGET_SECONDS", "eight minutes"),
    ("DOWNLOAD_REDIRECT", "sometimes"), ("MAINTENANCE_SCHEDULE", "every 30 minutes"), ("FILES_CONTAINER", "My_Files"),
    ("PUBLIC_BASE_URL", "localhost:7071"),
])
def test_a_malformed_setting_stops_the_start_naming_the_setting_and_the_file(tmp_path, name, value):
    result = _run_stack(tmp_path, _example_with(**{name: value}))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Everything is running" not in output and "nothing was started" in output
    [line] = [line for line in output.splitlines() if name in line]
    assert str(tmp_path / "local.settings.json") in line and ("must" in line or "entry" in line)
    if name == "TOKEN_ENCRYPTION_KEYS":
        assert value not in output  # a secret is never echoed
    assert not (tmp_path / "data" / "azurite.log").exists()  # refused before anything started


def test_invalid_json_in_local_settings_names_the_file(tmp_path):
    result = _run_stack(tmp_path, '{"Values": {"FILES_CONTAINER": "x",}}')
    assert result.returncode == 1
    assert f"{tmp_path / 'local.settings.json'} is not valid JSON" in result.stderr, result.stderr
