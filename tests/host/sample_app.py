"""A small function app for the local host's own tests: every kind of trigger, sync and async,
some failing on purpose. Invocations are recorded in memory and readable over HTTP."""

import asyncio
import json
import threading
import time

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

WORK_QUEUE = "host-test-work"
ASYNC_QUEUE = "host-test-async"

invocations: list[dict] = []
concurrency = {"now": 0, "max": 0}
_lock = threading.Lock()


def record(function: str, **details) -> None:
    with _lock:
        invocations.append({"function": function, **details})


@app.route(route="hello/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"hello {req.route_params['name']}", mimetype="text/plain")


@app.route(route="hello-async/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def hello_async(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0.01)
    return func.HttpResponse(f"hello {req.route_params['name']}, asynchronously", mimetype="text/plain")


@app.route(route="invocations", methods=["GET"])
def list_invocations(req: func.HttpRequest) -> func.HttpResponse:
    with _lock:
        return func.HttpResponse(json.dumps(invocations), mimetype="application/json")


@app.route(route="boom", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("boom: an HTTP function failing on purpose")


@app.queue_trigger(arg_name="msg", queue_name=WORK_QUEUE, connection="AzureWebJobsStorage")
def work(msg: func.QueueMessage) -> None:
    payload = json.loads(msg.get_body())
    record("work", id=msg.id, payload=payload, dequeue_count=msg.dequeue_count)
    if payload.get("hold"):
        with _lock:
            concurrency["now"] += 1
            concurrency["max"] = max(concurrency["max"], concurrency["now"])
        time.sleep(payload["hold"])  # a slow function, to observe how many run at once
        with _lock:
            concurrency["now"] -= 1
    if payload.get("fail"):
        raise RuntimeError(f"work: failing on purpose (attempt {msg.dequeue_count})")


@app.queue_trigger(arg_name="msg", queue_name=ASYNC_QUEUE, connection="AzureWebJobsStorage")
async def work_async(msg: func.QueueMessage) -> None:
    await asyncio.sleep(0.01)
    payload = json.loads(msg.get_body())
    record("work_async", payload=payload, dequeue_count=msg.dequeue_count)
    if payload.get("fail_until", 0) >= msg.dequeue_count:
        raise RuntimeError(f"work_async: failing on purpose (attempt {msg.dequeue_count})")


@app.timer_trigger(arg_name="timer", schedule="%SAMPLE_SCHEDULE%", run_on_startup=True)
def tick(timer: func.TimerRequest) -> None:
    record("tick", past_due=timer.past_due)
