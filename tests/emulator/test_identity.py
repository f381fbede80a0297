"""Sign-in against microsoft.md §1: PKCE, exact redirect, codes, client secret, refresh, errors."""

from __future__ import annotations

import base64
import re

import httpx
import pytest

from .helpers import REDIRECT_URI, SCOPES, authorize, get_code, pkce_pair, query_of, redeem, sign_in


def assert_token_error(response: httpx.Response, status: int, error: str, code: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}:")
    for part in ("Trace ID:", "Correlation ID:", "Timestamp:"):
        assert part in body["error_description"]
    assert {"timestamp", "trace_id", "correlation_id", "error_uri"} <= set(body)


def test_code_flow_with_pkce_returns_opaque_tokens(emulator, emulator_user):
    emulator.auto_consent = True
    verifier, challenge = pkce_pair()
    response = authorize(emulator, challenge)
    assert response.status_code == 302
    query = query_of(response.headers["location"])
    assert response.headers["location"].startswith(REDIRECT_URI + "?")
    assert query["state"] == "state-123"

    tokens = redeem(emulator, query["code"], verifier).json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3599 and tokens["ext_expires_in"] == 3599
    assert tokens["scope"].split() == ["Files.ReadWrite", "User.Read"]  # offline_access dropped
    assert "refresh_token" in tokens and "id_token" not in tokens
    assert tokens["access_token"].count(".") == 0  # opaque, not a JWT


def test_openid_scope_adds_an_id_token(emulator, emulator_user):
    tokens = sign_in(emulator, scope=SCOPES + " openid")
    claims = tokens["id_token"].split(".")[1]
    assert b"ada@example.com" in base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4))


def test_no_refresh_token_without_offline_access(emulator, emulator_user):
    assert "refresh_token" not in sign_in(emulator, scope="Files.ReadWrite User.Read")


def test_wrong_code_verifier_is_refused(emulator, emulator_user):
    code, _ = get_code(emulator)
    assert_token_error(redeem(emulator, code, "not-the-verifier"), 400, "invalid_grant", 50148)


def test_missing_code_verifier_is_refused(emulator, emulator_user):
    code, _ = get_code(emulator)
    assert_token_error(redeem(emulator, code, None), 400, "invalid_grant", 50148)


def test_token_redirect_uri_must_equal_the_authorize_one(emulator, emulator_user):
    code, verifier = get_code(emulator)
    response = redeem(emulator, code, verifier, redirect_uri=REDIRECT_URI + "/")
    assert_token_error(response, 400, "invalid_grant", 500112)


def test_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(emulator, emulator_user):
    emulator.redirect_uris = [REDIRECT_URI]
    _, challenge = pkce_pair()
    response = authorize(emulator, challenge, redirect_uri="http://localhost:7071/api/oauth/callback?x=1")
    assert response.status_code == 400 and "location" not in response.headers
    assert "AADSTS50011" in response.text
    assert authorize(emulator, challenge).status_code in (200, 302)


def test_codes_are_single_use(emulator, emulator_user):
    code, verifier = get_code(emulator)
    assert redeem(emulator, code, verifier).status_code == 200
    assert_token_error(redeem(emulator, code, verifier), 400, "invalid_grant", 54005)


def test_codes_expire(emulator, emulator_user):
    emulator.auth_code_lifetime = 0
    code, verifier = get_code(emulator)
    assert_token_error(redeem(emulator, code, verifier), 400, "invalid_grant", 70008)


def test_bad_client_secret_is_401_invalid_client(emulator, emulator_user):
    code, verifier = get_code(emulator)
    assert_token_error(redeem(emulator, code, verifier, client_secret="wrong"), 401, "invalid_client", 7000215)
    # The code was not consumed by the failed attempt.
    assert redeem(emulator, code, verifier).status_code == 200


def test_client_secret_by_http_basic(emulator, emulator_user):
    code, verifier = get_code(emulator)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier}
    url = f"{emulator.authority}/oauth2/v2.0/token"
    bad = httpx.post(url, data=form, auth=(emulator.client_id, "wrong"))
    assert_token_error(bad, 401, "invalid_client", 7000215)
    good = httpx.post(url, data=form, auth=(emulator.client_id, emulator.client_secret))
    assert good.status_code == 200, good.text


