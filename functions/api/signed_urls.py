"""Short-lived, read-only URLs for one mirrored blob, so large downloads bypass the function.

In Azure the storage account allows no shared keys: the URL is signed with a user delegation key
obtained through the app's managed identity (needs a Storage Blob Data role, which includes
`generateUserDelegationKey`). With a connection string (Azurite) the account key signs it.
A signed URL is a secret: never log it.
"""

from __future__ import annotations

from datetime import timedelta

from functions.storage import blobs

LIFETIME = timedelta(minutes=10)
CLOCK_SKEW = timedelta(minutes=5)


def read_url(blob_name: str, *, content_type: str, content_disposition: str) -> str:
    """A URL that reads `blob_name` in the files container for LIFETIME, answering with the given
    Content-Type and Content-Disposition (the SAS overrides them, as the API would send them)."""
    return blobs.files().read_url(blob_name, lifetime=LIFETIME, clock_skew=CLOCK_SKEW, content_type=content_type,
                                  content_disposition=content_disposition)
