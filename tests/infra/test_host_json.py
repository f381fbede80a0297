"""host.json is valid for the Functions host and agrees with the infrastructure and the code."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

from tests.infra.contract import ROOT
from tests.infra.test_infra_contract import infra

HOST = json.loads((ROOT / "host.json").read_text())
TOP_LEVEL_KEYS = {
    "version", "functionTimeout", "extensionBundle", "extensions", "logging", "aggregator", "healthMonitor",
    "concurrency", "singleton", "watchDirectories", "watchFiles", "managedDependency", "retry", "telemetryMode",
    "functions", "customHandler",
}
QUEUE_KEYS = {"maxPollingInterval": "timespan", "visibilityTimeout": "timespan", "batchSize": int,
              "maxDequeueCount": int, "newBatchThreshold": int, "messageEncoding": str}
LOG_LEVELS = {"Trace", "Debug", "Information", "Warning", "Error", "Critical", "None"}
TIMESPAN = re.compile(r"^(\d+\.)?\d{2}:\d{2}:\d{2}(\.\d+)?$")


def seconds(timespan: str) -> float:
    days, hours, minutes, secs = re.fullmatch(r"(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)", timespan).groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(secs)


def test_host_json_has_only_known_keys_and_valid_values():
    assert HOST["version"] == "2.0"
    assert set(HOST) <= TOP_LEVEL_KEYS, set(HOST) - TOP_LEVEL_KEYS
    bundle = HOST["extensionBundle"]
    assert bundle["id"] == "Microsoft.Azure.Functions.ExtensionBundle"
    assert re.fullmatch(r"\[\d+\.\*, \d+\.\d+\.\d+\)", bundle["version"])
    assert TIMESPAN.match(HOST["functionTimeout"])
    queues = HOST["extensions"]["queues"]
    for key, value in queues.items():
        kind = QUEUE_KEYS[key]
        assert TIMESPAN.match(value) if kind == "timespan" else isinstance(value, kind), (key, value)
    assert 1 <= queues["batchSize"] <= 32 and queues["maxDequeueCount"] >= 1
    assert queues.get("messageEncoding", "base64") in ("base64", "none")
    assert set(HOST["logging"]["logLevel"].values()) <= LOG_LEVELS
    assert HOST.get("telemetryMode", "ApplicationInsights") in ("ApplicationInsights", "OpenTelemetry")


def test_routes_live_under_the_prefix_the_deployment_prints():
    prefix = HOST.get("extensions", {}).get("http", {}).get("routePrefix", "api")
    assert infra().outputs()["OAUTH_REDIRECT_URI"].endswith(f"/{prefix}/oauth/callback")


def test_a_sync_checkpoints_before_the_host_stops_it():
    budget = infra().files["main.bicep"]["parameters"]["syncTimeBudgetSeconds"]["default"]
    # Leave room to save the checkpoint and enqueue the continuation.
    assert budget <= seconds(HOST["functionTimeout"]) * 0.9


def test_the_deployment_package_holds_the_app_and_not_the_dev_tree():
    patterns = [line.strip() for line in (ROOT / ".funcignore").read_text().splitlines() if line.strip() and not line.startswith("#")]

    def ignored(path: str) -> bool:
        parts = Path(path).parts
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(parts[0] + ("/" if len(parts) > 1 else ""), p) for p in patterns)

    for needed in ("function_app.py", "host.json", "requirements.txt", "functions/telemetry.py", "functions/storage/__init__.py"):
        assert not ignored(needed), needed
    for dev in ("tests/unit/test_telemetry.py", "devtools/keys.py", ".venv/bin/python", "node_modules/azurite/package.json",
                "local.settings.json", "infra/main.bicep"):
        assert ignored(dev), dev
