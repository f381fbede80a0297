"""Scale on paper: what the maintenance timer and Graph's subscription write limit cost at 10k,
100k and 1M connections, extrapolated from per-call figures measured here against Azurite.

Measured: scanning N connection rows (the timer's only read), and enqueueing N maintenance tasks
(its fan-out), one thread and several. Derived: how long one timer run takes at each scale, the
storage operations per day, and how long renewing every subscription takes under Graph's limit of
1,000 subscription writes per 20 s (per app, and every personal account shares one tenant).

    .venv/bin/python -m bench.scale [--rows 3000]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from .report import Section

SCALES = (10_000, 100_000, 1_000_000)
GRAPH_WRITES_PER_20S = 1000  # Microsoft's limit for subscription create/renew/delete
SUBSCRIPTION_MAX_MINUTES = 42300  # the longest expiry Graph grants a drive subscription
ENQUEUE_THREADS = 16


def _seed_rows(rows: int) -> None:
    """N connection rows as sign-in writes them, in batches (setup, not measured)."""
    from functions import connections, storage

    table = storage.table(storage.Tables.CONNECTIONS)
    now = datetime.now(UTC)
    batch = []
    for index in range(rows):
        account = f"{index:016x}"
        batch.append(("upsert", {
            "PartitionKey": connections.PARTITION, "RowKey": connections.connection_id_for(account),
            "account_id": account, "drive_id": account, "display_name": f"User {index}",
            "email": f"user{index}@example.com", "ref": "", "state": "active", "created_at": now,
            "connected_at": now, "subscription_id": f"sub-{index}", "subscription_expires_at": now,
            "last_sync_finished_at": now, "last_token_refresh_at": now,
        }))
        if len(batch) == 100:  # a table transaction holds at most 100 entities of one partition
            table.submit_transaction(batch)
            batch = []
    if batch:
        table.submit_transaction(batch)


def _measure_scan(rows: int) -> float:
    from functions import connections

    started = time.perf_counter()
    count = sum(1 for _ in connections.iterate())
    elapsed = time.perf_counter() - started
    if count != rows:
        raise RuntimeError(f"scanned {count} rows, expected {rows}")
    return elapsed


def _measure_enqueue(rows: int, threads: int) -> float:
    from functions import storage
    from functions.messages import MaintenanceTask, enqueue_maintenance

    storage.queue(storage.Queues.MAINTENANCE).clear_messages()
    tasks = [MaintenanceTask(f"connection-{i}", "renew_subscription") for i in range(rows)]
    started = time.perf_counter()
    if threads == 1:
        for task in tasks:
            enqueue_maintenance(task)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(enqueue_maintenance, tasks))
    return time.perf_counter() - started


def _measure_timer(rows: int) -> float | None:
    """The real maintenance timer over N rows, if the app has one; None otherwise."""
    try:
        from .environment import app_specs

        spec = next(s for s in app_specs() if s.name == "maintenance_timer")
    except (StopIteration, ImportError):
        return None
    import azure.functions as func  # noqa: F401  (the timer argument type)

    from functions import storage

    storage.queue(storage.Queues.MAINTENANCE).clear_messages()
    timer = _Timer()
    started = time.perf_counter()
    spec.handler(**{spec.arg_name: timer})
    return time.perf_counter() - started


class _Timer:
    """What the host passes a timer function."""

    past_due = False
    schedule_status: dict = {}
    schedule: dict = {}


def run(rows: int = 3000) -> Section:
    from functions.settings import settings

    from .environment import environment

    section = Section(f"Scale on paper: maintenance timer and Graph subscription writes (measured on {rows} rows)").start()
    with environment(with_emulator=False):
        _seed_rows(rows)
        scan = _measure_scan(rows)
        enqueue_one = _measure_enqueue(rows, 1)
        enqueue_many = _measure_enqueue(rows, ENQUEUE_THREADS)
        timer = _measure_timer(rows)
        writes_per_20s = settings().subscription_writes_per_20s
        renewal_window_h = settings().subscription_renewal_window_hours
        queued = None
        if timer is not None:
            from functions import storage

            queued = storage.queue(storage.Queues.MAINTENANCE).get_queue_properties().approximate_message_count
    scan_ms = scan / rows * 1000
    send1_ms = enqueue_one / rows * 1000
    sendn_ms = enqueue_many / rows * 1000
    section.line(f"scan connection rows:       {scan_ms:.3f} ms/row   ({rows / scan:,.0f} rows/s, 1,000 rows per table page)")
    section.line(f"enqueue a task, 1 thread:   {send1_ms:.3f} ms/task  ({rows / enqueue_one:,.0f} tasks/s)")
    section.line(f"enqueue a task, {ENQUEUE_THREADS} threads: {sendn_ms:.3f} ms/task  ({rows / enqueue_many:,.0f} tasks/s)")
    if timer is not None:
        per_task = max(0.0, timer - scan) / max(1, queued or rows)
        section.line(f"maintenance_timer itself:   {timer:.2f} s for {rows} rows, {queued} tasks queued: "
                     f"scan + {per_task * 1000:.2f} ms per task (enqueue with its pacing delay, mark the row)")
        basis = "the measured maintenance_timer"
    else:
        per_task = enqueue_many / rows
        basis = f"scan + {ENQUEUE_THREADS}-thread enqueue (maintenance_timer not in the app)"
    caps = _per_run_caps(writes_per_20s)
    section.line()
    section.line(f"one timer run, extrapolated linearly from {basis}; a run queues at most one hour of paced work per kind")
    section.line(f"({', '.join(f'{kind} {cap:,}' for kind, cap in caps.items())}) and {_task_cap():,} tasks in all, "
                 "renewals first; the rest waits for the next run.")
    section.line("steady: renewals every ~26 days, idle tokens refreshed weekly, every drive a daily safety sync (worst case);")
    section.line("all due: every connection needs every kind at once (e.g. after a long outage). Azure's latencies differ from Azurite's.")
    section.line(f"{'connections':>12} {'scan':>9} {'tasks steady':>13} {'run steady':>11} {'tasks all due':>14} {'run all due':>12}")
    runs_per_day = 48
    for n in SCALES:
        steady = n / (26.4 * runs_per_day) + n / (7 * runs_per_day) + n / runs_per_day
        all_due = min(sum(min(n, cap) for cap in caps.values()), _task_cap())
        section.line(f"{n:>12,} {_duration(n * scan / rows):>9} {steady:>13,.0f} {_duration(n * scan / rows + steady * per_task):>11} "
                     f"{all_due:>14,} {_duration(n * scan / rows + all_due * per_task):>12}")
    section.line("(a run must finish inside the 10-minute function timeout; it runs every 30 minutes)")
    per_connection = scan / rows + per_task
    section.line()
    app_rate = writes_per_20s / 20
    section.line(f"Graph subscription writes: limit {GRAPH_WRITES_PER_20S:,}/20 s per app; the app budgets "
                 f"SUBSCRIPTION_WRITES_PER_20S={writes_per_20s} ({app_rate:.0f}/s), leaving the rest for sign-ins.")
    lifetime_h = SUBSCRIPTION_MAX_MINUTES / 60
    section.line(f"{'connections':>12} {'renew all at budget':>20} {'at the hard limit':>18} {'steady rate needed':>20}")
    for n in SCALES:
        section.line(f"{n:>12,} {_duration(n / app_rate):>20} {_duration(n / (GRAPH_WRITES_PER_20S / 20)):>18} "
                     f"{n / (lifetime_h * 3600):>17.3f}/s")
    section.line(f"(a subscription lives up to {lifetime_h:.0f} h; renewals start {renewal_window_h:.0f} h before expiry, so even "
                 f"1M renewals bunched into one window need {1_000_000 / (renewal_window_h * 3600):.1f}/s < {app_rate:.0f}/s)")
    section.figures.update({"scan_ms_per_row": scan_ms, "enqueue_ms_per_task": sendn_ms,
                            "timer_s_at_1m": 1_000_000 * per_connection, "renew_1m_hours": 1_000_000 / app_rate / 3600})
    return section


def _per_run_caps(writes_per_20s: int) -> dict[str, int]:
    """How many tasks of each kind one run may queue: its pace times the planning horizon."""
    from functions.upkeep import maintenance

    horizon = maintenance.HORIZON_SECONDS
    return {"renewals": writes_per_20s * horizon // 20,
            "token refreshes": maintenance.TOKEN_REFRESHES_PER_20S * horizon // 20,
            "safety syncs": maintenance.SAFETY_SYNCS_PER_20S * horizon // 20}


def _task_cap() -> int:
    from functions.upkeep import maintenance

    return maintenance.MAX_TASKS_PER_RUN


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def main() -> Section:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3000)
    args = parser.parse_args()
    return run(args.rows)


if __name__ == "__main__":
    main()
