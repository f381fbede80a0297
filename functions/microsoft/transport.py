"""HTTP to Microsoft: one shared client, timeouts, and the retry policy for every call.

Retries cover what is transient on Microsoft's side: 429/503 (honouring Retry-After), other 5xx,
the identity platform's `temporarily_unavailable` (a 400 with that error in its body), timeouts and
dropped connections. `classify` is the one place that decides; callers never loop on statuses. A
wait that would not fit in the caller's time budget is not slept: it is raised as `Throttled` so
the caller can re-queue the work with a delay.
"""

from __future__ import annotations

import email.utils
import functools
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from functions.errors import Throttled, Unavailable

log = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=30.0)
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504, 509})
# The identity platform answers some transient failures with HTTP 400 and one of these errors.
TRANSIENT_TOKEN_ERRORS = frozenset({"temporarily_unavailable", "server_error"})
MAX_ATTEMPTS = 5
BASE_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
# Never sleep inline longer than this, however much budget is left: a long wait is a delayed message.
MAX_INLINE_WAIT_SECONDS = 60.0


@dataclass
class Deadline:
    """The time left to an invocation; `None` seconds means no limit."""

    seconds: float | None = None
    started: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        if self.seconds is None:
            return float("inf")
        return self.seconds - (time.monotonic() - self.started)

    def expired(self) -> bool:
        return self.remaining() <= 0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: integer, decimal (Graph's docs), or HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds or seconds < 0:  # NaN or in the past
        return 0.0
    return seconds


def backoff_delay(attempt: int) -> float:
    """Full jitter: uniform in [0, base * 2^attempt], capped."""
    return random.uniform(0, min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * (2**attempt)))


@functools.cache
def client() -> httpx.Client:
    # Redirects are followed by hand: the download host must not receive our Authorization header.
    return httpx.Client(timeout=TIMEOUT, follow_redirects=False, limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))


@dataclass(frozen=True)
class Retry:
    """`classify`'s verdict on a transient answer."""

    retry_after: float | None = None  # what the server asked for (Retry-After on a 429/503)
    longer: bool = False  # a bandwidth limit (509): back off longer than for a plain 5xx


def classify(response: httpx.Response, *, stream: bool = False) -> Retry | None:
    """Whether an answer is worth sending again, and how soon; None: it is final (any 2xx/3xx, and
    4xx other than 429 and the identity platform's transient 400s)."""
    status = response.status_code
    if status in RETRYABLE_STATUS:
        retry_after = parse_retry_after(response.headers.get("Retry-After")) if status in (429, 503) else None
        return Retry(retry_after, longer=status == 509)
    if status == 400 and not stream and _token_error(response) in TRANSIENT_TOKEN_ERRORS:
        return Retry()
    return None


def _token_error(response: httpx.Response) -> str:
    """The identity platform's `{"error": "..."}`, or "" (a Graph body, or no JSON at all)."""
    try:
        payload = response.json()
    except ValueError:
        return ""
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, str) else ""


class Pause:
    """A shared "don't call before" mark, so one 429 pauses every request of a connection."""

    def __init__(self) -> None:
        self._until = 0.0
        self._lock = threading.Lock()

    def extend(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)

    def remaining(self) -> float:
        return max(0.0, self._until - time.monotonic())


def send(
    build: Callable[[], httpx.Request],
    *,
    deadline: Deadline | None = None,
    pause: Pause | None = None,
    stream: bool = False,
    what: str = "request",
) -> httpx.Response:
    """Send `build()` (a fresh httpx.Request each attempt) until it gets a non-retryable answer.

    Returns the response of the first attempt that `classify` calls final.
    With `stream=True` the body is not read; the caller must close the response.
    """
    deadline = deadline or Deadline()
    pause = pause or Pause()
    attempt = 0
    while True:
        _wait(pause.remaining(), deadline, status=429)
        request = build()
        try:
            response = client().send(request, stream=stream)
        except httpx.TransportError as error:
            # Timeouts, resets, refused connections: transient. The error text holds no secrets
            # (httpx does not print headers or bodies), but the URL may be signed: log its kind only.
            attempt += 1
            if attempt >= MAX_ATTEMPTS:
                raise Unavailable(f"{what} failed after {attempt} attempts: {type(error).__name__}") from None
            delay = backoff_delay(attempt)
            log.warning("%s: %s, retrying in %.1f s", what, type(error).__name__, delay)
            _wait(delay, deadline, status=0)
            continue
        verdict = classify(response, stream=stream)
        if verdict is None:
            return response
        retry_after = verdict.retry_after
        response.close()
        attempt += 1
        if retry_after is not None:
            pause.extend(retry_after)
            if attempt >= MAX_ATTEMPTS:
                raise Throttled(retry_after, response.status_code)
            delay = retry_after
        elif attempt >= MAX_ATTEMPTS:
            if response.status_code == 429:
                raise Throttled(backoff_delay(attempt) + MAX_BACKOFF_SECONDS, 429)
            raise Unavailable(f"{what} failed after {attempt} attempts: HTTP {response.status_code}")
        else:
            delay = backoff_delay(attempt + (2 if verdict.longer else 0))
        log.warning("%s: HTTP %s, retrying in %.1f s", what, response.status_code, delay)
        _wait(delay, deadline, status=response.status_code)


def _wait(seconds: float, deadline: Deadline, *, status: int) -> None:
    if seconds <= 0:
        return
    if seconds > MAX_INLINE_WAIT_SECONDS or seconds >= deadline.remaining():
        raise Throttled(seconds, status)
    time.sleep(seconds)
