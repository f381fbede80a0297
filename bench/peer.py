"""Peer: the project's initial sync against rclone copying the same emulator drive into the same
Azurite, and against the raw limit of that storage, in one run (issue 20).

1. Many small files (≤ 4 KiB, over folders), then one large file, each copied three ways:
   - the project: the sync worker's initial sync (bench/worker.py, its own process);
   - rclone 1.60 (Debian): `rclone copy od: az:peer-rclone/...`, its OneDrive backend reaching
     the emulator through mitmproxy (devtools/rclone.py), its Azure Blob backend reaching Azurite
     directly (an account SAS URL; loopback never goes through the proxy);
   - raw: plain azure-storage-blob uploads of the same bytes from a fresh interpreter, the small
     files with the project's copy concurrency, the large one in 4 MiB blocks;
   - raw events (small files): the same, plus the one change event per file the design requires
     (a queue message): what the mirror costs with no table at all;
   - raw writes (small files): the same, plus the other writes the project's design makes per
     file (a change event, four row operations in batches): the floor of that design's CPU and
     time on this storage, what no tuning of the engine can go under.
2. Files/s and MB/s of each, the ratios project/rclone and project/raw, the requests each tool
   made to the emulator, the CPU of every process (per file), the load average when each figure
   was taken, and the proxy's own cost, which rclone's figures pay and the project's don't: its
   CPU, the latency it adds to a request, and whether its cost per request grows over a copy.

The proxy offers rclone HTTP/1.1 only: over HTTP/2, mitmproxy keeps every stream of a connection
until the client disconnects, and its CPU per request grew through the copy (10,000 files: 30.7 ms
of proxy CPU per file and rclone at 19.6 files/s; 2,000 files over HTTP/1.1: 4.9 ms and 74). The
emulator speaks HTTP/1.1 only and the project uses it too, so neither side loses by it.

rclone runs with `--transfers` set to the project's copy concurrency (its default is 4) and its
OneDrive backend's own pacer (10 ms between Graph calls); the emulator's `allow_auth_on_download`
is on for it (rclone 1.60 sends its token to the download host; the project does not).

    .venv/bin/python -m bench.peer [--files 10000] [--large-mb 1024]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .copy import _check_mirror
from .report import CpuShare, Section, cpu_seconds
from .worker import ROOT, WorkerProcess

SEED = 13
BLOCK = 4 << 20
RAW_BLOCK_CONCURRENCY = 4  # blocks in flight for the raw large upload (rclone's default is 16)


@dataclass
class Figure:
    """One way of copying one drive: how long, how much, who used the CPU, how loaded the machine was."""

    seconds: float
    files: int
    size: int
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds over the copy
    load: float = 0.0
    usage: str = ""
    requests: int = 0  # to the emulator (Graph, sign-in, downloads)

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.size / self.seconds / (1 << 20)

    def share(self, name: str) -> float:
        return self.cpu.get(name, 0.0) / self.seconds


def run(files: int = 10_000, large_mb: int = 1024) -> Section:
    from functions.sync.apply import COPY_THREADS

    from .environment import environment

    title = f"Peer: the project against rclone 1.60 and plain SDK uploads, same drive, same Azurite ({files:,} small files"
    section = Section(title + (f"; one {large_mb} MiB file)" if large_mb else ")")).start()
    with (environment(time_budget_seconds=3600) as env, WorkerProcess() as worker,
          tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp):
        work = Path(tmp)
        worker.ask(do="warm")
        emulator = env.emulator
        small = emulator.add_user(email="peer-small@example.com", display_name="Peer Small")
        small.drive.seed(n_files=files, seed=SEED)
        drives = {"small": small}
        if large_mb:
            large = emulator.add_user(email="peer-large@example.com", display_name="Peer Large")
            large.drive.write_file("large.bin", size=large_mb << 20, seed=SEED)
            drives["large"] = large
        folders = sum(1 for item in small.drive.walk() if item.kind == "folder")
        rclone, skipped = _rclone(env, drives, work)
        if skipped:
            section.line(f"rclone: SKIPPED ({skipped}); its figures are left out")
        section.line(f"small files: {files:,} (≤ 4 KiB) in {folders:,} folders; copy concurrency {COPY_THREADS} "
                     f"(the project's COPY_THREADS; rclone --transfers {COPY_THREADS}; raw: {COPY_THREADS} threads)")
        figures: dict[str, float] = {}
        try:
            for kind, user in drives.items():
                section.line()
                results = {"project": _project(env, worker, user)}
                if rclone is not None:
                    results["rclone"] = rclone.copy(kind, user)
                results["raw"] = _raw(env, user, work, kind, COPY_THREADS if kind == "small" else RAW_BLOCK_CONCURRENCY)
                if kind == "small":
                    results["raw events"] = _raw(env, user, work, kind, COPY_THREADS, writes="events")
                    results["raw writes"] = _raw(env, user, work, kind, COPY_THREADS, writes="rows")
                _describe(section, kind, results, figures, rclone.hop_ms.get(kind, 0.0) if rclone else 0.0, COPY_THREADS)
                if rclone is not None and rclone.drift.get(kind):
                    section.line(f"  {rclone.drift[kind]}")
        finally:
            if rclone is not None:
                rclone.proxy.stop()
    section.figures.update(figures)
    return section


def _describe(section: Section, kind: str, results: dict[str, Figure], figures: dict[str, float], hop_ms: float,
              transfers: int) -> None:
    """Small files in files/s (and MB/s), the large file in MB/s; each against the project's."""
    project = results["project"]
    mib = project.size / (1 << 20)
    small = kind == "small"
    section.line(f"small files: {project.files:,} file(s), {mib:.1f} MiB" if small else
                 f"large file: {mib:.0f} MiB in 4 MiB blocks; in flight: rclone 16 (its default upload_concurrency), "
                 f"raw {RAW_BLOCK_CONCURRENCY}, the project as functions/sync/mirror.py stages them")
    for name, figure in results.items():
        rate = f"{figure.files_per_s:8.1f} files/s {figure.mb_per_s:7.2f} MB/s" if small else f"{figure.mb_per_s:8.1f} MB/s"
        ratio = "" if name == "project" else f"   project/{name} {figure.seconds / project.seconds:.2f}"
        section.line(f"  {name:10s} {rate}  ({figure.seconds:6.1f} s, load {figure.load:.1f}){ratio}")
        unit, per = ("file", figure.files) if small else ("MiB", mib)
        own = {"project": "worker", "rclone": "rclone"}.get(name, "raw uploader")
        extra = f"; proxy {figure.cpu['proxy'] * 1000 / per:.2f} ms per {unit}" if name == "rclone" else ""
        calls = f"{figure.requests / figure.files:.1f} requests to the emulator per file; " if figure.requests else ""
        section.line(f"           {calls}{own} CPU {figure.cpu[own] * 1000 / per:.2f} ms per {unit}{extra}")
        section.line(f"           {figure.usage}")
        name = name.replace(" ", "_")
        figures[f"{kind}_{name}_files_per_s"] = figure.files_per_s
        figures[f"{kind}_{name}_mb_per_s"] = figure.mb_per_s
        figures[f"{kind}_{name}_load"] = figure.load
        figures[f"{kind}_{name}_cpu_ms_per_{unit.lower()}"] = figure.cpu[own] * 1000 / per
        if name != "project":
            figures[f"{kind}_project_over_{name}"] = figure.seconds / project.seconds
    if "rclone" in results:
        r = results["rclone"]
        spent = r.requests * hop_ms / 1000
        figures[f"{kind}_proxy_cpu_share"] = r.share("proxy")
        figures[f"{kind}_proxy_hop_ms"] = hop_ms
        section.line(f"  bias against rclone: the proxy used {r.share('proxy'):.0%} of a core ({r.cpu['proxy'] / r.cpu['rclone']:.1f}× rclone's "
                     f"own CPU), taken from rclone, Azurite and the emulator on {os.cpu_count()} CPUs at load {r.load:.1f}; "
                     f"it adds {hop_ms:.2f} ms to a request (median, keep-alive, measured after the copy), and rclone made "
                     f"{r.requests:,}: {spent:.1f} s of request time, {spent / transfers:.1f} s of its {r.seconds:.1f} s if spread "
                     f"over its {transfers} transfers. The project pays neither: rclone's figure is understated, project/rclone "
                     f"overstated, by something of that order")


