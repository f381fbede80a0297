"""HTTP functions under /api with function keys; local.settings.json and host.json reading."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from devtools.host.config import HostOptions, apply_local_settings, parse_timespan, read_local_settings
from devtools.host.keys import function_key
from tests.host.conftest import KEY


def test_anonymous_and_function_level_routes(start_host):
    host = start_host(run_queues=False)
    assert httpx.get(f"{host.url}/api/hello/ada").text == "hello ada"
    assert httpx.get(f"{host.url}/api/invocations").status_code == 401
    assert httpx.get(f"{host.url}/api/invocations", params={"code": "wrong"}).status_code == 401
    assert httpx.get(f"{host.url}/api/invocations", params={"code": KEY}).status_code == 200
    assert httpx.get(f"{host.url}/api/invocations", headers={"x-functions-key": KEY}).json() == []
    assert httpx.get(f"{host.url}/admin/host/status").json()["state"] == "Running"


def test_async_http_functions_are_awaited(start_host):
    host = start_host(run_queues=False)
    assert httpx.get(f"{host.url}/api/hello-async/ada").text == "hello ada, asynchronously"


def test_failing_http_function_is_a_500_and_the_host_keeps_serving(start_host, caplog):
    host = start_host(run_queues=False)
    response = httpx.get(f"{host.url}/api/boom")
    assert response.status_code == 500
    assert "boom" not in response.text  # no internals in the reply...
    assert "boom: an HTTP function failing on purpose" in caplog.text  # ...but in the log
    assert httpx.get(f"{host.url}/api/hello/still").text == "hello still"


def test_local_settings_fill_the_environment_without_overriding_it(tmp_path):
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": {"A": "from file", "B": "from file", "N": 3},
                                "Host": {"LocalHttpPort": 7080}}))
    environ = {"A": "from environment"}
    settings = read_local_settings(path)
    assert apply_local_settings(settings, environ) == ["B", "N"]
    assert environ == {"A": "from environment", "B": "from file", "N": "3"}
    assert settings.local_http_port == 7080


def test_missing_local_settings_is_no_settings_and_encrypted_is_a_clear_error(tmp_path):
    assert read_local_settings(tmp_path / "absent.json").values == {}
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": True, "Values": {}}))
    with pytest.raises(ValueError, match="encrypted"):
        read_local_settings(path)


def test_host_json_of_the_repository_is_read():
    options = HostOptions.from_host_json()
    repository = json.loads(Path("host.json").read_text())["extensions"]["queues"]
    assert options.queues.batch_size == repository["batchSize"]
    assert options.queues.max_dequeue_count == repository["maxDequeueCount"]
    assert options.queues.visibility_timeout == parse_timespan(repository["visibilityTimeout"])
    assert parse_timespan("1.02:03:04.5") == 93784.5


def test_function_key_comes_from_the_environment_or_is_random():
    assert function_key({"LOCAL_FUNCTION_KEY": "chosen"}) == ("chosen", False)
    first, generated = function_key({})
    assert generated and len(first) >= 24 and first != function_key({})[0]
