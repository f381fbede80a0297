"""mitmproxy addon of devtools/rclone.py (tests/conformance, bench/peer.py): Microsoft's hosts go
to the emulator, every other host is refused, so a real client (rclone) talks to the emulator as
if it were Microsoft.

EMULATOR_API and EMULATOR_DOWNLOAD name the emulator's two origins as host:port (plain http).
"""

from __future__ import annotations

import os

from mitmproxy import http

API = os.environ["EMULATOR_API"]
DOWNLOAD = os.environ["EMULATOR_DOWNLOAD"]
# Sign-in and Graph share one origin in the emulator.
ROUTES = {
    "graph.microsoft.com": API,
    "login.microsoftonline.com": API,
    "login.live.com": API,
}
DOWNLOAD_SUFFIX = ".files.1drv.com"  # where the emulator says its download URLs live


def target(host: str) -> str | None:
    if host in ROUTES:
        return ROUTES[host]
    if host.endswith(DOWNLOAD_SUFFIX):
        return DOWNLOAD
    return None


def refuse(flow: http.HTTPFlow, host: str) -> None:
    flow.response = http.Response.make(
        403, f"the conformance proxy refuses {host}: only Microsoft's hosts go (to the emulator)".encode(),
        {"Content-Type": "text/plain"},
    )


def http_connect(flow: http.HTTPFlow) -> None:
    if target(flow.request.pretty_host) is None:
        refuse(flow, flow.request.pretty_host)


def request(flow: http.HTTPFlow) -> None:
    host = flow.request.pretty_host
    destination = target(host)
    if destination is None:
        refuse(flow, host)
        return
    address, _, port = destination.rpartition(":")
    flow.request.scheme = "http"
    flow.request.host = address
    flow.request.port = int(port)
