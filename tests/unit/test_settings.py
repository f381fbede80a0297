"""Settings are read lazily, each on first use, and fail with one clear message naming the setting;
`problems()` checks them all at once, and a bad setting fails only the features that read it."""

import base64

import pytest

from devtools.keys import new_key_entry
from functions.settings import (
    DEFAULTS,
    FEATURES,
    Settings,
    SettingsError,
    features_affected,
    parse_encryption_keys,
    problems,
    reload_settings,
    settings,
)


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
        _ = settings().microsoft_client_secret
    assert [e.setting for e in problems()] == ["MICROSOFT_CLIENT_SECRET"]


MALFORMED = {
    "MICROSOFT_AUTHORITY": "login.microsoftonline.com", "GRAPH_BASE_URL": "graph.microsoft.com",
    "PUBLIC_BASE_URL": "ftp://x", "TOKEN_ENCRYPTION_KEYS": "k1:not-base64", "FILES_CONTAINER": "Bad_Name",
    "SYNC_TIME_BUDGET_SECONDS": "eight minutes", "SUBSCRIPTION_RENEWAL_WINDOW_HOURS": "nan", "FULL_RECONCILIATION_DAYS": "weekly",
    "SUBSCRIPTION_WRITES_PER_20S": "0", "DOWNLOAD_REDIRECT": "sometimes", "DOWNLOAD_INLINE_MAX_BYTES": "16 MB",
    "MAINTENANCE_SCHEDULE": "every 30 minutes",
}
# Free text by nature: any non-empty value is taken as given.
FREE_TEXT = {"MICROSOFT_CLIENT_ID", "MICROSOFT_CLIENT_SECRET", "ONEDRIVE_SCOPES", "ALLOWED_RETURN_URLS"}


def test_every_validated_setting_has_a_malformed_example():
    assert set(MALFORMED) | FREE_TEXT == set(DEFAULTS)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_setting_is_named_alone(environment, name):
    environment.setenv(name, MALFORMED[name])
    reload_settings()
    with pytest.raises(SettingsError, match=name):
        getattr(settings(), name.lower())
    [problem] = problems()
    assert problem.setting == name and name in str(problem)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_setting_fails_only_the_features_that_read_it(environment, name):
    environment.setenv(name, MALFORMED[name])
    reload_settings()
    [problem] = problems()
    for feature, names in FEATURES.items():
        assert (feature in features_affected(problem)) == (name in names)
        if name not in names:
            for other in names:  # every setting of an unaffected feature still reads
                getattr(settings(), other.lower())


def test_a_typo_in_a_download_setting_leaves_sign_in_working(environment):
    environment.setenv("DOWNLOAD_REDIRECT", "sometimes")
    reload_settings()
    assert settings().redirect_uri.endswith("/api/oauth/callback") and settings().token_encryption_keys
    assert features_affected(problems()[0]) == ["downloads"]


def test_problems_reads_the_mapping_it_is_given(environment):
    assert problems({"MICROSOFT_CLIENT_ID": "c", "MICROSOFT_CLIENT_SECRET": "s", "TOKEN_ENCRYPTION_KEYS": new_key_entry()}) == []
    assert Settings({"PUBLIC_BASE_URL": "https://x.example/"}).redirect_uri == "https://x.example/api/oauth/callback"


@pytest.mark.parametrize("schedule", ["0 */30 * * * *", "0 0 3 * * Mon-Fri", "00:05:00", "1.00:00:00", "0 5,35 * * * *"])
def test_valid_schedules_are_accepted(environment, schedule):
    environment.setenv("MAINTENANCE_SCHEDULE", schedule)
    assert problems() == []


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
