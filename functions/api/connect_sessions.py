"""POST /api/connect-sessions: the product's backend asks for a Connect OneDrive link for one user.

Body `{"ref", "return_to"?, "login_hint"?, "prompt"?, "relink"?, "choose"?}`; answer 201
`{"url", "expiresAt"}`. The rules live in signin/sessions.py.
"""

from __future__ import annotations

from typing import Any

from functions.api.support import ApiError, bad_request, json_object

MAX_BODY_BYTES = 16 * 1024
_FIELDS = {"ref", "return_to", "login_hint", "prompt", "relink", "choose"}


def create(body: bytes) -> dict[str, Any]:
    from functions.signin import sessions

    payload = json_object(body, limit=MAX_BODY_BYTES)
    unknown = sorted(set(payload) - _FIELDS)
    if unknown:
        raise bad_request(f"Unknown field {unknown[0][:64]!r}; expected ref, return_to, login_hint, prompt, relink, choose.",
                          "unknown_field")
    texts = {}
    for name in ("ref", "return_to", "login_hint", "prompt"):
        value = payload.get(name, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise bad_request(f"{name} must be a string.", f"invalid_{name}")
        texts[name] = value
    relink, choose = (_flag(payload, name) for name in ("relink", "choose"))
    try:
        created = sessions.create(sessions.Session(relink=relink, choose=choose, **texts))
    except sessions.Invalid as refused:
        raise ApiError(400, refused.code, str(refused)) from None
    return created.to_public()


def _flag(payload: dict[str, Any], name: str) -> bool:
    value = payload.get(name, False)
    if not isinstance(value, bool):
        raise bad_request(f"{name} must be true or false.", f"invalid_{name}")
    return value