def _project(env, worker: WorkerProcess, user) -> Figure:
    """The project's initial sync of `user`'s drive, in the worker process."""
    connection_id = env.connect(user)
    pids = {"worker": worker.process.pid, "Azurite": env.azurite.process.pid, "emulator + bench": None}
    cpu = CpuShare(**{("sync worker" if k == "worker" else k): v for k, v in pids.items()})
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    requests = len(env.emulator.request_log.entries)
    answer = worker.ask(do="sync", connection_id=connection_id)
    used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    load, usage = os.getloadavg()[0], cpu.describe()
    requests = len(env.emulator.request_log.entries) - requests
    _check_mirror(connection_id, user.drive)
    files = user.drive.snapshot()
    return Figure(answer["seconds"], len(files), sum(size for size, _ in files.values()), used, load, usage, requests)


# ----- rclone -----------------------------------------------------------------------------------


@dataclass
class _RcloneRun:
    env: object
    rclone: object  # devtools.rclone.Rclone
    transfers: int
    hop_ms: dict[str, float] = field(default_factory=dict)  # what the proxy adds to one request, per drive
    drift: dict[str, str] = field(default_factory=dict)  # the proxy's cost early and late in each copy

    @property
    def proxy(self):
        return self.rclone.proxy

    def copy(self, kind: str, user) -> Figure:
        """`rclone copy od-<kind>: az:peer-rclone/<kind>`: timed, CPU of rclone (a reaped child), the
        proxy, Azurite and this process (the emulator)."""
        from devtools.rclone import DOWNLOADS, GRAPH

        emulator = self.env.emulator
        pids = {"proxy": self.proxy.pid, "Azurite": self.env.azurite.process.pid, "emulator + bench": None}
        with _served_as(emulator, GRAPH, DOWNLOADS):  # links and download URLs under Microsoft's names
            cpu = CpuShare(**pids)
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            children = _children_cpu()
            requests = len(emulator.request_log.entries)
            started = time.perf_counter()
            sampler = _Sampler(self.proxy.pid, emulator).start()
            try:
                self.rclone.run("copy", f"od-{kind}:", f"az:peer-rclone/{kind}", "--transfers", str(self.transfers),
                                "--checkers", str(self.transfers), timeout=7200)
            finally:
                sampler.stop()
            seconds = time.perf_counter() - started
            self.drift[kind] = sampler.describe()
            used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
            used["rclone"] = _children_cpu() - children
            load, usage = os.getloadavg()[0], cpu.describe() + f", rclone {used['rclone'] / seconds:.0%} of a core"
            requests = len(emulator.request_log.entries) - requests
            self.hop_ms[kind] = _hop_ms(self.proxy, emulator)
        expected = {path: size for path, (size, _) in user.drive.snapshot().items()}
        found = _blob_sizes(self.env, "peer-rclone", f"{kind}/")
        if found != expected:
            wrong = sorted(set(expected.items()) ^ set(found.items()))[:3]
            raise RuntimeError(f"rclone's copy does not match the drive: {len(found)} blobs for {len(expected)} files; first wrong: {wrong}")
        return Figure(seconds, len(expected), sum(expected.values()), used, load, usage, requests)


