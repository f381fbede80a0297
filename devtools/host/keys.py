"""The local function key: what FUNCTION-level routes require (header x-functions-key or ?code=).

`LOCAL_FUNCTION_KEY` chooses it; otherwise it is kept in a file with the local data (the stack's
`--data` folder), so a status tab left open keeps working across restarts."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

ENV = "LOCAL_FUNCTION_KEY"
FILE_NAME = "function-key"


@dataclass(frozen=True)
class FunctionKey:
    value: str
    source: str  # for the startup line: where it came from, and how to change it


def function_key(environ: dict[str, str] | None = None, key_file: str | os.PathLike[str] | None = None,
                 renew: bool = False) -> FunctionKey:
    """The key from LOCAL_FUNCTION_KEY, else the one kept in `key_file` (created, or replaced when
    `renew`), else a fresh one for this run only."""
    environ = os.environ if environ is None else environ
    given = environ.get(ENV, "").strip()
    if given:
        return FunctionKey(given, f"from {ENV}")
    if key_file is None:
        return FunctionKey(secrets.token_urlsafe(24), f"new for this run; set {ENV} to choose it")
    path = Path(key_file)
    kept = "" if renew or not path.exists() else path.read_text().strip()
    if kept:
        return FunctionKey(kept, f"kept in {path}; --new-key replaces it")
    value = secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(value + "\n")
    return FunctionKey(value, f"new, kept in {path}; --new-key replaces it")
