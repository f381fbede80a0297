"""OneDrive emulator: Microsoft sign-in and the OneDrive Personal part of Graph, in memory.

    from devtools.emulator import Emulator
    emu = Emulator().start()
    user = emu.add_user("ada@example.com", "Ada Lovelace")
    user.drive.write_file("Docs/a.txt", b"hello")

Behaves as shared/reference/microsoft.md describes; every quirk and failure is a switch
(``emu.options``) or a fault (``emu.faults.inject``). ``python -m devtools.emulator`` runs it.
"""

from .drive import Drive, DriveError, Item
from .identity import User
from .server import Emulator

__all__ = ["Emulator", "Drive", "DriveError", "Item", "User"]
