"""OneDrive emulator: Microsoft sign-in and the OneDrive Personal part of Graph, in memory.

    from devtools.emulator import Emulator
    emu = Emulator().start()
    user = emu.add_user("ada@example.com", "Ada Lovelace")
    user.drive.write_file("Docs/a.txt", b"hello")

Behaves as shared/reference/microsoft.md describes; every quirk and failure is a switch
(``emu.options``) or a fault (``emu.faults.inject``). ``python -m devtools.emulator`` runs it.

Layers, bottom up (each imports only from the ones below it):

    content, drive, lazy, options, times, addressing, errors   plain data and its rules
    changes               random changes to a drive's files (the cost tests and benchmarks)
    state                 everything the emulator knows: users, drives, tokens, subscriptions, switches
    services/             what it does, each part taking the state: identity, drives, delta,
                          downloads, notifications, faults, render (Graph's JSON shapes)
    routes/               HTTP: sign-in, Graph, the download host, the control API, pages, middleware
    server                builds the three and serves them; the Python control API (``Emulator``)
"""

from .drive import Drive, DriveError, Item
from .server import Emulator
from .state import User

__all__ = ["Emulator", "Drive", "DriveError", "Item", "User"]
