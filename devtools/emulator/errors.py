"""What services raise when the real service would refuse; the routes turn them into answers."""

from __future__ import annotations


class GraphError(Exception):
    """A Graph error answer: ``{"error": {"code", "message", "innerError"}}`` with this status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        inner_code: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.inner_code = inner_code


class TokenError(Exception):
    """A token endpoint error: ``{"error", "error_description": "AADSTS<code>: ...", ...}``."""

    def __init__(self, error: str, code: int, message: str, status: int = 400) -> None:
        super().__init__(f"{error} AADSTS{code}: {message}")
        self.error = error
        self.code = code
        self.message = message
        self.status = status


class DownloadError(Exception):
    """The download host's refusals (it answers in its own, shorter shape)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
