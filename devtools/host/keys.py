"""The local function key: what FUNCTION-level routes require (header x-functions-key or ?code=)."""

from __future__ import annotations

import os
import secrets

ENV = "LOCAL_FUNCTION_KEY"


def function_key(environ: dict[str, str] | None = None) -> tuple[str, bool]:
    """(key, generated): the key from LOCAL_FUNCTION_KEY, or a fresh random one."""
    environ = os.environ if environ is None else environ
    given = environ.get(ENV, "").strip()
    if given:
        return given, False
    return secrets.token_urlsafe(24), True