def test_refresh_rotates_and_old_token_still_works(emulator, emulator_user):
    first = sign_in(emulator)
    url = f"{emulator.authority}/oauth2/v2.0/token"
    form = {"grant_type": "refresh_token", "client_id": emulator.client_id, "client_secret": emulator.client_secret}
    second = httpx.post(url, data={**form, "refresh_token": first["refresh_token"]}).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    # Old refresh tokens are not revoked at once (microsoft.md §1).
    assert httpx.post(url, data={**form, "refresh_token": first["refresh_token"]}).status_code == 200
    narrowed = httpx.post(url, data={**form, "refresh_token": second["refresh_token"], "scope": "Files.ReadWrite"})
    assert narrowed.json()["scope"] == "Files.ReadWrite"
    widened = httpx.post(url, data={**form, "refresh_token": second["refresh_token"], "scope": "Files.ReadWrite.All"})
    assert widened.status_code == 400 and widened.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("breakage, code", [("revoke_consent", 70000), ("expire_refresh_tokens", 700082)])
def test_dead_refresh_tokens_give_invalid_grant(emulator, emulator_user, breakage, code):
    tokens = sign_in(emulator)
    getattr(emulator, breakage)(emulator_user)
    url = f"{emulator.authority}/oauth2/v2.0/token"
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": emulator.client_id,
        "client_secret": emulator.client_secret,
    }
    assert_token_error(httpx.post(url, data=form), 400, "invalid_grant", code)


def test_revoked_consent_kills_access_tokens(emulator, emulator_user):
    tokens = sign_in(emulator)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert httpx.get(f"{emulator.graph_base_url}/me", headers=headers).status_code == 200
    emulator.revoke_consent(emulator_user)
    response = httpx.get(f"{emulator.graph_base_url}/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_access_tokens_expire_after_their_lifetime(emulator, emulator_user):
    emulator.access_token_lifetime = 0
    tokens = sign_in(emulator)
    assert tokens["expires_in"] == 0
    response = httpx.get(f"{emulator.graph_base_url}/me/drive", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")
    error = response.json()["error"]
    assert error["code"] == "InvalidAuthenticationToken"
    assert error["message"] == "Access token has expired or is not yet valid."
    assert {"date", "request-id", "client-request-id"} <= set(error["innerError"])


def test_missing_token_is_401(emulator, emulator_user):
    response = httpx.get(f"{emulator.graph_base_url}/me")
    assert response.status_code == 401 and "www-authenticate" in response.headers


def test_retired_live_sdk_scopes_are_refused(emulator, emulator_user):
    emulator.auto_consent = True
    _, challenge = pkce_pair()
    response = authorize(emulator, challenge, scope="onedrive.readwrite offline_access")
    query = query_of(response.headers["location"])
    assert query["error"] == "invalid_scope" and query["state"] == "state-123"


def test_consent_page_lists_scopes_and_accounts_and_accept_returns_a_code(emulator, emulator_user):
    other = emulator.add_user("grace@example.com", "Grace Hopper")
    _, challenge = pkce_pair()
    page = authorize(emulator, challenge, login_hint="grace@example.com")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for text in ("Have full access to your files", "Maintain access to data", "Sign you in and read your profile",
                 "ada@example.com", "grace@example.com", "Accept", "Cancel", emulator.app_name):
        assert text in page.text
    request_id = re.search(r"name='request' value='([^']+)'", page.text).group(1)
    action = re.search(r"<form method='post' action='([^']+)'", page.text).group(1)
    response = httpx.post(action, data={"request": request_id, "user": other.id, "action": "accept"})
    assert response.status_code == 302
    assert "code" in query_of(response.headers["location"])


def test_denied_consent_redirects_with_access_denied_and_state(emulator, emulator_user):
    _, challenge = pkce_pair()
    page = authorize(emulator, challenge)
    request_id = re.search(r"name='request' value='([^']+)'", page.text).group(1)
    response = httpx.post(
        f"{emulator.authority}/oauth2/v2.0/consent", data={"request": request_id, "action": "deny"}
    )
    location = response.headers["location"]
    assert response.status_code == 302 and location.startswith(REDIRECT_URI)
    assert "error_description=The%20user%20has%20denied%20access" in location
    assert query_of(location)["error"] == "access_denied" and query_of(location)["state"] == "state-123"


def test_openid_configuration(emulator):
    body = httpx.get(f"{emulator.base_url}/consumers/v2.0/.well-known/openid-configuration").json()
    assert body["authorization_endpoint"] == f"{emulator.authority}/oauth2/v2.0/authorize"
    assert body["token_endpoint"] == f"{emulator.authority}/oauth2/v2.0/token"
    assert "9188040d-6c67-4c5b-b112-36a304b66dad" in body["issuer"]