class _Sampler:
    """Every second: the proxy's CPU and resident memory, and the requests the emulator has seen;
    says whether the proxy's cost per request grows over a copy (then the bias grows with the drive)."""

    def __init__(self, pid: int, emulator) -> None:
        import threading

        self.pid, self.emulator = pid, emulator
        self.samples: list[tuple[float, float, int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peer-sampler", daemon=True)

    def _sample(self) -> None:
        rss = 0.0
        with contextlib.suppress(OSError, StopIteration, ValueError):
            status = Path(f"/proc/{self.pid}/status").read_text().splitlines()
            rss = int(next(line for line in status if line.startswith("VmRSS:")).split()[1]) / 1024
        self.samples.append((time.perf_counter(), cpu_seconds(self.pid), len(self.emulator.request_log.entries), rss))

    def _run(self) -> None:
        self._sample()
        while not self._stop.wait(1.0):
            self._sample()

    def start(self) -> _Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def describe(self) -> str:
        if len(self.samples) < 6 or self.samples[-1][2] - self.samples[0][2] < 100:
            return ""  # too short, or too few requests (one large file), to say
        fifth = max(1, len(self.samples) // 5)

        def window(first: tuple[float, float, int, float], last: tuple[float, float, int, float]) -> str:
            requests = max(1, last[2] - first[2])
            return f"{(last[1] - first[1]) * 1000 / requests:.1f} ms CPU per request, {requests / (last[0] - first[0]):.0f} requests/s"

        return (f"the proxy over the copy: first fifth {window(self.samples[0], self.samples[fifth])}; last fifth "
                f"{window(self.samples[-1 - fifth], self.samples[-1])}; resident {self.samples[0][3]:.0f} → "
                f"{self.samples[-1][3]:.0f} MB")


def _hop_ms(proxy, emulator, rounds: int = 100) -> float:
    """What the proxy adds to one request: the median of `rounds` GETs of /v1.0/me (a 401, no work
    in the emulator) through it, less the median straight to the emulator; keep-alive both ways,
    as rclone's connections are. Call while the emulator serves under Microsoft's names."""
    import ssl
    import statistics

    import httpx

    from devtools.rclone import GRAPH

    def median_ms(client: httpx.Client, url: str) -> float:
        client.get(url)  # the connection (and its TLS handshake) is not what is measured
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            client.get(url)
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    trust = ssl.create_default_context(cafile=str(proxy.ca_cert))
    with httpx.Client(timeout=30) as plain, httpx.Client(proxy=proxy.url, verify=trust, timeout=30) as proxied:
        # The emulator listens where the proxy sends Microsoft's names (the addon's EMULATOR_API).
        listening = f"http://{proxy.api}/v1.0/me"
        return median_ms(proxied, f"{GRAPH}/v1.0/me") - median_ms(plain, listening)


def _rclone(env, drives: dict, work: Path) -> tuple[_RcloneRun | None, str]:
    """rclone and its proxy, configured for every drive and for Azurite; (None, why) without them."""
    from functions.sync.apply import COPY_THREADS

    try:
        from devtools.rclone import Proxy, Rclone, Unavailable, onedrive_remote, rclone_binary, sign_in
    except ImportError as error:
        return None, str(error)
    try:
        binary = rclone_binary()
        # HTTP/1.1 between rclone and the proxy (the emulator speaks nothing else, and the project
        # uses it too): over HTTP/2, mitmproxy's cost per request grows through a long copy.
        proxy = Proxy.start(env.emulator, work, http2=False)
    except Unavailable as missing:
        return None, str(missing)
    # rclone 1.60 sends its bearer token to the download host (devtools/rclone.py): an allowance for
    # its age; the project never sends one there.
    env.emulator.allow_auth_on_download = True
    sections = [onedrive_remote(f"od-{kind}", env.emulator, user, sign_in(env.emulator, user)) for kind, user in drives.items()]
    # rclone 1.60's Azure Blob backend reaches an emulator only on port 10000 (use_emulator) or
    # through a SAS URL: an account SAS for Azurite's port.
    sections.append(f"[az]\ntype = azureblob\nsas_url = {_account_sas_url(env)}\n")
    config = work / "rclone.conf"
    config.write_text("\n".join(sections))
    return _RcloneRun(env, Rclone(binary, config, proxy), COPY_THREADS), ""


def _account_sas_url(env) -> str:
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import AccountSasPermissions, BlobServiceClient, ResourceTypes, generate_account_sas

    service = BlobServiceClient.from_connection_string(env.azurite.connection_string)
    sas = generate_account_sas(service.account_name, service.credential.account_key,
                               ResourceTypes(service=True, container=True, object=True),
                               AccountSasPermissions(read=True, write=True, list=True, create=True, add=True, delete=True),
                               expiry=datetime.now(UTC) + timedelta(days=1))
    return f"{service.url.rstrip('/')}?{sas}"


@contextlib.contextmanager
def _served_as(emulator, base_url: str, download_base_url: str) -> Iterator[None]:
    """The emulator names Microsoft's origins for rclone, and its own again for the project."""
    saved = emulator.base_url, emulator.download_base_url
    emulator.serve_as(base_url, download_base_url)
    try:
        yield
    finally:
        emulator.serve_as(*saved)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _blob_sizes(env, container: str, prefix: str) -> dict[str, int]:
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(env.azurite.connection_string).get_container_client(container)
    return {blob.name[len(prefix):]: blob.size for blob in client.list_blobs(name_starts_with=prefix)}


# ----- raw: plain SDK uploads -------------------------------------------------------------------


def _raw(env, user, work: Path, kind: str, concurrency: int, *, writes: str = "") -> Figure:
    """The same bytes uploaded with plain azure-storage-blob calls, from a fresh interpreter; with
    `writes`, each file also costs the project's event ("events") or its event and row writes
    ("rows"): `_project_writes`."""
    snapshot = user.drive.snapshot()
    prefix = f"{kind}-{writes}/" if writes else f"{kind}/"
    spec = {"connection_string": env.azurite.connection_string, "container": "peer-raw", "prefix": prefix,
            "concurrency": concurrency, "writes": writes}
    if kind == "large":
        (path,) = snapshot
        spec["large"] = {"path": path, "size": snapshot[path][0], "seed": SEED}
    else:
        spec["files"] = [[path, base64.b64encode(user.drive.read(path)).decode()] for path in sorted(snapshot)]
    spec_path = work / f"raw-{prefix.rstrip('/')}.json"
    spec_path.write_text(json.dumps(spec))
    pids = {"Azurite": env.azurite.process.pid}
    process = subprocess.Popen([sys.executable, "-m", "bench.peer", "--raw-child", str(spec_path)], cwd=ROOT,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    process.stdout.readline()  # {"ready": true}: imports done, the bytes in memory
    cpu = CpuShare(**{"raw uploader": process.pid, **pids})
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    answer = json.loads(process.stdout.readline() or "{}")
    used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    used["raw uploader"] = answer.get("cpu_seconds", 0.0)
    load, usage = os.getloadavg()[0], cpu.describe()
    if process.wait(60) != 0 or "seconds" not in answer:
        raise RuntimeError(f"the raw uploader failed: {answer}")
    found = _blob_sizes(env, "peer-raw", prefix)
    expected = {path: size for path, (size, _) in snapshot.items()}
    if found != expected:
        raise RuntimeError(f"the raw upload does not match the drive: {len(found)} blobs for {len(expected)} files")
    return Figure(answer["seconds"], len(expected), sum(expected.values()), used, load, usage)


ROWS_BATCH = 50  # files per group of table batches in the raw writes


def _project_writes(spec: dict, container):
    """Plain SDK calls for the writes the project's design makes per file, a group of files at a
    time: the blob, one change event (a queue message), and (`rows`) four row operations in batch
    transactions (collect upserts the item's row and a pending row; apply upserts the item's row
    again and deletes the pending one). No download, no planning: the storage floor of the design."""
    rows = spec["writes"] == "rows"
    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy

    if rows:  # (the events-only run makes no table call, not even these)
        tables = TableServiceClient.from_connection_string(spec["connection_string"])
        items, pending = (tables.create_table_if_not_exists(name) for name in ("peerrawitems", "peerrawpending"))
    events = QueueClient.from_connection_string(spec["connection_string"], f"peer-raw-{spec['writes']}",
                                                message_encode_policy=TextBase64EncodePolicy())
    with contextlib.suppress(Exception):
        events.create_queue()

    def write(group: list[tuple[str, bytes]]) -> None:
        keys = [base64.urlsafe_b64encode(path.encode()).decode() for path, _ in group]
        if rows:
            items.submit_transaction([("upsert", {"PartitionKey": "p", "RowKey": k, "name": k[:20], "size": 1}) for k in keys])
            pending.submit_transaction([("upsert", {"PartitionKey": "p", "RowKey": k, "folder": False}) for k in keys])
        for path, data in group:
            container.get_blob_client(spec["prefix"] + path).upload_blob(data, overwrite=True)
            events.send_message(json.dumps({"type": "created", "path": path, "size": len(data)}))
        if rows:
            items.submit_transaction([("upsert", {"PartitionKey": "p", "RowKey": k, "m_name": k[:20]}) for k in keys])
            pending.submit_transaction([("delete", {"PartitionKey": "p", "RowKey": k}) for k in keys])

    return write


def _raw_child(spec_path: str) -> None:
    """Inside the raw uploader: read the spec, say ready, upload, say how long and how much CPU."""
    from concurrent.futures import ThreadPoolExecutor

    from azure.storage.blob import BlobServiceClient

    from devtools.emulator.content import GeneratedContent

    spec = json.loads(Path(spec_path).read_text())
    # Plain SDK use, as a developer would write it: a client from the connection string (4 MiB
    # blocks, as the project and rclone stage them).
    service = BlobServiceClient.from_connection_string(spec["connection_string"], max_block_size=BLOCK,
                                                       max_single_put_size=BLOCK)
    container = service.get_container_client(spec["container"])
    if not container.exists():
        container.create_container()
    files = [(path, base64.b64decode(data)) for path, data in spec.get("files", [])]
    print(json.dumps({"ready": True}), flush=True)
    cpu, started = time.process_time(), time.perf_counter()
    if "large" in spec:
        large = spec["large"]
        content = GeneratedContent(size=large["size"], seed=large["seed"])
        container.get_blob_client(spec["prefix"] + large["path"]).upload_blob(
            content.chunks(chunk_size=BLOCK), length=large["size"], overwrite=True, max_concurrency=spec["concurrency"])
    elif spec.get("writes"):
        with ThreadPoolExecutor(spec["concurrency"]) as pool:
            list(pool.map(_project_writes(spec, container), [files[i:i + ROWS_BATCH] for i in range(0, len(files), ROWS_BATCH)]))
    else:
        def put(item: tuple[str, bytes]) -> None:
            container.get_blob_client(spec["prefix"] + item[0]).upload_blob(item[1], overwrite=True)

        with ThreadPoolExecutor(spec["concurrency"]) as pool:
            list(pool.map(put, files))
    print(json.dumps({"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu}), flush=True)


def main() -> Section | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--large-mb", type=int, default=1024, help="0: no large file")
    parser.add_argument("--raw-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_child:
        _raw_child(args.raw_child)
        return None
    return run(args.files, args.large_mb)


if __name__ == "__main__":
    main()
