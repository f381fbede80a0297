"""Typed failures that cross module boundaries, in one tree. Messages never carry tokens, codes or
URLs with signatures.

```
Failure                          every failure the app raises on purpose (a bug is anything else)
├── SettingsError                a setting is missing or malformed: the operator must fix it (5xx)
│   └── CredentialsRejected      microsoft/identity.py: Microsoft refused the client secret
├── MicrosoftError               Microsoft's side (Graph or sign-in) failed
│   ├── Throttled                wait `retry_after` seconds, longer than we can here
│   ├── Unavailable              5xx or network through every retry
│   ├── SubscriptionRefused      notifications/subscriptions.py: recorded on the connection, retried later
│   ├── ReauthRequired           the refresh token was refused: the user must sign in again
│   ├── IdentityError            microsoft/identity.py: the token endpoint refused a request
│   └── GraphError               a non-retryable Graph answer (`status`, `code`)
│       ├── ResyncRequired       the delta link is spent: enumerate again
│       ├── ItemNotFound         404
│       ├── Forbidden            403 (`malwareDetected`, `accessDenied`)
│       ├── LinkExpired          a download refused mid-transfer (401/403/410/416): ask for a fresh URL
│       └── ResyncLoop           sync/engine.py: delta refuses even a fresh enumeration: back off
├── StorageError                 Azure Storage answered something the caller did not expect
│   ├── StorageUnavailable       unreachable or failing through the SDK's retries
│   ├── Conflict                 a conditional write lost (the row/blob changed), or it exists
│   └── NotFound                 the row, blob or queue is not there
├── BadInput                     input from outside is unusable: a clear 4xx, nothing changed
│   ├── BadRequest               signin/flow.py: a sign-in request or callback
│   ├── Invalid                  signin/sessions.py: a connect-session request (`code`)
│   ├── Unusable                 signin/sessions.py: a connect link unknown, used or expired
│   ├── InvalidPattern           return_urls.py: an ALLOWED_RETURN_URLS pattern
│   ├── MalformedBatch           microsoft/wire.py: a webhook body
│   ├── MalformedTokenResponse   microsoft/wire.py: a 200 from the token endpoint without a token
│   ├── BadMessage               messages.py: a queue message body
│   ├── BadItem                  microsoft/driveitem.py: a drive item from Graph
│   ├── PickerRefused            picker/sessions.py: a picker link or session that can't be used
│   └── NothingChosen            picker/browse.py: a picker form that left nothing selected
├── Denied                       signin/flow.py: the user declined consent at Microsoft
├── AlreadyLinked                signin/flow.py: the account's connection belongs to another ref
├── RefConflict                  connections.py: the same, found while saving the profile
├── ApiError                     api/support.py: a product-API answer (status, code, message)
├── ConnectionNotFound           connections.py
├── SealError                    tokens/keyring.py: a sealed token does not open
├── LeaseLost                    sync/state.py: another worker (or a disconnect) took the sync
├── OutOfTime                    sync/apply.py: the invocation's time budget is spent
├── Paused                       sync/mirror.py: a copy's budget ended mid-file (its staged blocks kept)
└── Mismatch                     sync/mirror.py: downloaded bytes differ from the listing
```

Each keeps the builtin base it had (`ValueError` for bad input, `LookupError`, `RuntimeError`) so
code that caught those still does. The classes live next to the code that raises them; those that
several layers raise or catch live here.
"""

from __future__ import annotations


class Failure(Exception):
    """The root: every failure the app raises on purpose."""


class SettingsError(Failure, RuntimeError):
    """A setting is missing or malformed; the message names it (never its value when secret).
    `setting`: its name, for the health endpoint and the stack's start check ("" if not one)."""

    def __init__(self, message: str = "", setting: str = "") -> None:
        super().__init__(message)
        self.setting = setting


class MicrosoftError(Failure):
    """Microsoft's side failed: Graph, the download host or the sign-in endpoint."""


class Throttled(MicrosoftError):
    """Microsoft asked us to wait longer than we can here; retry after `retry_after` seconds."""

    def __init__(self, retry_after: float, status: int) -> None:
        super().__init__(f"throttled (HTTP {status}); retry after {retry_after:.1f} s")
        self.retry_after = retry_after
        self.status = status


class Unavailable(MicrosoftError):
    """Microsoft kept failing (5xx or network) through every retry."""


class SubscriptionRefused(MicrosoftError):
    """Graph would not create or renew the connection's subscription (a limit, a refusal, an outage).

    Recorded on the connection; the next attempt is due after `retry_after` seconds, not sooner."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(f"{reason}; next attempt in {retry_after:.0f} s")
        self.reason = reason
        self.retry_after = retry_after


class ReauthRequired(MicrosoftError):
    """The refresh token was refused (revoked, expired): the user must sign in again."""


class GraphError(MicrosoftError):
    """A non-retryable Graph answer, matched on `status` and `code`, never on the message."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(f"Graph HTTP {status} {code}: {message[:200]}".rstrip(": "))
        self.status = status
        self.code = code
        self.message = message  # Graph's text: some answers carry a value to act on (a cap, an id)


class ResyncRequired(GraphError):
    """The stored delta link is no longer usable (410, or 400 on a malformed link): enumerate again."""

    def __init__(self, status: int, code: str, message: str = "", location: str | None = None) -> None:
        super().__init__(status, code, message)
        self.location = location


class ItemNotFound(GraphError):
    """404: the item (or subscription) is gone."""


class Forbidden(GraphError):
    """403, e.g. `malwareDetected` on a download, `accessDenied`."""


class LinkExpired(GraphError):
    """A download was refused in a way a fresh download URL fixes (the pre-authenticated URL
    expired mid-transfer: 401, 403 other than malware, 410, 416): resume through /content."""


class StorageError(Failure):
    """Azure Storage answered something unexpected; `status` is its HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class StorageUnavailable(StorageError, RuntimeError):
    """Storage could not be reached, or kept failing through the client's retries.
    `unreachable`: no request got through at all (waiting in this invocation would not help)."""

    def __init__(self, message: str, status: int = 0, *, unreachable: bool = False) -> None:
        super().__init__(message, status)
        self.unreachable = unreachable


class Conflict(StorageError):
    """A conditional write found another version (changed or deleted since it was read), or an
    insert found the row already there."""


class NotFound(StorageError, LookupError):
    """The row, blob or queue does not exist."""


class BadInput(Failure, ValueError):
    """Input from outside (a request, a webhook body, a queue message, Graph JSON) is unusable;
    the message is safe to show whoever sent it."""
