"""Settings are read lazily, validated once, and fail with one clear message naming the setting."""

import base64

import pytest

from devtools.keys import new_key_entry
from functions.settings import DEFAULTS, SettingsError, parse_encryption_keys, reload_settings, settings


@pytest.fixture
def environment(monkeypatch):
    for name in DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MICROSOFT_CLIENT_ID", "client")
    monkeypatch.setenv("MICROSOFT_CLIENT_SECRET", "secret")
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEYS", new_key_entry("k1"))
    reload_settings()
    yield monkeypatch
    reload_settings()


def test_defaults_follow_the_design(environment):
    s = settings()
    assert s.graph_base_url == "https://graph.microsoft.com/v1.0"
    assert s.microsoft_authority == "https://login.microsoftonline.com/consumers"
    assert s.onedrive_scopes == ("Files.ReadWrite", "offline_access", "User.Read")
    assert s.redirect_uri == "http://localhost:7071/api/oauth/callback"
    assert s.notification_url == "http://localhost:7071/api/notifications"
    assert s.files_container == "onedrive-files"


def test_missing_required_setting_is_named(environment):
    environment.delenv("MICROSOFT_CLIENT_SECRET")
    reload_settings()
    with pytest.raises(SettingsError, match="MICROSOFT_CLIENT_SECRET"):
        settings()


@pytest.mark.parametrize("name,value", [("GRAPH_BASE_URL", "graph.microsoft.com"), ("PUBLIC_BASE_URL", "ftp://x"),
                                        ("SYNC_TIME_BUDGET_SECONDS", "soon"), ("FILES_CONTAINER", "Bad_Name")])
def test_malformed_setting_is_named(environment, name, value):
    environment.setenv(name, value)
    reload_settings()
    with pytest.raises(SettingsError, match=name):
        settings()


def test_key_ring_errors_never_echo_the_key():
    secret = base64.b64encode(b"x" * 31).decode()
    with pytest.raises(SettingsError) as raised:
        parse_encryption_keys(f"k1:{secret}")
    assert secret not in str(raised.value)


def test_key_ring_keeps_order_and_rejects_duplicates():
    first, second = new_key_entry("new"), new_key_entry("old")
    assert [k.key_id for k in parse_encryption_keys(f"{first},{second}")] == ["new", "old"]
    with pytest.raises(SettingsError, match="unique"):
        parse_encryption_keys(f"{first},{new_key_entry('new')}")


def test_return_urls_are_matched_against_the_allow_list(environment):
    environment.setenv("ALLOWED_RETURN_URLS", "https://product.example/* http://localhost:*")
    reload_settings()
    s = settings()
    assert s.return_url_allowed("https://product.example/settings?x=1")
    assert s.return_url_allowed("http://localhost:3000/done")
    assert not s.return_url_allowed("https://evil.example/https://product.example/")
    assert not s.return_url_allowed("javascript:alert(1)")
    assert not s.return_url_allowed("https://product.example.evil.example/")
