"""Accounts and their drives: adding a user (with an empty drive), expiring a drive's delta tokens."""

from __future__ import annotations

import secrets

from ..drive import ChangeListener, Drive
from ..state import State, User


class Drives:
    def __init__(self, state: State, on_change: ChangeListener) -> None:
        self.state = state
        self._listener = on_change

    def on_change(self, drive: Drive, touched: set[str]) -> None:
        self.state.changed()
        self._listener(drive, touched)

    def new_drive(self, drive_id: str, owner_name: str) -> Drive:
        state = self.state
        return Drive(
            drive_id,
            drive_id,
            owner_name,
            self.state.lock,
            on_change=self.on_change,
            tombstones=lambda: state.options.tombstones,
        )

    def add_user(self, email: str = "ada@example.com", display_name: str = "Ada Lovelace") -> User:
        with self.state.lock:
            # Personal CIDs are 16 hex digits; starting with 0 lets the "dropped leading zero"
            # quirk show (sync-scenarios #14).
            while True:
                cid = "0" + secrets.token_hex(8)[:15]
                if self.state.user_by_id(cid) is None:
                    break
            user = User(id=cid, email=email, display_name=display_name, drive=self.new_drive(cid, display_name))
            self.state.users.append(user)
            self.state.changed()
            return user

    def expire_delta_tokens(self, user: User) -> None:
        """Every deltaLink and nextLink of the user's drive answers 410 from now on."""
        with self.state.lock:
            user.drive.delta_epoch += 1
            self.state.changed()
            sessions = self.state.delta_sessions
            for key in [k for k, s in sessions.items() if s.drive_id == user.drive.id]:
                del sessions[key]
