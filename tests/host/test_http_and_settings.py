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
    assert function_key({"LOCAL_FUNCTION_KEY": "chosen"}).value == "chosen"
    first = function_key({}).value
    assert len(first) >= 24 and first != function_key({}).value


def test_a_kept_function_key_is_the_same_on_every_run_until_a_new_one_is_asked_for(tmp_path):
    path = tmp_path / "data" / "function-key"
    first = function_key({}, key_file=path)
    assert path.stat().st_mode & 0o077 == 0  # a secret: its owner's only
    assert function_key({}, key_file=path).value == first.value and "kept in" in first.source
    renewed = function_key({}, key_file=path, renew=True).value
    assert renewed != first.value and function_key({}, key_file=path).value == renewed
    assert function_key({"LOCAL_FUNCTION_KEY": "chosen"}, key_file=path).value == "chosen"  # the environment wins


@pytest.mark.parametrize("given", [{}, {"params": {"code": "wrong"}}, {"headers": {"x-functions-key": "wrong"}}])
def test_a_missing_or_wrong_key_is_a_json_401_that_says_where_the_key_is(start_host, given):
    host = start_host(run_queues=False)
    response = httpx.get(f"{host.url}/api/invocations", **given)
    assert response.status_code == 401 and response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    assert "x-functions-key" in error["message"] and "?code=" in error["message"] and "scripts/run" in error["message"]
    assert KEY not in response.text
    assert ("wrong" in error["message"]) == bool(given)


def test_a_browser_without_the_key_gets_a_small_page_with_the_hint(start_host):
    host = start_host(run_queues=False)
    response = httpx.get(f"{host.url}/api/invocations", params={"code": "stale"},
                         headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert response.status_code == 401 and response.headers["content-type"].startswith("text/html")
    assert "Function key needed" in response.text and "scripts/run" in response.text and KEY not in response.text


@pytest.mark.parametrize("method,path,status", [("GET", "/api/no-such-route", 404), ("GET", "/nothing/here", 404),
                                                ("DELETE", "/api/hello/ada", 405)])
def test_unknown_routes_and_methods_are_json(start_host, method, path, status):
    host = start_host(run_queues=False)
    response = httpx.request(method, f"{host.url}{path}")
    assert response.status_code == status and response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] in ("not_found", "method_not_allowed")
