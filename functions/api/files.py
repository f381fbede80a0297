"""The product's view of a connection's mirror: paged listings and downloads.

The mirror is the blobs `{FILES_CONTAINER}/{connection_id}/{path in the drive}` with metadata
`item_id`, `etag` and `quickxorhash`, written by the sync worker. Every path a request names is
checked before it becomes a blob name, so no request reaches outside its connection's prefix.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from functions import storage
from functions.api import downloads
from functions.api.support import ApiError, bad_request, decode_cursor, encode_cursor, parse_limit, require_connection
from functions.errors import Conflict, NotFound, StorageError

log = logging.getLogger(__name__)

DEFAULT_PAGE = 100
MAX_PAGE = 1000
_MAX_BLOB_NAME = 1024
_MAX_SEGMENTS = 254  # Blob Storage refuses names with more path segments (with the connection id's)


# ---- paths -----------------------------------------------------------------------------------

def _unsafe_reason(text: str) -> str | None:
    if "\\" in text:
        return "backslashes are not allowed"
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in text):
        return "control characters are not allowed"
    lowered = text.lower()
    if "%2f" in lowered or "%5c" in lowered:
        # An encoded separator some host left undecoded (ASP.NET keeps %2F), or a name holding these
        # characters: a path can't tell them apart; /content?path= can.
        return "encoded slashes are not allowed (for a name holding '%2F' or '%5C', use /content?path=)"
    return None


def validate_path(path: str, *, request_url: str | None = None, connection_id: str = "") -> str:
    """The drive path a download names, or a 400. `request_url` is checked too: hosts differ in
    what they decode before routing, and the raw form must not smuggle a separator or `..`."""
    if not path:
        raise bad_request("A file path is required.", "invalid_path")
    reason = _unsafe_reason(path)
    segments = path.split("/")
    if reason is None and any(segment == "" for segment in segments):
        reason = "empty path segments (leading, trailing or double slashes) are not allowed"
    if reason is None and any(unquote(segment) in (".", "..") for segment in segments):
        reason = "'.' and '..' segments are not allowed"
    if reason is None and request_url:
        raw = _raw_file_path(request_url, connection_id)
        if raw is not None:
            reason = _unsafe_reason(raw) or (
                "'.' and '..' segments are not allowed" if any(unquote(s) in (".", "..") for s in raw.split("/")) else None
            )
    if reason is None and (len(connection_id) + 1 + len(path) > _MAX_BLOB_NAME or len(segments) >= _MAX_SEGMENTS):
        reason = "the path is too long"
    if reason:
        raise bad_request(f"Invalid file path: {reason}.", "invalid_path")
    return path


def validate_exact_path(path: str, *, connection_id: str = "") -> str:
    """A path from a query parameter (`?path=`), which every host decodes exactly once: the text is
    the name itself, so a literal `%2F` or `%2e%2e` in a name is just characters. Still refused:
    what the mirror can never hold (backslashes, control characters, empty, `.` or `..` segments)."""
    if not path:
        raise bad_request("A file path is required.", "invalid_path")
    segments = path.split("/")
    reason = None
    if "\\" in path:
        reason = "backslashes are not allowed"
    elif any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in path):
        reason = "control characters are not allowed"
    elif any(segment == "" for segment in segments):
        reason = "empty path segments (leading, trailing or double slashes) are not allowed"
    elif any(segment in (".", "..") for segment in segments):
        reason = "'.' and '..' segments are not allowed"
    elif len(connection_id) + 1 + len(path) > _MAX_BLOB_NAME or len(segments) >= _MAX_SEGMENTS:
        reason = "the path is too long"
    if reason:
        raise bad_request(f"Invalid file path: {reason}.", "invalid_path")
    return path


def _raw_file_path(url: str, connection_id: str) -> str | None:
    # Not urlsplit: it raises on a netloc like `[::1` (a Host header is caller input).
    after_scheme = url.split("://", 1)[-1]
    raw_path = "/" + after_scheme.split("/", 1)[1] if "/" in after_scheme else ""
    raw_path = raw_path.split("?", 1)[0].split("#", 1)[0]
    marker = f"/connections/{connection_id}/files/"
    at = raw_path.find(marker)
    return raw_path[at + len(marker):] if at >= 0 else None


def validate_prefix(prefix: str) -> str:
    """A listing prefix: any start of a path (may end with '/'), or empty for everything."""
    if not prefix:
        return ""
    reason = _unsafe_reason(prefix)
    segments = prefix.split("/")
    inner = segments[:-1] if segments[-1] == "" else segments
    if reason is None and any(segment == "" for segment in inner):
        reason = "empty path segments (leading or double slashes) are not allowed"
    if reason is None and any(segment in (".", "..") for segment in segments):
        reason = "'.' and '..' segments are not allowed"
    if reason is None and len(prefix) > _MAX_BLOB_NAME:
        reason = "the prefix is too long"
    if reason:
        raise bad_request(f"Invalid prefix: {reason}.", "invalid_prefix")
    return prefix


# ---- listing ---------------------------------------------------------------------------------

def list_files(connection_id: str, *, prefix: str | None, cursor: str | None, limit: str | None) -> dict[str, Any]:
    """One page of the mirror under `prefix`, ordered by path; `nextCursor` continues it."""
    require_connection(connection_id)
    prefix = validate_prefix(prefix or "")
    page_size = parse_limit(limit, default=DEFAULT_PAGE, maximum=MAX_PAGE)
    scope = {"c": connection_id, "p": prefix}
    marker = decode_cursor(cursor, scope=scope).get("m") if cursor else None
    base = storage.mirror_prefix(connection_id)
    try:
        blobs, next_marker = storage.blobs.files().page(base + prefix, page_size=page_size, marker=marker)
    except StorageError as error:
        if error.status == 400 and marker:
            raise bad_request("cursor is not valid for this listing; start again without it.", "invalid_cursor") from None
        raise
    return {
        "files": [_listed(blob, base) for blob in blobs],
        "nextCursor": encode_cursor({**scope, "m": next_marker}) if next_marker else None,
    }


def _listed(blob: storage.blobs.BlobEntry, base: str) -> dict[str, Any]:
    metadata = blob.metadata
    item_id = metadata.get("item_id")
    return {
        "path": blob.name[len(base):],
        "size": blob.size,
        "quickXorHash": metadata.get("quickxorhash") or None,
        "lastModified": _iso(blob.last_modified),
        "itemId": unquote(item_id) if item_id else None,
        "etag": entity_tag(metadata, blob.etag),
    }


def entity_tag(metadata: Mapping[str, str], blob_etag: str) -> str:
    """The file's HTTP ETag: its content hash when the drive gave one, so a re-copy of the same
    bytes keeps clients' caches valid; else the blob's own ETag."""
    quick_xor = metadata.get("quickxorhash")
    if quick_xor:
        return f'"qx-{quick_xor}"'
    return blob_etag if blob_etag.startswith('"') else f'"{blob_etag}"'


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# ---- download --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Download:
    status: int
    headers: dict[str, str]
    body: bytes = b""


_ATTEMPTS = 3


def download(connection_id: str, path: str, *, request_headers: Mapping[str, str], request_url: str | None = None,
             exact: bool = False) -> Download:
    """Answer a download: bytes (whole or a range), 304, 416, 413 or a redirect to a signed URL.
    `request_headers` has lowercase names."""
    from functions.settings import settings

    require_connection(connection_id)
    if exact:  # `path` came from a query parameter: decoded once, unambiguous
        path = validate_exact_path(path, connection_id=connection_id)
    else:
        path = validate_path(path, request_url=request_url, connection_id=connection_id)
    container = storage.blobs.files()
    name = storage.mirror_blob(connection_id, path)
    config = settings()
    for _attempt in range(_ATTEMPTS):
        properties = container.probe(name)
        if properties is None:
            raise ApiError(404, "file_not_found", "No such file in this connection's mirror.")
        stored = downloads.StoredFile(
            path=path,
            size=properties.size,
            etag=entity_tag(properties.metadata, properties.etag),
            last_modified=properties.last_modified,
        )
        plan = downloads.plan(stored, request_headers, redirect_mode=config.download_redirect,
                              inline_max_bytes=config.download_inline_max_bytes)
        if plan.redirect:
            from functions.api import signed_urls

            location = signed_urls.read_url(name, content_type=stored.content_type,
                                            content_disposition=stored.content_disposition)
            return Download(302, {**plan.headers, "Location": location})
        if plan.status == 413:
            raise ApiError(413, "file_too_large_for_inline_download",
                           f"This file is larger than {config.download_inline_max_bytes} bytes: request it in parts "
                           "with a Range header, or enable DOWNLOAD_REDIRECT.")
        if plan.body is None:
            return Download(plan.status, plan.headers)
        try:
            # Bound to the ETag we planned with: a file replaced meanwhile is planned again.
            body = container.read(name, offset=plan.body.start, length=plan.body.length, etag=properties.etag)
        except Conflict:
            log.info("file changed during a download; planning again", extra={"connection_id": connection_id})
            continue
        except NotFound:
            raise ApiError(404, "file_not_found", "No such file in this connection's mirror.") from None
        return Download(plan.status, plan.headers, body)
    raise ApiError(409, "file_changing", "The file kept changing during the download; try again.")
