"""Accounts and their drives: adding a user (with an empty drive), the account that shares folders
with them, expiring a drive's delta tokens."""

from __future__ import annotations

import secrets

from ..drive import ChangeListener, Drive
from ..state import State, User
from .faults import Faults

SHARER_EMAIL = "charles@example.com"
SHARER_NAME = "Charles Babbage"


class Drives:
    def __init__(self, state: State, on_change: ChangeListener, faults: Faults) -> None:
        self.state = state
        self._listener = on_change
        self.faults = faults

    def on_change(self, drive: Drive, touched: set[str]) -> None:
        self.state.changed()
        self._listener(drive, touched)

    def new_drive(self, drive_id: str, owner_name: str) -> Drive:
        return Drive(
            drive_id,
            drive_id,
            owner_name,
            self.state.lock,
            on_change=self.on_change,
            options=self.state.options,
            keep_tombstone=lambda path: not self.faults.drop_tombstone(path),
            share_source=self._share,
        )

    def _new_cid(self) -> str:
        # Personal CIDs are 16 hex digits; starting with 0 lets the "dropped leading zero"
        # quirk show (sync-scenarios #14).
        while True:
            cid = "0" + secrets.token_hex(8)[:15]
            if self.state.user_by_id(cid) is None and self.state.drive_by_id(cid) is None:
                return cid

    def add_user(self, email: str = "ada@example.com", display_name: str = "Ada Lovelace") -> User:
        with self.state.lock:
            cid = self._new_cid()
            user = User(id=cid, email=email, display_name=display_name, drive=self.new_drive(cid, display_name))
            self.state.users.append(user)
            self.state.changed()
            return user

    def sharer(self) -> User:
        """The account whose folders are shared with the emulator's users (it never signs in)."""
        with self.state.lock:
            if not self.state.sharers:
                cid = self._new_cid()
                self.state.sharers.append(User(cid, SHARER_EMAIL, SHARER_NAME, self.new_drive(cid, SHARER_NAME)))
                self.state.changed()
            return self.state.sharers[0]

    def _share(self, name: str) -> tuple[str, str]:
        """A folder in the sharer's drive with a file in it, for a user's ``add_remote_item``."""
        drive = self.sharer().drive
        with self.state.lock:
            unique, number = name, 1
            while drive.find(unique) is not None:
                number += 1
                unique = f"{name} ({number})"
            folder_id = drive.create_folder(unique)
            drive.write_file(f"{unique}/Shared notes.txt", f"Shared by {SHARER_NAME}.\n".encode())
            return drive.id, folder_id

    def expire_delta_tokens(self, user: User) -> None:
        """Every deltaLink and nextLink of the user's drive answers 410 from now on."""
        with self.state.lock:
            user.drive.delta_epoch += 1
            self.state.changed()
            sessions = self.state.delta_sessions
            for key in [k for k, s in sessions.items() if s.drive_id == user.drive.id]:
                del sessions[key]
