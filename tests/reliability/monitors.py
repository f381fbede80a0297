"""What each sync pass costs, watched from outside while the scenarios run: how long each pass
took, and whether any traversal of parent chains asked for an id twice (the shape of the
exponential blow-up of issue 15: a frontier that doubles with every level of depth)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class PassMonitor:
    seconds: list[float] = field(default_factory=list)
    traversals: int = 0
    repeated_ids: int = 0  # ids a traversal asked for more than once: must stay 0
    widest: int = 0  # the most ids one traversal asked for
    _local: threading.local = field(default_factory=threading.local)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, monkeypatch) -> None:
        from functions.sync import engine, itemrows

        monitor = self
        load_chains, load, run = itemrows.RowCache.load_chains, itemrows.RowCache.load, engine.run

        def chains(cache, item_ids, **options):  # options (dense=...) passed through as they are
            outer = getattr(monitor._local, "asked", None)
            monitor._local.asked = Counter()
            try:
                return load_chains(cache, item_ids, **options)
            finally:
                asked, monitor._local.asked = monitor._local.asked, outer
                with monitor._lock:
                    monitor.traversals += 1
                    monitor.repeated_ids += sum(count - 1 for count in asked.values())
                    monitor.widest = max(monitor.widest, sum(asked.values()))

        def counted(cache, item_ids, **options):  # options (dense=...) passed through as they are
            item_ids = list(item_ids)
            asked = getattr(monitor._local, "asked", None)
            if asked is not None:
                asked.update(item_ids)
            return load(cache, item_ids, **options)

        def timed(*args, **kwargs):
            started = time.monotonic()
            try:
                return run(*args, **kwargs)
            finally:
                with monitor._lock:
                    monitor.seconds.append(time.monotonic() - started)

        monkeypatch.setattr(itemrows.RowCache, "load_chains", chains)
        monkeypatch.setattr(itemrows.RowCache, "load", counted)
        monkeypatch.setattr(engine, "run", timed)
