"""The browser-binding cookie's attributes follow PUBLIC_BASE_URL's scheme."""

import pytest

from devtools.keys import new_key_entry
from functions.settings import reload_settings
from functions.signin import flow


@pytest.fixture
def public_base_url(monkeypatch):
    def use(url: str) -> None:
        for name, value in {"PUBLIC_BASE_URL": url, "MICROSOFT_CLIENT_ID": "c", "MICROSOFT_CLIENT_SECRET": "s",
                            "TOKEN_ENCRYPTION_KEYS": new_key_entry("k1")}.items():
            monkeypatch.setenv(name, value)
        reload_settings()

    yield use
    reload_settings()


def test_the_cookie_is_secure_over_https(public_base_url):
    public_base_url("https://mirror.example")
    started = flow.Started("https://login.example/authorize", "onedrive_signin_abc", "value")
    attributes = [a.strip() for a in started.set_cookie_header().split(";")]
    assert attributes[0] == "onedrive_signin_abc=value"
    assert {"Secure", "HttpOnly", "SameSite=Lax", "Path=/api/oauth", "Max-Age=600"} <= set(attributes)
    assert "Secure" in flow.clear_cookie_header("onedrive_signin_abc")


def test_the_cookie_is_not_marked_secure_over_plain_http(public_base_url):
    public_base_url("http://localhost:7071")
    started = flow.Started("http://login.example/authorize", "onedrive_signin_abc", "value")
    assert "Secure" not in started.set_cookie_header()


def test_cookie_headers_are_parsed_leniently():
    assert flow.parse_cookies('a=1; broken; b="2"; a=3;  c = 4 ') == {"a": "1", "b": "2", "c": "4"}
    assert flow.parse_cookies(None) == {}
