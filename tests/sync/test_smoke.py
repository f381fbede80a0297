from tests.fixtures.mirror import assert_mirror_equals_drive


def test_first_sync_copies_every_file(connected_drive, drive, run_sync):
    drive.write_file("a.txt", b"hello")
    drive.write_file("Docs/b.bin", size=300_000, seed=3)
    drive.write_file("Docs/empty.txt", b"")
    result = run_sync()
    assert result.outcome == "done", result
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
