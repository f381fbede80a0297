"""Drive ids, normalised once so the same drive always compares equal."""

from __future__ import annotations

# Graph quirk (personal drives): the same drive id comes back in different cases, and sometimes
# with its leading zero dropped (15 characters instead of 16). Lowercase and pad back to 16.
PERSONAL_DRIVE_ID_LENGTH = 16


def normalise_drive_id(drive_id: str) -> str:
    value = drive_id.strip().lower()
    if 0 < len(value) < PERSONAL_DRIVE_ID_LENGTH:
        value = value.rjust(PERSONAL_DRIVE_ID_LENGTH, "0")
    return value
