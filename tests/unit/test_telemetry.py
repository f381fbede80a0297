"""Telemetry: ids as structured fields, secrets masked, and the real Azure Monitor exporter wired in
only when Application Insights is configured."""

from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from devtools.keys import new_key_entry
from devtools.serving import ServerThread
from functions import telemetry

ROOT = Path(__file__).resolve().parents[2]

ACCESS_TOKEN = "EwBwA8l6BAAUO9chh8cJscQLmU+LSWpbnr0vmwwAAbNkXYZ1234567890abcdefghijKLMNOP+/qrstu=="
REFRESH_TOKEN = "M.C534_BAY.0.U.-CgSecretRefreshTokenValue*abc!def$ghi123456"
SECRETS = {
    "bearer header": f"Authorization: Bearer {ACCESS_TOKEN}",
    "opaque access token": f"token was {ACCESS_TOKEN}",
    "refresh token in JSON": json.dumps({"token_type": "Bearer", "refresh_token": REFRESH_TOKEN}),
    "bare refresh token": f"stored {REFRESH_TOKEN}",
    "oauth code in a callback URL": "GET /api/oauth/callback?code=M.C507_SN1.2.U.0a1b2c3d-secret-code&state=xyz",
    "client secret in a form": "grant_type=refresh_token&client_secret=Abc~8Q~secretvalue123&client_id=1",
    "function key": "GET https://func.example/api/connections?code=hostkeyAbC123==",
    "SAS signature": "https://st.blob.core.windows.net/onedrive-files/c/a.txt?sv=2024-08-04&se=2030&sr=b&sp=r&sig=AbCd%2Bsecret%3D",
    "JWT": "id_token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXNlY3JldA",
    "download URL": "following https://public.bn.files.1drv.com/y4mSecretPreauthenticatedPath/file.txt?download",
    "key ring": f"TOKEN_ENCRYPTION_KEYS={new_key_entry('k1')}",
    "client state": "{'clientState': 'a-random-client-state-secret'}",
}
SECRET_PARTS = ["O9chh8cJscQLmU", "SecretRefreshTokenValue", "0a1b2c3d-secret-code", "secretvalue123", "hostkeyAbC123",
                "AbCd%2Bsecret", "c2lnbmF0dXJlLXNlY3JldA", "y4mSecretPreauthenticatedPath", "a-random-client-state-secret"]


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_redact_masks_every_token_like_value(kind):
    text = SECRETS[kind]
    masked = telemetry.redact(text)
    assert "[redacted]" in masked
    assert not any(part in masked for part in SECRET_PARTS), masked
    if kind == "key ring":
        assert new_key_entry("k1").split(":")[1][:20] not in masked and "k1:[redacted]" in masked


def test_redact_keeps_what_diagnosis_needs():
    text = ('sync 0f9c7d3e-6a1b-5c2d-8e9f-0a1b2c3d4e5f item D4648F06C91D9D3D!54927 hash AAAAAAAAAAAAAAAAAAAAAAAAAAA= '
            'graph error {"error": {"code": "itemNotFound", "message": "gone"}} path Photos/2024/a.jpg 429 retry 2.5 s')
    assert telemetry.redact(text) == text


@pytest.fixture
def captured():
    """A logger whose handler carries the telemetry filter, and the records that reach it."""
    records: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger("functions.test_telemetry")
    handler = Capture()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    telemetry.install_filter(logger)
    yield logger, records
    logger.removeHandler(handler)
    logger.propagate = True


def test_records_carry_context_ids_as_fields_and_an_explicit_extra_wins(captured):
    logger, records = captured
    with telemetry.context(connection_id="conn-1", invocation_id="inv-1"):
        with telemetry.context(subscription_id="sub-1"):
            logger.info("renewed")
        logger.info("synced", extra={"connection_id": "conn-2"})
    logger.info("outside")
    renewed, synced, outside = records
    assert (renewed.connection_id, renewed.subscription_id, renewed.invocation_id) == ("conn-1", "sub-1", "inv-1")
    assert synced.connection_id == "conn-2" and not hasattr(synced, "subscription_id")
    assert not any(hasattr(outside, field) for field in telemetry.CONTEXT_FIELDS)
    with pytest.raises(TypeError):
        telemetry.context(user_email="x@example.com").__enter__()


