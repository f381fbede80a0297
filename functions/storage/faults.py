"""Where the storage SDKs' exceptions stop: each becomes one of the project's (`functions.errors`).

Messages name the operation and the SDK's error code, never a URL (a blob URL may carry a SAS).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from functions.errors import Conflict, NotFound, StorageError, StorageUnavailable

# Statuses worth trying again later: the service (or something in front of it) is struggling.
_TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})


@contextlib.contextmanager
def translated(operation: str) -> Iterator[None]:
    from azure.core.exceptions import (
        AzureError,
        HttpResponseError,
        ResourceExistsError,
        ResourceModifiedError,
        ResourceNotFoundError,
        ServiceRequestError,
    )

    try:
        yield
    except ResourceNotFoundError as error:
        raise NotFound(_describe(operation, error), 404) from error
    except (ResourceModifiedError, ResourceExistsError) as error:
        raise Conflict(_describe(operation, error), error.status_code or 409) from error
    except HttpResponseError as error:
        raise _for_status(_describe(operation, error), error.status_code or 0) from error
    except ServiceRequestError as error:
        # The request never got through (refused, DNS, TLS): storage is unreachable from here.
        raise StorageUnavailable(_describe(operation, error), unreachable=True) from error
    except AzureError as error:
        raise StorageUnavailable(_describe(operation, error)) from error


def status_error(operation: str, status: int, code: str | None) -> StorageError:
    """The project's error for a status the service answered (code: its error code, if any)."""
    detail = " ".join(str(part) for part in (status, code) if part)
    return _for_status(f"storage {operation} failed" + (f" ({detail})" if detail else ""), status)


def _for_status(message: str, status: int) -> StorageError:
    if status == 404:
        return NotFound(message, status)
    if status in (409, 412):
        return Conflict(message, status)
    if status in _TRANSIENT:
        return StorageUnavailable(message, status)
    return StorageError(message, status)


def _describe(operation: str, error: Exception) -> str:
    code = getattr(error, "error_code", None)
    status = getattr(error, "status_code", None)
    detail = " ".join(str(part) for part in (status, code) if part)
    return f"storage {operation} failed: {type(error).__name__}" + (f" ({detail})" if detail else "")
