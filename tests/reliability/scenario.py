"""One seeded scenario: random drive operations interleaved with injected faults, then the check
that the mirror equals the drive. Everything runs for real: the emulator's Graph and sign-in,
notifications through the app's webhook over HTTP, the sync_worker function fed by the local
host's queue listener from Azurite, the mirror in Azurite."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from functions import connections, messages, storage
from tests.fixtures.connected import connect_drive
from tests.fixtures.mirror import (
    bring_reconciliation_forward,
    mirror_contents,
    mirrorable,
    rows_without_their_blobs,
    untold_vanishings,
)

from .faults import Killer, StorageOutage
from .operations import Operations

# Graph failures, each as the emulator injects it (on sign-in, Graph and download hosts alike).
GRAPH_FAULTS = {
    "429 with Retry-After in seconds": dict(status=429, retry_after="1"),
    "429 with a decimal Retry-After": dict(status=429, retry_after="0.3"),
    "429 with an HTTP-date Retry-After": dict(status=429, retry_after_http_date_in=1),
    "503 with Retry-After": dict(status=503, retry_after="1"),
    "503": dict(status=503),
    "500": dict(status=500),
    "504": dict(status=504),
    "connection reset": dict(kind="reset"),
    "timeout": dict(kind="timeout", hang=3.0),
}
GRAPH_FAILURE_RATE = 0.2
SETTLE_SECONDS = 120
REVOCATION_SECONDS = 180
ID_ONLY_TOMBSTONES = 0.3  # the share of scenarios whose tombstones carry the id only


@dataclass
class Outcome:
    seed: int
    operations: list[str] = field(default_factory=list)
    faults: Counter = field(default_factory=Counter)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)
    unclaimed: list[str] = field(default_factory=list)  # item rows claiming blobs the mirror lacks
    kinds: Counter = field(default_factory=Counter)  # drive operations by kind
    files: int = 0
    seconds: float = 0.0
    microsoft_calls: int = 0  # to the emulator's sign-in, Graph and download hosts
    microsoft_calls_failed: int = 0  # of which answered with an injected fault

    @property
    def diverged(self) -> bool:
        return bool(self.missing or self.extra or self.different or self.unclaimed)

    def describe(self) -> str:
        return (f"seed {self.seed}: {self.files} files, missing={self.missing[:5]} extra={self.extra[:5]} "
                f"different={self.different[:5]} unclaimed={self.unclaimed[:5]}\nfaults: {dict(self.faults)}\noperations:\n  "
                + "\n  ".join(self.operations[-60:]))


class Scenario:
    def __init__(self, seed: int, *, emulator, app_server, azurite, killer: Killer, short_budget: bool) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.emulator = emulator
        self.app_server = app_server
        self.outcome = Outcome(seed)
        self.killer = killer
        killer.tally = self.outcome.faults
        self.outage = StorageOutage(azurite, self.outcome.faults)
        self.short_budget = short_budget
        self.user = emulator.add_user(email=f"seed{seed}@example.com", display_name=f"Seed {seed}")
        # Which descendants of a deleted folder keep a tombstone: from the seed, not the random drive id.
        self.user.drive.reseed(f"{seed}:tombstones")
        # A share of the scenarios get tombstones as OneDrive Personal sometimes sends them: the id
        # and nothing else (microsoft.md). A stream of its own, so the seed's operations stay the same.
        self.id_only_tombstones = random.Random(f"{seed}:id-only").random() < ID_ONLY_TOMBSTONES
        emulator.id_only_tombstones = self.id_only_tombstones
        self.ops = Operations(self.user.drive, self.rng)
        self.connection_id = ""
        self.rules: list = []  # the Graph fault rules armed now: (kind, rule)

    # ----- the scenario -----------------------------------------------------------------------

    def _operate(self) -> None:
        done = self.ops.random()
        self.outcome.operations.append(done)
        self.outcome.kinds[self.ops.kind_of(done)] += 1

    def run(self) -> Outcome:
        started = time.monotonic()
        if self.short_budget:
            self.outcome.faults["time budget of a fraction of a second"] += 1
        if self.id_only_tombstones:
            self.outcome.faults["tombstones with the id only (a scenario)"] += 1
        for _ in range(self.rng.randint(3, 12)):  # something in the drive before it is connected
            self._operate()
        self.connection_id = connect_drive(self.app_server, self.emulator, self.user).connection_id
        for _ in range(self.rng.randint(2, 4)):
            self._round()
        if self.rng.random() < 0.25:
            self._revoke_and_reconnect()
        self._settle()
        self.outcome.seconds = time.monotonic() - started
        calls = [r for r in self.emulator.requests if not r["path"].startswith("/_emulator")]
        self.outcome.microsoft_calls = len(calls)
        self.outcome.microsoft_calls_failed = sum(1 for r in calls if r["fault"])
        return self.outcome

    def _round(self) -> None:
        rng, emu, tally = self.rng, self.emulator, self.outcome.faults
        self._clear_graph_faults()  # the previous round's stay armed until now: its delayed work meets them
        if rng.random() < 0.85:
            self.rules = self._graph_faults()
        if rng.random() < 0.3:
            self.killer.arm(rng.randint(1, 40))
        if rng.random() < 0.12:
            self.outage.start(rng)
        if rng.random() < 0.2:
            emu.notifications_paused = True
            tally["notifications dropped (a round)"] += 1
        if rng.random() < 0.25:
            emu.notifications_duplicate = True
            tally["notifications duplicated (a round)"] += 1
        late = self._late_notifications() if rng.random() < 0.25 else None
        for _ in range(rng.randint(1, 8)):
            self._operate()
            if rng.random() < 0.3:  # let a sync start, so that later changes race it
                emu.flush_notifications()
        if rng.random() < 0.2:
            emu.expire_delta_tokens(self.user)
            tally["delta token expired (410)"] += 1
        if rng.random() < 0.2:
            emu.expire_access_tokens(self.user)
            tally["access token expired (401)"] += 1
        emu.flush_notifications()
        # Let the syncs this round started meet its faults; delayed messages (throttling, lease
        # checks) carry over into the next round.
        self._wait_idle(limit=4, visible_only=True)
        self.killer.disarm()
        self.outage.wait()
        if late is not None:
            late.join(30)
        emu.notifications_paused = False
        emu.notifications_duplicate = False

    def _clear_graph_faults(self) -> None:
        for name, rule in self.rules:
            self.outcome.faults[name] += rule.fired
        self.rules = []
        self.emulator.faults.clear()

    def _graph_faults(self) -> list:
        kinds = self.rng.sample(sorted(GRAPH_FAULTS), self.rng.randint(2, 5))
        # n independent rules of fraction p fail 1-(1-p)^n of the calls: 20% overall.
        fraction = 1 - (1 - GRAPH_FAILURE_RATE) ** (1 / len(kinds))
        return [(name, self.emulator.faults.inject(fraction=fraction, seed=self.rng.getrandbits(32), **GRAPH_FAULTS[name]))
                for name in kinds]

    def _late_notifications(self) -> threading.Thread:
        """Genuine notifications delivered late, repeated and out of order, alongside the emulator's."""
        subscriptions = [s for s in self.emulator.subscriptions if s.get("creatorId") in (None, self.user.id)] \
            or self.emulator.subscriptions
        delays = sorted((self.rng.uniform(0, 2.0) for _ in range(self.rng.randint(2, 6))), key=lambda _: self.rng.random())
        url = f"{self.app_server.url}/api/notifications"
        tally = self.outcome.faults

        def deliver() -> None:
            with httpx.Client(timeout=10) as client:
                started = time.monotonic()
                for delay in delays:  # deliberately out of order: each waits for its own moment
                    time.sleep(max(0.0, delay - (time.monotonic() - started)))
                    for subscription in subscriptions:
                        body = {"value": [{"subscriptionId": subscription["id"], "clientState": subscription["clientState"],
                                           "changeType": "updated", "resource": subscription["resource"],
                                           "subscriptionExpirationDateTime": subscription["expirationDateTime"],
                                           "tenantId": "9188040d-6c67-4c5b-b112-36a304b66dad", "resourceData": None}]}
                        try:
                            client.post(url, content=json.dumps(body), headers={"content-type": "application/json"})
                            tally["notifications late and reordered"] += 1
                        except httpx.HTTPError:
                            pass

        thread = threading.Thread(target=deliver, name="late-notifications", daemon=True)
        thread.start()
        return thread

    def _revoke_and_reconnect(self) -> None:
        """The refresh token is revoked: the next sync marks the connection; the user signs in again."""
        self._clear_graph_faults()  # a person signing in again is not what this measures
        self.emulator.revoke_consent(self.user)
        self._operate()  # a change nobody can sync until the user is back
        self.emulator.flush_notifications()
        # Generous: a sync continuing in half-second budgets through a burst of changes takes a
        # while to reach its next token refresh on a busy machine.
        deadline = time.monotonic() + REVOCATION_SECONDS
        while connections.require(self.connection_id).state != connections.ConnectionState.REAUTH_REQUIRED:
            if time.monotonic() > deadline:
                raise AssertionError(f"the revoked connection was not marked reauth_required within {REVOCATION_SECONDS} s")
            if self._wait_idle(limit=2):
                # Nothing running (a message may have gone to the poison queue in an outage): what the
                # next notification or the safety net would bring.
                messages.enqueue_sync(self.connection_id, "safety-net")
        self.outcome.faults["refresh token revoked, then re-granted"] += 1
        self._operate()
        connect_drive(self.app_server, self.emulator, self.user)

    # ----- the end: faults off, the safety net runs, the mirror must equal the drive ------------

    def _settle(self) -> None:
        emu = self.emulator
        # Still under the last round's faults: the work in flight, and a safety-net pass, meet them.
        messages.enqueue_sync(self.connection_id, "safety-net")
        self._wait_idle(limit=8)
        self._clear_graph_faults()
        self.killer.disarm()
        self.outage.wait()
        emu.notifications_paused = False
        emu.notifications_duplicate = False
        emu.flush_notifications()
        if connections.require(self.connection_id).state != connections.ConnectionState.ACTIVE:
            connect_drive(self.app_server, emu, self.user)
        expected, actual, blobs = self._settle()
        extra = set(actual) - set(expected)
        if extra and not (set(expected) - set(actual)) and all(expected[p] == actual[p] for p in expected) \
                and set(untold_vanishings(self.connection_id, self.user.drive, extra, blobs)) == extra:
            # What's left are files no delta could tell the mirror to delete (see untold_vanishings):
            # only the periodic full reconciliation removes them, which the scenario brings forward.
            self.outcome.faults["tombstone never delivered (healed by the periodic reconciliation)"] += 1
            expected, actual, blobs = self._reconcile()
        self.outcome.files = len(expected)
        self.outcome.missing = sorted(set(expected) - set(actual))
        self.outcome.extra = sorted(set(actual) - set(expected))
        self.outcome.different = sorted(p for p in set(expected) & set(actual) if expected[p] != actual[p])

    def _reconcile(self) -> tuple[dict, dict, dict]:
        bring_reconciliation_forward(self.connection_id)
        messages.enqueue_sync(self.connection_id, "safety-net")
        return self._settle()

    def _settle(self) -> tuple[dict, dict, dict]:
        """Until the mirror equals the drive (and every row has its blob) or SETTLE_SECONDS pass:
        the drive's mirrorable files, the mirror's, and its blobs as last seen."""
        deadline = time.monotonic() + SETTLE_SECONDS
        expected, actual, blobs = {}, {}, {}
        while time.monotonic() < deadline:
            if self._wait_idle(limit=max(0.0, deadline - time.monotonic())):
                # Paths no blob can carry (over the length limit, a folder name ending in ".") are
                # skipped and listed, by the documented rules.
                expected = {path: value for path, value in self.user.drive.snapshot().items()
                            if mirrorable(path, self.connection_id)}
                blobs = mirror_contents(self.connection_id)
                actual = {path: (size, digest) for path, (size, digest, _) in blobs.items()}
                self.outcome.unclaimed = rows_without_their_blobs(self.connection_id, blobs)
                if expected == actual and not self.outcome.unclaimed:
                    break
                # What the maintenance timer's safety net does for a drive that may have missed changes.
                messages.enqueue_sync(self.connection_id, "safety-net")
        return expected, actual, blobs

    def _wait_idle(self, limit: float, visible_only: bool = False) -> bool:
        """Until the sync queue is empty three polls in a row: no message at all (delayed and
        running ones included), or with `visible_only` none waiting to be picked up."""
        queue = storage.queue(storage.Queues.SYNC)
        deadline = time.monotonic() + limit
        quiet = 0
        while time.monotonic() < deadline:
            try:
                if visible_only:
                    empty = not list(queue.peek_messages(max_messages=1))
                else:
                    empty = queue.get_queue_properties().approximate_message_count == 0
                quiet = quiet + 1 if empty else 0
            except Exception:  # Azurite restarting
                quiet = 0
            if quiet >= 3:
                return True
            time.sleep(0.1)
        return False
