"""What the emulator does, each part taking the ``State``: sign-in, drives, delta, downloads,
notifications, faults. No HTTP here (``routes/`` speaks it); ``Services`` is the set the routes get."""

from __future__ import annotations

from dataclasses import dataclass

from ..state import State
from .delta import Delta
from .downloads import Downloads
from .drives import Drives
from .faults import Faults, RequestLog
from .identity import Identity
from .notifications import Notifier


@dataclass
class Services:
    state: State
    identity: Identity
    drives: Drives
    delta: Delta
    downloads: Downloads
    notifier: Notifier
    faults: Faults
    request_log: RequestLog

    @classmethod
    def build(cls, state: State) -> Services:
        notifier = Notifier(state)
        faults = Faults()
        return cls(
            state=state,
            identity=Identity(state),
            drives=Drives(state, on_change=notifier.on_change, faults=faults),
            delta=Delta(state),
            downloads=Downloads(state),
            notifier=notifier,
            faults=faults,
            request_log=RequestLog(),
        )

    def reset(self) -> None:
        """Forget users, tokens, subscriptions, faults, logs and options (for a shared emulator)."""
        with self.state.lock:
            self.state.reset()
            self.faults.clear()
            self.request_log.clear()
