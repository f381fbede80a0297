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
        status = error.status_code or 0
        if status == 404:
            raise NotFound(_describe(operation, error), status) from error
        if status in (409, 412):
            raise Conflict(_describe(operation, error), status) from error
        if status in _TRANSIENT:
            raise StorageUnavailable(_describe(operation, error), status) from error
        raise StorageError(_describe(operation, error), status) from error
    except ServiceRequestError as error:
        # The request never got through (refused, DNS, TLS): storage is unreachable from here.
        raise StorageUnavailable(_describe(operation, error), unreachable=True) from error
    except AzureError as error:
        raise StorageUnavailable(_describe(operation, error)) from error


def _describe(operation: str, error: Exception) -> str:
    code = getattr(error, "error_code", None)
    status = getattr(error, "status_code", None)
    detail = " ".join(str(part) for part in (status, code) if part)
    return f"storage {operation} failed: {type(error).__name__}" + (f" ({detail})" if detail else "")
