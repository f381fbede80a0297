"""ALLOWED_RETURN_URLS: where the browser may be sent back after connecting, compared exactly.

A pattern is `scheme://host[:port][/path]`. Scheme, host and port are compared exactly (the port
defaults to the scheme's; `:*` allows any port); a host may start with `*.` to allow its
subdomains (not the domain itself). Only the path is a glob (`*` matches anything, `/` included);
a pattern without a path allows every path. A URL is refused before any comparison if it has
userinfo (`user@`), anything but printable ASCII (tabs, fullwidth `＠`, which some parsers fold
into `@`), a backslash, or `.`/`..` path segments, or if it doesn't parse: the old whole-URL
`fnmatch` let `http://localhost:@evil.example/` through `http://localhost:*`.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from functions.errors import BadInput

_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$")
_IPV6 = re.compile(r"^[0-9a-f:.]+$")
_PRINTABLE_ASCII = re.compile(r"^[\x21-\x7e]+$")
_NETLOC = re.compile(r"^(?:\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::[0-9]{1,5})?$", re.IGNORECASE)


class InvalidPattern(BadInput):
    """A pattern that can't be compared exactly; the message says why."""


@dataclass(frozen=True)
class _Origin:
    scheme: str
    host: str
    port: int | None  # None: any port (pattern only)
    path: str


def _split(url: str) -> _Origin | None:
    """scheme, lowercase host, port and raw path of a URL; None if it is not a plain http(s) URL."""
    if not _PRINTABLE_ASCII.match(url) or "\\" in url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # `http://[::1`, `http://localhost:1]/`, a port over 65535
        return None
    scheme = parts.scheme.lower()
    # Exactly host[:port]: no userinfo, no empty port (`host:`), nothing after an IPv6 literal.
    if scheme not in _DEFAULT_PORTS or not _NETLOC.match(parts.netloc):
        return None
    host = (parts.hostname or "").lower()
    if not host or not (_IPV6.match(host) if parts.netloc.startswith("[") else _HOST.match(host)):
        return None
    path = parts.path or "/"
    if any(unquote(segment) in (".", "..") for segment in path.split("/")):
        return None  # a browser would normalise them away, out of the allowed path
    return _Origin(scheme, host, port if port is not None else _DEFAULT_PORTS[scheme], path)


@dataclass(frozen=True)
class Pattern:
    scheme: str
    host: str  # lowercase; "*.example.com" for subdomains
    port: int | None  # None: any
    path: str  # a glob; "*" when the pattern names none

    @classmethod
    def parse(cls, text: str) -> Pattern:
        match = re.match(r"^(https?)://([^/?#]+)(/[^?#]*)?$", text, re.IGNORECASE)
        if not match or not _PRINTABLE_ASCII.match(text) or "\\" in text:
            raise InvalidPattern(f"{text!r} is not scheme://host[:port][/path] (http or https, no query or fragment)")
        scheme, authority, path = match.group(1).lower(), match.group(2).lower(), match.group(3) or ""
        if "@" in authority:
            raise InvalidPattern(f"{text!r} has userinfo")
        host, port_text = authority, ""
        if authority.startswith("["):
            host, _, rest = authority[1:].partition("]")
            if not _IPV6.match(host) or (rest and not rest.startswith(":")):
                raise InvalidPattern(f"{text!r} has a malformed IPv6 host")
            port_text = rest[1:]
        elif ":" in authority:
            host, _, port_text = authority.partition(":")
            if not port_text:
                raise InvalidPattern(f"{text!r} has an empty port")
        else:
            port_text = ""
        bare = host[2:] if host.startswith("*.") else host
        if not authority.startswith("[") and (not bare or "*" in bare or not _HOST.match(bare)):
            raise InvalidPattern(f"{text!r}: a host is exact, or '*.' followed by a domain")
        if port_text == "*":
            port = None
        elif port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise InvalidPattern(f"{text!r} has a bad port")
            port = int(port_text)
        else:
            port = _DEFAULT_PORTS[scheme]
        return cls(scheme, host, port, path or "*")

    def matches(self, origin: _Origin) -> bool:
        if origin.scheme != self.scheme:
            return False
        if self.host.startswith("*."):
            if not origin.host.endswith(self.host[1:]) or origin.host == self.host[2:]:
                return False
        elif origin.host != self.host:
            return False
        if self.port is not None and origin.port != self.port:
            return False
        return fnmatch.fnmatchcase(origin.path, self.path)


def parse_patterns(raw: str) -> tuple[Pattern, ...]:
    """Space- or comma-separated patterns; an empty string allows nothing."""
    return tuple(Pattern.parse(text) for text in raw.replace(",", " ").split())


def allowed(url: str, patterns: tuple[Pattern, ...]) -> bool:
    origin = _split(url)
    return origin is not None and any(pattern.matches(origin) for pattern in patterns)
