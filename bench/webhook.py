"""Webhook: Graph change notifications POSTed through the local host into the sync queue.

Baseline: a bare function that only returns 202, served by the same host machinery (the same
Starlette/uvicorn adapter, the same request conversion), so the ratio is the cost of our handler:
parse, check clientState, enqueue. Targets: p99 < 50 ms (Graph allows 3 s), 300+ notifications/s.

    .venv/bin/python -m bench.webhook [--clients 4] [--requests 1500]
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

from .load import LoadResult, post_load
from .report import Section

JSON = {"content-type": "application/json"}


def bare_app():
    """A FunctionApp with one route that only answers 202: the floor of the host itself."""
    import azure.functions as func

    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="notifications", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    def notifications(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(status_code=202)

    return app


def serve_bare():
    from devtools.host.bindings import load
    from devtools.host.http_server import build_http_app
    from devtools.serving import ServerThread

    return ServerThread(build_http_app(load(bare_app()), function_key="unused")).start()


def notification_body(subscription_id: str, client_state: str) -> bytes:
    expires = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
    return json.dumps({"value": [{
        "subscriptionId": subscription_id, "clientState": client_state, "changeType": "updated",
        "resource": "me/drive/root", "tenantId": "9188040d-6c67-4c5b-b112-36a304b66dad",
        "subscriptionExpirationDateTime": expires, "resourceData": None,
    }]}).encode()


def describe(section: Section, name: str, result: LoadResult, baseline: LoadResult | None) -> None:
    ratio = ""
    if baseline is not None:
        ratio = f"   p99 ×{result.p(99) / baseline.p(99):.2f}, throughput ×{result.per_second / baseline.per_second:.2f} of bare"
    section.line(f"{name:<26} p50 {result.p(50):6.1f} ms  p99 {result.p(99):6.1f} ms  "
                 f"{result.per_second:7.0f} req/s  ({result.requests} requests, statuses {dict(sorted(result.statuses.items()))}){ratio}")


def run(clients: int = 4, requests: int = 1500, connections: int = 4) -> Section:
    from functions import storage

    from .environment import environment

    section = Section(f"Webhook: notifications through the local host into the queue ({clients} concurrent clients)").start()
    per_client = requests // clients
    warmup = 20
    with environment() as env:
        subscriptions = []
        for index in range(connections):
            user = env.emulator.add_user(email=f"bench{index}@example.com", display_name=f"Bench {index}")
            env.connect(user)
        for subscription in env.emulator.subscriptions:
            subscriptions.append((subscription["id"], subscription["clientState"]))
        if not subscriptions:
            raise RuntimeError("no Graph subscription was created by sign-in")
        bodies = [[notification_body(*subscriptions[c % len(subscriptions)])] * (per_client + warmup) for c in range(clients)]

        bare = serve_bare()
        try:
            baseline = post_load(f"{bare.url}/api/notifications", bodies, headers=JSON, warmup=warmup)
        finally:
            bare.stop()
        describe(section, "bare 202 (baseline)", baseline, None)

        url = env.serve_app()
        queue = storage.queue(storage.Queues.SYNC)
        queue.clear_messages()
        app = post_load(f"{url}/api/notifications", bodies, headers=JSON, warmup=warmup)
        describe(section, "notifications → queue", app, baseline)
        queued = queue.get_queue_properties().approximate_message_count
        section.line(f"sync messages on the queue afterwards: {queued} (for {len(subscriptions)} connections)")
        section.line(f"targets: p99 < 50 ms: {'met' if app.p(99) < 50 else 'MISSED'}; "
                     f"300+ notifications/s: {'met' if app.per_second >= 300 else 'MISSED'}")
    section.figures.update({
        "bare_p50_ms": baseline.p(50), "bare_p99_ms": baseline.p(99), "bare_per_s": baseline.per_second,
        "p50_ms": app.p(50), "p99_ms": app.p(99), "per_s": app.per_second,
        "errors": sum(n for s, n in app.statuses.items() if s >= 400),
    })
    return section


def main() -> Section:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=1500)
    args = parser.parse_args()
    return run(args.clients, args.requests)


if __name__ == "__main__":
    main()
