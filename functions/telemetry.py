"""Telemetry in Azure: OpenTelemetry to Application Insights, ids on every log record, secrets masked.

`configure()` runs only when APPLICATIONINSIGHTS_CONNECTION_STRING is set (function_app.py checks),
so tests and local runs see the app's logs untouched. It must never break the app: any failure is
logged and the app runs without the exporter. Only the standard library is imported at module level.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
from collections.abc import Iterator
from typing import Any

CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
AUTHENTICATION_STRING = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"

# Ids a log record carries as structured fields (customDimensions in Application Insights).
CONTEXT_FIELDS = ("connection_id", "subscription_id", "invocation_id")

log = logging.getLogger(__name__)

_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("telemetry_context", default={})  # noqa: B039 (never mutated: set() replaces it)


@contextlib.contextmanager
def context(**ids: str | None) -> Iterator[None]:
    """Attach ids to every log record written inside the block: `with context(connection_id=...)`."""
    unknown = set(ids) - set(CONTEXT_FIELDS)
    if unknown:
        raise TypeError(f"unknown telemetry fields: {sorted(unknown)}")
    token = _context.set({**_context.get(), **{k: str(v) for k, v in ids.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, str]:
    return dict(_context.get())


# -- redaction: the last line of defence; code must not log secrets in the first place ------------

_MASK = "[redacted]"
_SECRET_KEYS = r"access_token|refresh_token|id_token|client_secret|code_verifier|client_?state|password|tempauth"
_PATTERNS = [
    # Authorization headers and bearer tokens, in any spelling.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/!*$]{16,}=*"), r"\1 " + _MASK),
    # key=value in URLs and forms: OAuth codes, function keys (`code=`), SAS signatures, secrets.
    (re.compile(rf"(?i)(?<![A-Za-z0-9_])((?:{_SECRET_KEYS}|code|sig|token)=)[^&\s\"'<>]+"), r"\1" + _MASK),
    # The same keys in JSON or Python reprs: "refresh_token": "..." (a Graph error "code" is not a secret).
    (re.compile(rf"(?i)([\"']?(?:{_SECRET_KEYS})[\"']?\s*[:=]\s*[\"'])[^\"']+"), r"\1" + _MASK),
    # JWTs, and opaque Microsoft account tokens: access "EwB..." and refresh "M.C5..." shapes.
    (re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"), _MASK),
    (re.compile(r"\bEw[A-Za-z0-9][A-Za-z0-9+/=_\-]{40,}"), _MASK),
    (re.compile(r"\bM\.[A-Z]\d+_[A-Za-z0-9]+\.[^\s\"',;]{20,}"), _MASK),
    # OneDrive pre-authenticated download URLs carry their credential in the path.
    (re.compile(r"(?i)(https?://[^\s/\"']*\.1drv\.com/)[^\s\"'<>]+"), r"\1" + _MASK),
    # Entries of the token key ring: "<id>:<base64 of 32 bytes>".
    (re.compile(r"\b([A-Za-z0-9]{1,40}):[A-Za-z0-9+/]{43}="), r"\1:" + _MASK),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class TelemetryFilter(logging.Filter):
    """On a handler: adds the context ids as record attributes (an explicit `extra` wins) and masks
    anything token-like in the message, its arguments, string extras and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        for field, value in _context.get().items():
            if not hasattr(record, field):
                setattr(record, field, value)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed call is logging's to report, at emit
            message = None
        if message is not None and (cleaned := redact(message)) != message:
            record.msg, record.args = cleaned, None
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_ATTRIBUTES and isinstance(value, str):
                setattr(record, name, redact(value))
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            cleaned = redact(text)
            if cleaned != text:
                # The exception's own text holds a secret: keep only the masked rendering.
                record.exc_info, record.exc_text = None, cleaned
                record.msg = f"{record.msg}\n{cleaned}"
        return True


def install_filter(logger: logging.Logger | None = None) -> TelemetryFilter:
    """Put the filter on every handler of `logger` (root by default) that doesn't have it yet."""
    logger = logger or logging.getLogger()
    installed = TelemetryFilter()
    for handler in logger.handlers:
        if not any(isinstance(f, TelemetryFilter) for f in handler.filters):
            handler.addFilter(installed)
    return installed


# -- Azure Monitor ---------------------------------------------------------------------------------

# Loggers that write full request URLs at INFO: OAuth callbacks, function keys, download URLs.
_NOISY_URL_LOGGERS = ("httpx", "httpcore", "azure.core.pipeline.policies.http_logging_policy")


def _credential(authentication_string: str) -> Any:
    """`Authorization=AAD;ClientId=<id>` (the Functions host's format) -> a managed identity credential."""
    fields = dict(part.split("=", 1) for part in authentication_string.split(";") if "=" in part)
    if fields.get("Authorization", "").upper() != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    client_id = fields.get("ClientId")
    return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()


def configure() -> bool:
    """Send logs and traces to Application Insights; True when the exporter is running."""
    connection_string = os.environ.get(CONNECTION_STRING, "").strip()
    if not connection_string:
        return False
    for name in _NOISY_URL_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Functions run on App Service: its detector reads the site from the environment, while the
    # distro's default VM detector would probe the instance metadata endpoint on every cold start.
    os.environ.setdefault("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "azure_app_service")
    try:
        from azure.monitor.opentelemetry import configure_azure_monitor

        configure_azure_monitor(
            connection_string=connection_string,
            credential=_credential(os.environ.get(AUTHENTICATION_STRING, "")),
            # Our loggers only: the host already reports its own and the SDKs' records.
            logger_name="functions",
            # HTTP client spans would record full URLs, and download URLs are credentials.
            instrumentation_options={name: {"enabled": False} for name in ("requests", "urllib", "urllib3", "httpx", "httpx2")},
        )
    except Exception:  # noqa: BLE001 - telemetry must never stop the app from loading
        log.warning("Azure Monitor telemetry could not be configured; continuing without it", exc_info=True)
        install_filter()
        return False
    install_filter()
    install_filter(logging.getLogger("functions"))
    return True
