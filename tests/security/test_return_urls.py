"""Open redirects through `return_to`: the bypasses of issue 16 #2 and their generated friends,
against the matcher and over HTTP at connect-session creation."""

from __future__ import annotations

import itertools

import pytest

from functions import return_urls
from functions.settings import SettingsError, reload_settings, settings
from tests.fixtures.connected import create_session
from tests.security.report import tried

EVIL = ["evil.example", "127.0.0.2", "evil.example:80", "[::2]"]

# Each template is a way to make a parser see `{evil}` while a naive check sees `{allowed}`.
TEMPLATES = [
    "{scheme}://{allowed}:@{evil}/", "{scheme}://{allowed}:80@{evil}/x", "{scheme}://{allowed}@{evil}/",
    "{scheme}://{allowed}:\t@{evil}/", "{scheme}://{allowed}:\n@{evil}/", "{scheme}://{allowed}\r@{evil}/",
    "{scheme}://{allowed}:1 @{evil}/", "{scheme}://{allowed}%40{evil}/", "{scheme}://{allowed}\uff20{evil}/",
    "{scheme}://{allowed}:\uff20{evil}/", "{scheme}://{allowed}\\@{evil}/", "{scheme}://{allowed}\\.{evil}/",
    "{scheme}://{evil}/.{allowed}/", "{scheme}://{evil}?.{allowed}/", "{scheme}://{evil}#.{allowed}/",
    "{scheme}://{evil}\\.{allowed}/", "{scheme}://{evil}/{allowed}", "{scheme}://{allowed}.{evil}/",
    "{scheme}://{evil}%2F.{allowed}/", "{scheme}://{evil}%23.{allowed}/", "{scheme}://{allowed}:{evil}/",
    "//{evil}/", "///{evil}/", "{scheme}:/{evil}/", "{scheme}:{evil}/", "javascript://{allowed}/%0aalert(1)",
    "data:text/html,{allowed}", "{scheme}://{allowed}:99999/", "{scheme}://{allowed}:-1/", "{scheme}://{allowed}:0x50/",
    "{scheme}://{allowed}:1]/", "{scheme}://[{allowed}", "{scheme}://{allowed}\u3002{evil}/", "{scheme}://{allowed}\x00.{evil}/",
    " {scheme}://{evil}/", "{scheme}://{allowed}.:@{evil}/",
]

# pattern, hosts a bypass pretends to be, URLs that must pass, URLs that must not (beyond the templates)
CASES = [
    ("http://localhost:*", ["localhost", "localhost:3000"],
     ["http://localhost/", "http://localhost:3000/cb?x=1#top", "HTTP://LOCALHOST:8080/Back"],
     ["https://localhost/", "http://localhost.:3000/", "http://127.0.0.1/", "http://localhost:3000/a/../b",
      "http://localhost:3000/%2e%2e/b", "http://localhost:/x", "http://[::1/", "http://localhost:1]/"]),
    ("https://*.example.com/*", ["a.example.com", "example.com", "www.example.com"],
     ["https://a.example.com/", "https://a.b.example.com/x?y", "https://A.Example.COM/z"],
     ["https://example.com/", "https://evil.com/.example.com/", "https://evil.com?.example.com/",
      "https://evil.com#.example.com/", "https://evilexample.com/", "https://a.example.com.evil.com/",
      "http://a.example.com/", "https://a.example.com:8443/", "https://a.example.com./"]),
    ("https://app.example.com/back/*", ["app.example.com", "app.example.com:443"],
     ["https://app.example.com/back/", "https://app.example.com:443/back/done?connection=x", "https://app.example.com/back/a/b"],
     ["https://app.example.com/", "https://app.example.com/backdoor", "https://app.example.com/back/../admin",
      "https://app.example.com/back/%2E%2E/admin", "https://app.example.com/other/back/", "https://app.example.com:444/back/x"]),
    ("http://[::1]:*", ["[::1]", "[::1]:8080"], ["http://[::1]:8080/x", "http://[::1]/"], ["http://[::2]:8080/", "http://[::1/"]),
]


def generated_bypasses(allowed_hosts: list[str], scheme: str) -> list[str]:
    return [template.format(scheme=scheme, allowed=allowed, evil=evil)
            for template, allowed, evil in itertools.product(TEMPLATES, allowed_hosts, EVIL)]


@pytest.mark.parametrize(("pattern", "hosts", "good", "bad"), CASES, ids=[case[0] for case in CASES])
def test_only_the_exact_origin_and_a_matching_path_pass(pattern, hosts, good, bad):
    patterns = return_urls.parse_patterns(pattern)
    bypasses = generated_bypasses(hosts, pattern.split(":", 1)[0])
    passed = [url for url in bypasses + bad if return_urls.allowed(url, patterns)]
    assert passed == []
    assert [url for url in good if not return_urls.allowed(url, patterns)] == []
    tried(f"return_to bypasses against {pattern}", len(bypasses) + len(bad))


def test_the_bypasses_of_issue_16_are_refused_at_session_creation_over_http(app_server, monkeypatch):
    monkeypatch.setenv("ALLOWED_RETURN_URLS", "http://localhost:* https://*.example.com/*")
    reload_settings()
    issue = ["http://localhost:@evil.example/", "http://localhost:80@evil.example/x", "http://127.0.0.1:@evil.example/",
             "http://localhost:\t@evil.example/", "https://evil.com/.example.com/", "https://evil.com?.example.com/",
             "https://evil.com#.example.com/", "http://[::1", "http://localhost:1]/", "http://localhost\uff20evil.example/"]
    for url in issue:
        response = create_session(app_server.url, ref="u", return_to=url)
        assert response.status_code == 400, (url, response.text)
        assert response.json()["error"]["code"] == "invalid_return_to"
    assert create_session(app_server.url, ref="u", return_to="https://app.example.com/x").status_code == 201
    tried("issue 16 return_to bypasses over HTTP", len(issue))


def test_an_empty_setting_allows_nothing_and_an_unset_one_the_local_default(app_settings, monkeypatch):
    monkeypatch.setenv("ALLOWED_RETURN_URLS", "")
    reload_settings()
    assert not settings().return_url_allowed("http://localhost:3000/")
    monkeypatch.delenv("ALLOWED_RETURN_URLS")
    reload_settings()
    assert settings().return_url_allowed("http://localhost:3000/")
    reload_settings()


@pytest.mark.parametrize("pattern", ["https://*", "https://a*.example.com/", "https://user@app.example.com/",
                                     "https://app.example.com/?q", "ftp://app.example.com/", "app.example.com",
                                     "https://app.example.com:/", "https://app.example.com:99999/", "https://*.*.com/"])
def test_a_pattern_that_cannot_be_compared_exactly_is_a_settings_error(app_settings, pattern, monkeypatch):
    monkeypatch.setenv("ALLOWED_RETURN_URLS", f"http://localhost:* {pattern}")
    reload_settings()
    with pytest.raises(SettingsError, match="ALLOWED_RETURN_URLS"):
        _ = settings().allowed_return_urls  # settings are checked when first read
    reload_settings()
