"""Drive ids from Graph normalised to one form (case and the dropped leading zero)."""

from functions.microsoft.driveids import normalise_drive_id


def test_uppercase_and_dropped_leading_zero_give_the_same_id():
    assert normalise_drive_id("0a1b2c3d4e5f6a7b") == "0a1b2c3d4e5f6a7b"
    assert normalise_drive_id("A1B2C3D4E5F6A7B") == "0a1b2c3d4e5f6a7b"
    assert normalise_drive_id(" 0A1B2C3D4E5F6A7B ") == "0a1b2c3d4e5f6a7b"


def test_longer_ids_are_only_lowercased():
    assert normalise_drive_id("b!AbCdEf0123456789xyz") == "b!abcdef0123456789xyz"
