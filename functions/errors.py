"""Typed failures that cross module boundaries. Messages never carry tokens, codes or URLs with signatures."""

from __future__ import annotations


class Throttled(Exception):
    """Microsoft asked us to wait longer than we can here; retry after `retry_after` seconds."""

    def __init__(self, retry_after: float, status: int) -> None:
        super().__init__(f"throttled (HTTP {status}); retry after {retry_after:.1f} s")
        self.retry_after = retry_after
        self.status = status


class Unavailable(Exception):
    """Microsoft kept failing (5xx or network) through every retry."""


class ReauthRequired(Exception):
    """The refresh token was refused (revoked, expired): the user must sign in again."""


class GraphError(Exception):
    """A non-retryable Graph answer, matched on `status` and `code`, never on the message."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(f"Graph HTTP {status} {code}: {message[:200]}".rstrip(": "))
        self.status = status
        self.code = code


class ResyncRequired(GraphError):
    """The stored delta link is no longer usable (410, or 400 on a malformed link): enumerate again."""

    def __init__(self, status: int, code: str, message: str = "", location: str | None = None) -> None:
        super().__init__(status, code, message)
        self.location = location


class ItemNotFound(GraphError):
    """404: the item (or subscription) is gone."""


class Forbidden(GraphError):
    """403, e.g. `malwareDetected` on a download, `accessDenied`."""