def test_secrets_in_arguments_extras_and_exceptions_never_reach_a_handler(captured):
    logger, records = captured
    logger.warning("token refresh failed for %s: %s", "conn-1", SECRETS["refresh token in JSON"])
    logger.info("callback", extra={"url": SECRETS["oauth code in a callback URL"], "connection_id": "conn-1"})
    try:
        raise RuntimeError(f"upstream said {SECRETS['bearer header']}")
    except RuntimeError:
        logger.exception("request failed")
    try:
        raise ValueError("harmless")
    except ValueError:
        logger.exception("kept")
    args_record, extra_record, secret_exception, plain_exception = records
    rendered = [logging.Formatter("%(message)s %(url)s" if hasattr(r, "url") else "%(message)s").format(r) for r in records]
    assert not any(part in text for text in rendered for part in SECRET_PARTS), rendered
    assert "conn-1" in args_record.getMessage() and "[redacted]" in args_record.getMessage()
    assert extra_record.connection_id == "conn-1" and "code=[redacted]" in extra_record.url
    assert secret_exception.exc_info is None and "RuntimeError" in secret_exception.getMessage()
    assert plain_exception.exc_info is not None  # untouched when there's nothing to mask


def test_configure_is_a_no_op_without_a_connection_string(monkeypatch):
    monkeypatch.delenv(telemetry.CONNECTION_STRING, raising=False)
    root = logging.getLogger()
    before = [list(h.filters) for h in root.handlers], logging.getLogger("httpx").level
    assert telemetry.configure() is False
    assert ([list(h.filters) for h in root.handlers], logging.getLogger("httpx").level) == before


def test_configured_app_exports_masked_logs_with_ids_to_application_insights():
    """The real exporter, configured by importing function_app, posts to a local ingestion endpoint."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    received: list[dict] = []
    raw: list[bytes] = []
    arrived = threading.Event()

    async def track(request):
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        raw.append(body)
        envelopes = json.loads(body)
        received.extend(envelopes if isinstance(envelopes, list) else [envelopes])
        arrived.set()
        return JSONResponse({"itemsReceived": len(received), "itemsAccepted": len(received), "errors": []})

    server = ServerThread(Starlette(routes=[Route("/v2.1/track", track, methods=["POST"]), Route("/v2/track", track, methods=["POST"])]))
    script = textwrap.dedent(f"""
        import logging, time
        import function_app
        from functions import telemetry
        log = logging.getLogger("functions.tokens.vault")
        log.setLevel(logging.INFO)
        with telemetry.context(invocation_id="inv-42", subscription_id="sub-7"):
            log.warning("refresh failed: %s", {SECRETS['refresh token in JSON']!r}, extra={{"connection_id": "conn-9"}})
        from opentelemetry._logs import get_logger_provider
        get_logger_provider().force_flush()
        print("flushed")
    """)
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("APPLICATIONINSIGHTS_", "OTEL_"))}
    with server:
        environment.update({
            "APPLICATIONINSIGHTS_CONNECTION_STRING":
                f"InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint={server.url}",
            # Keep everything on this machine: no statsbeat to Microsoft's endpoints.
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        })
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "flushed" in result.stdout, result.stderr[-3000:]
        assert arrived.wait(timeout=30), "no telemetry arrived"
    messages = [e for e in received if e.get("data", {}).get("baseType") == "MessageData"]
    [message] = [m["data"]["baseData"] for m in messages if "refresh failed" in m["data"]["baseData"]["message"]]
    assert "[redacted]" in message["message"]
    assert message["properties"]["connection_id"] == "conn-9"
    assert message["properties"]["invocation_id"] == "inv-42" and message["properties"]["subscription_id"] == "sub-7"
    assert not any(part.encode() in body for body in raw for part in SECRET_PARTS)
    assert time.monotonic() - started < 60


def test_a_malformed_log_call_does_not_raise_through_the_filter(captured):
    logger, records = captured
    logger.info("two placeholders %s %s", "only one")  # the filter must not raise into the caller
    assert len(records) == 1
