"""Transactions: the CPU one table transaction of 100 rows costs the process that sends it, written
by `functions/storage/transactions.py` against the SDK's `submit_transaction` (the baseline),
alternating in one run against one Azurite. The rows are a sync's (an id-map row of a file).

    .venv/bin/python -m bench.transactions [--rounds 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

from .copy import load_average
from .report import Section

ROWS = 100


def run(rounds: int = 30) -> Section:
    from devtools.azurite import Azurite
    from functions.storage import tables, transactions

    section = Section(f"Transactions: CPU of one table transaction of {ROWS} rows, ours against the SDK's "
                      f"(median of {rounds} each, alternating)").start()
    with Azurite(in_memory=True) as azurite:
        from azure.data.tables import TableServiceClient

        client = TableServiceClient.from_connection_string(azurite.connection_string).create_table("benchrows")
        ours: list[float] = []
        sdk: list[float] = []
        for round in range(rounds + 1):  # the first of each: connections and imports, not counted
            rows = [tables._encoded(_row(round, n)) for n in range(ROWS)]
            started = time.process_time()
            transactions.submit(client, [("upsert", row) for row in rows], "benchmark")
            if round:
                ours.append(time.process_time() - started)
            started = time.process_time()
            client.submit_transaction([("upsert", row, {"mode": "merge"}) for row in rows])
            if round:
                sdk.append(time.process_time() - started)
    ours_ms, sdk_ms = statistics.median(ours) * 1000, statistics.median(sdk) * 1000
    section.line(f"the SDK's submit_transaction: {sdk_ms:.1f} ms CPU a transaction, {sdk_ms / ROWS:.2f} ms a row (baseline)")
    section.line(f"storage/transactions.py:      {ours_ms:.1f} ms CPU a transaction, {ours_ms / ROWS:.2f} ms a row: "
                 f"{ours_ms / sdk_ms:.2f}× the SDK's ({load_average()})")
    section.figures.update({"ours_ms": ours_ms, "sdk_ms": sdk_ms, "ratio": ours_ms / sdk_ms})
    return section


def _row(round: int, n: int) -> dict[str, object]:
    return {"PartitionKey": "c0ffee00-0000-4000-8000-000000000000", "RowKey": f"{round:04d}-{n:03d}!item",
            "name": f"document {n}.txt", "parent_id": "F00D" * 4, "kind": "file", "size": 1234 + n,
            "quickxorhash": "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "ctag": f"aYzpGMDBEO{n}", "blob_epoch": 3,
            "m_path": f"folder/sub/document {n}.txt", "m_size": 1234 + n, "deleted": False}


def main() -> Section:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    return run(parser.parse_args().rounds)


if __name__ == "__main__":
    main()
