"""Cold start: time to import `function_app` against importing `azure.functions` alone.

Each sample is a fresh interpreter (what a cold Functions worker pays), timed from inside it so
interpreter start-up itself is excluded. Target: ratio ≤ 1.5.

    .venv/bin/python -m bench.cold_start [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def sample(module: str) -> float:
    out = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], cwd=ROOT, check=True,
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    return float(out.stdout.strip().splitlines()[-1])


def measure(runs: int) -> dict[str, float]:
    baseline, app = [], []
    for _ in range(runs):  # interleaved, so drift in the machine's load hits both alike
        baseline.append(sample("azure.functions"))
        app.append(sample("function_app"))
    return {"baseline_ms": statistics.median(baseline) * 1000, "app_ms": statistics.median(app) * 1000}


def main() -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    figures = measure(args.runs)
    figures["ratio"] = figures["app_ms"] / figures["baseline_ms"]
    print(f"cold start (median of {args.runs} fresh interpreters)")
    print(f"  import azure.functions  {figures['baseline_ms']:8.1f} ms   (baseline)")
    print(f"  import function_app     {figures['app_ms']:8.1f} ms   ratio {figures['ratio']:.2f} (target ≤ 1.5)")
    return figures


if __name__ == "__main__":
    main()
