"""What a download answers, decided from the stored file and the request's headers.

Plain HTTP semantics (RFC 9110: conditional requests, byte ranges, Content-Disposition per
RFC 6266/5987) without any I/O, so each rule is tested directly. `files_api` does the I/O.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import quote


class RedirectMode:
    LARGE = "large"  # redirect when the body would exceed the inline limit
    ALWAYS = "always"
    NEVER = "never"


@dataclass(frozen=True)
class StoredFile:
    path: str  # inside the drive, e.g. "Photos/2024/a.jpg"
    size: int
    etag: str  # a quoted strong entity tag
    last_modified: datetime

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def content_type(self) -> str:
        guessed, _ = mimetypes.guess_type(self.name, strict=False)
        return guessed or "application/octet-stream"

    @property
    def content_disposition(self) -> str:
        return content_disposition(self.name)


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True)
class DownloadPlan:
    status: int  # 200, 206, 302, 304, 413, 416
    body: ByteRange | None = None  # bytes of the file to send; None for no body
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def redirect(self) -> bool:
        return self.status == 302


def plan(file: StoredFile, request_headers: Mapping[str, str], *, redirect_mode: str, inline_max_bytes: int) -> DownloadPlan:
    """Decide status, byte range and headers. `request_headers` has lowercase names."""
    validators = {"ETag": file.etag, "Last-Modified": http_date(file.last_modified), "Cache-Control": "private, no-cache"}
    if _not_modified(file, request_headers):
        return DownloadPlan(304, headers=validators)

    byte_range = None
    if "range" in request_headers and _if_range_holds(file, request_headers.get("if-range")):
        byte_range = parse_range(request_headers["range"], file.size)
        if byte_range is UNSATISFIABLE:
            return DownloadPlan(416, headers={"Content-Range": f"bytes */{file.size}", "Accept-Ranges": "bytes", **validators})

    wanted = byte_range or (ByteRange(0, file.size - 1) if file.size else None)
    wanted_bytes = wanted.length if wanted else 0
    if redirect_mode == RedirectMode.ALWAYS or (redirect_mode == RedirectMode.LARGE and wanted_bytes > inline_max_bytes):
        # The signed URL serves the bytes (and the Range, which clients resend on redirects).
        return DownloadPlan(302, headers={"Cache-Control": "no-store"})

    headers = {
        **validators,
        "Content-Type": file.content_type,
        "Content-Disposition": file.content_disposition,
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
    }
    if byte_range is None:
        if wanted_bytes > inline_max_bytes:
            # A function response is held in memory whole; without a redirect, only ranges fit.
            return DownloadPlan(413, headers={"Accept-Ranges": "bytes", **validators})
        return DownloadPlan(200, wanted, headers)
    if byte_range.length > inline_max_bytes:
        # RFC 9110 §15.3.7: a server may send less than asked; Content-Range says what came.
        byte_range = ByteRange(byte_range.start, byte_range.start + inline_max_bytes - 1)
    headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{file.size}"
    return DownloadPlan(206, byte_range, headers)


UNSATISFIABLE = ByteRange(-1, -2)
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def parse_range(value: str, size: int) -> ByteRange | None:
    """One byte range of a file of `size` bytes; None to ignore the header (malformed, several
    ranges, another unit: RFC 9110 lets a server ignore those); UNSATISFIABLE for 416."""
    match = _RANGE.match(value)
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:  # suffix: the last N bytes
        suffix = _position(last)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return ByteRange(max(0, size - suffix), size - 1)
    start = _position(first)
    end = _position(last) if last else size - 1
    if last and end < start:
        return None  # invalid syntax: ignore
    if start >= size:
        return UNSATISFIABLE
    return ByteRange(start, min(end, size - 1))


# Beyond any file's size: a longer run of digits means the same, and int() refuses over 4,300 digits.
_FAR = 10**18


def _position(digits: str) -> int:
    return int(digits) if len(digits) <= 18 else _FAR


_ENTITY_TAG = re.compile(r'\s*(W/)?("[^"]*")\s*(?:,|$)')


def _entity_tags(value: str) -> list[tuple[bool, str]]:
    return [(bool(m.group(1)), m.group(2)) for m in _ENTITY_TAG.finditer(value)]


def _not_modified(file: StoredFile, headers: Mapping[str, str]) -> bool:
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        # Weak comparison (RFC 9110 §13.1.2); If-Modified-Since is then ignored.
        return if_none_match.strip() == "*" or any(tag == file.etag for _, tag in _entity_tags(if_none_match))
    since = _parse_http_date(headers.get("if-modified-since"))
    return since is not None and file.last_modified.replace(microsecond=0) <= since


def _if_range_holds(file: StoredFile, if_range: str | None) -> bool:
    if if_range is None:
        return True
    tags = _entity_tags(if_range)
    if tags:
        weak, tag = tags[0]
        return not weak and tag == file.etag  # strong comparison only
    since = _parse_http_date(if_range)
    return since is not None and file.last_modified.replace(microsecond=0) == since


def _parse_http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):  # OverflowError: a 20-digit day or hour
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def http_date(value: datetime) -> str:
    return format_datetime(value.astimezone(UTC), usegmt=True)


# RFC 5987 attr-char, less nothing: everything else is percent-encoded in filename*.
_ATTR_CHARS = "!#$&+-.^_`|~"


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII fallback name and the exact UTF-8 name (RFC 6266 §4.3)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    fallback = re.sub(r'[^A-Za-z0-9!#$&+\-.^_`|~ ()\[\]{}@,;=]', "_", ascii_name).strip() or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe=_ATTR_CHARS)}"
