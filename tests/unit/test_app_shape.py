"""The app as Azure will index it: its functions, triggers, routes and auth levels."""

import json
import os
import subprocess
import sys
from pathlib import Path

from functions import storage
from tests.fixtures.app import function_specs

ROOT = Path(__file__).resolve().parents[2]

# name -> (trigger, details). Each trigger module adds its functions here.
EXPECTED: dict[str, tuple[str, dict]] = {
    "connect": ("httpTrigger", {"route": "connect", "authLevel": "ANONYMOUS", "methods": ["GET"]}),
    "oauth_callback": ("httpTrigger", {"route": "oauth/callback", "authLevel": "ANONYMOUS", "methods": ["GET"]}),
    "notifications": ("httpTrigger", {"route": "notifications", "authLevel": "ANONYMOUS", "methods": ["POST"]}),
    "lifecycle": ("httpTrigger", {"route": "lifecycle", "authLevel": "ANONYMOUS", "methods": ["POST"]}),
    "maintenance_timer": ("timerTrigger", {"schedule": "0 */30 * * * *", "runOnStartup": False}),
    "maintenance_worker": ("queueTrigger", {"queueName": "maintenance-tasks", "connection": "AzureWebJobsStorage"}),
    "sync_worker": ("queueTrigger", {"queueName": "sync-requests", "connection": "AzureWebJobsStorage"}),
    "create_connect_session": ("httpTrigger", {"route": "connect-sessions", "authLevel": "FUNCTION", "methods": ["POST"]}),
    "list_connections": ("httpTrigger", {"route": "connections", "authLevel": "FUNCTION", "methods": ["GET"]}),
    "get_connection": ("httpTrigger", {"route": "connections/{id}", "authLevel": "FUNCTION", "methods": ["GET"]}),
    "delete_connection": ("httpTrigger", {"route": "connections/{id}", "authLevel": "FUNCTION", "methods": ["DELETE"]}),
    "list_files": ("httpTrigger", {"route": "connections/{id}/files", "authLevel": "FUNCTION", "methods": ["GET"]}),
    "download_file": ("httpTrigger", {"route": "connections/{id}/files/{*path}", "authLevel": "FUNCTION", "methods": ["GET"]}),
    "download_content": ("httpTrigger", {"route": "connections/{id}/content", "authLevel": "FUNCTION", "methods": ["GET"]}),
    "openapi_document": ("httpTrigger", {"route": "openapi.json", "authLevel": "ANONYMOUS", "methods": ["GET"]}),
    "status_overview": ("httpTrigger", {"route": "status", "authLevel": "FUNCTION", "methods": ["GET"]}),
    "status_mirror": ("httpTrigger", {"route": "status/connections/{id}", "authLevel": "FUNCTION", "methods": ["GET"]}),
    "get_selection": ("httpTrigger", {"route": "connections/{id}/selection", "authLevel": "FUNCTION", "methods": ["GET"]}),
    "put_selection": ("httpTrigger", {"route": "connections/{id}/selection", "authLevel": "FUNCTION", "methods": ["PUT"]}),
    "create_picker_session": ("httpTrigger", {"route": "connections/{id}/picker-sessions", "authLevel": "FUNCTION",
                                              "methods": ["POST"]}),
    "picker_page": ("httpTrigger", {"route": "picker", "authLevel": "ANONYMOUS", "methods": ["GET"]}),
    "picker_form": ("httpTrigger", {"route": "picker", "authLevel": "ANONYMOUS", "methods": ["POST"]}),
    # Anonymous: health probes carry no key; it shows no secret (functions/health.py).
    "health": ("httpTrigger", {"route": "health", "authLevel": "ANONYMOUS", "methods": ["GET"]}),
    "status_connect": ("httpTrigger", {"route": "status/connect", "authLevel": "FUNCTION", "methods": ["GET"]}),
}


def test_importing_the_app_needs_no_settings():
    environment = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    result = subprocess.run([sys.executable, "-c", "import function_app; print(len(function_app.app.get_functions()))"],
                            cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) == len(EXPECTED)


def test_functions_match_the_design():
    found = {spec.name: spec for spec in function_specs()}
    assert sorted(found) == sorted(EXPECTED)
    for name, (trigger, details) in EXPECTED.items():
        spec = found[name]
        assert spec.trigger == trigger, name
        for key, value in details.items():
            assert spec.binding.get(key) == value, (name, key, spec.binding.get(key))


def test_queue_triggers_read_the_app_connection_and_known_queues():
    for spec in function_specs():
        if spec.trigger == "queueTrigger":
            assert spec.binding["connection"] == storage.CONNECTION
            assert spec.queue_name in storage.Queues.TRIGGERED


def test_host_json_sets_queue_semantics_on_purpose():
    host = json.loads((ROOT / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"]["version"] == "[4.*, 5.0.0)"
    queues = host["extensions"]["queues"]
    assert queues["messageEncoding"] == "base64"
    assert 1 <= queues["batchSize"] <= 32
    assert queues["maxDequeueCount"] >= 2
    assert "functionTimeout" in host
