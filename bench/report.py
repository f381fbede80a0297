"""Figures: percentiles, the machine they came from, and the Markdown file the README quotes."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks; what "p99" means in the figures."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[min(998, max(0, round(q * 10) - 1))]


def machine() -> str:
    """One line: CPU count and model, memory, Python, OS."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")).split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    parts = [f"{os.cpu_count()} CPUs" + (f" ({model})" if model else ""), memory,
             f"Python {platform.python_version()}", f"{platform.system()} {platform.release()}",
             # Other work on the machine skews every figure: say how busy it was.
             f"load average {os.getloadavg()[0]:.1f}"]
    return ", ".join(p for p in parts if p)


@dataclass
class Section:
    """One benchmark's printed figures, kept for the results file."""

    title: str
    lines: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)

    def line(self, text: str = "") -> None:
        print(("  " + text) if text else "", flush=True)
        self.lines.append(text)

    def start(self) -> Section:
        print(self.title, flush=True)
        return self


def write_markdown(sections: dict[str, Section], *, order: tuple[str, ...], command: str) -> Path:
    """Keep each benchmark's latest figures (bench/results/<name>.json) and compose latest.md from
    all of them, so that `--only copy` refreshes one section and keeps the others."""
    import json

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    for name, section in sections.items():
        (RESULTS / f"{name}.json").write_text(json.dumps({
            "title": section.title, "lines": section.lines, "figures": section.figures,
            "machine": machine(), "at": stamp, "command": command}, indent=1))
    out = [f"# Benchmark figures (composed {stamp})", ""]
    for name in order:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            continue
        saved = json.loads(path.read_text())
        out += [f"## {saved['title']}", "", f"{saved['at']}, `{saved['command']}`, {saved['machine']}", "",
                "```", *saved["lines"], "```", ""]
    latest = RESULTS / "latest.md"
    latest.write_text("\n".join(out))
    return latest


def rss_peak_mb() -> float:
    """This process's resident-set high-water mark, in MB (Linux reports KiB)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 1024 / 1024


def rss_mb() -> float:
    """Resident set size now, in MB."""
    return _status_kib("VmRSS") / 1024


def reset_rss_peak() -> None:
    """Restart the high-water mark (Linux ≥ 4.0), so that a peak measures one phase, not imports."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def rss_high_water_mb() -> float:
    """Peak resident set since `reset_rss_peak()` (or since start), in MB."""
    try:
        return _status_kib("VmHWM") / 1024
    except (OSError, StopIteration):
        return rss_peak_mb()


def _status_kib(field_name: str) -> int:
    line = next(entry for entry in Path("/proc/self/status").read_text().splitlines() if entry.startswith(field_name + ":"))
    return int(line.split()[1])


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (this one by default), from /proc."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuShare:
    """CPU used by each process of a benchmark over one phase: says who the bottleneck was."""

    def __init__(self, **pids: int | None) -> None:
        self.pids = pids
        self.start = {name: cpu_seconds(pid) for name, pid in pids.items()}
        import time

        self.started = time.perf_counter()

    def describe(self) -> str:
        import time

        wall = time.perf_counter() - self.started
        used = {name: cpu_seconds(pid) - self.start[name] for name, pid in self.pids.items()}
        return "CPU over that phase: " + ", ".join(f"{name} {seconds / wall:.0%} of a core" for name, seconds in used.items())
