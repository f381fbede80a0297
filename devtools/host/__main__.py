"""Run the function app locally: `python -m devtools.host [--port 7071]`.

Reads local.settings.json into the environment (without overriding it) as Core Tools does, then
serves the HTTP functions under /api, polls the queue triggers and fires the timers, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading

from .config import ROOT, HostOptions, apply_local_settings, read_local_settings
from .keys import ENV as KEY_ENV
from .keys import function_key


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devtools.host", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help="HTTP port (default: Host.LocalHttpPort of local.settings.json, else 7071)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--app", default="function_app:app", help="module:attribute of the FunctionApp")
    parser.add_argument("--settings", default=str(ROOT / "local.settings.json"), help="local settings file")
    parser.add_argument("--host-json", default=str(ROOT / "host.json"), help="host.json to take queue semantics from")
    parser.add_argument("--no-queues", action="store_true", help="don't run queue triggers")
    parser.add_argument("--no-timers", action="store_true", help="don't run timer triggers")
    parser.add_argument("--key-file", help=f"keep the function key in this file across runs (unless {KEY_ENV} is set)")
    parser.add_argument("--new-key", action="store_true", help="replace the key kept in --key-file with a new one")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(StructuredFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # azure.functions warns at indexing that FUNCTION auth doesn't apply to non-HTTP functions: noise.
    handler.addFilter(lambda record: not record.getMessage().startswith("Auth level is not applied"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    # The SDKs log every HTTP request at INFO; the host's own lines are the useful ones.
    for noisy in ("azure", "httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    try:
        local = read_local_settings(args.settings)
        apply_local_settings(local)
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        module_name, _, attribute = args.app.partition(":")
        app = getattr(importlib.import_module(module_name), attribute or "app")

        from .bindings import load
        from .runtime import LocalHost

        key = function_key(key_file=args.key_file, renew=args.new_key)
        port = args.port or local.local_http_port or 7071
        host = LocalHost(load(app), function_key=key.value, options=HostOptions.from_host_json(args.host_json),
                         host=args.host, port=port, run_queues=not args.no_queues, run_timers=not args.no_timers)
    except (ValueError, KeyError, OSError) as error:  # a setting, a file: say which, without a traceback
        print(f"Could not start the local host: {error.args[0] if isinstance(error, KeyError) else error}", file=sys.stderr, flush=True)
        return 1
    host.start()
    base = _browser_origin(host.url)
    print(f"Local host listening on {host.url} with {len(host.specs)} functions:", flush=True)
    for spec in host.specs:
        print(f"  {spec.name}: {_describe(spec, base)}", flush=True)
    print(f"Function key (header x-functions-key or ?code=; {key.source}): {key.value}", flush=True)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    print("Stopping the local host...", flush=True)
    host.stop()
    return 0


_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class StructuredFormatter(logging.Formatter):
    """Appends a record's structured fields (`extra={"connection_id": ...}`) as key=value."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # before any traceback
        line = super().formatMessage(record)
        fields = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return line


def _browser_origin(listening: str) -> str:
    """The origin to print links with: PUBLIC_BASE_URL when it names this host (sign-in's cookie
    lives on that host name, so a link on another name of this machine would fail there)."""
    from urllib.parse import urlsplit

    public = os.environ.get("PUBLIC_BASE_URL", "").strip().rstrip("/")
    parts, mine = urlsplit(public), urlsplit(listening)
    if parts.hostname in ("localhost", "127.0.0.1", "::1") and parts.port == mine.port:
        return f"{parts.scheme}://{parts.netloc}"
    return listening


def _describe(spec, url: str) -> str:
    if spec.trigger == "httpTrigger":
        from .bindings import starlette_path

        auth = "" if spec.auth_level == "ANONYMOUS" else " (function key)"
        return f"[{','.join(spec.methods)}] {url}{starlette_path(spec.route).replace(':path', '')}{auth}"
    if spec.trigger == "queueTrigger":
        return f"queue {spec.queue_name}"
    if spec.trigger == "timerTrigger":
        return f"timer {spec.schedule}" + (" (runs on startup)" if spec.run_on_startup else "")
    return spec.trigger


if __name__ == "__main__":
    sys.exit(main())
