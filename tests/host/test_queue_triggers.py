"""Queue triggers run by the local host with the semantics of host.json."""

from __future__ import annotations

import json
import logging
import time

import httpx

from devtools.host.config import HostOptions, QueueOptions
from tests.fixtures.waiting import eventually
from tests.host import sample_app
from tests.host.conftest import FAST, invocations_of, raw_queue, send_base64


def test_message_is_base64_decoded_passed_with_dequeue_count_and_deleted_after_success(start_host):
    start_host()
    send_base64(sample_app.WORK_QUEUE, json.dumps({"n": 1}))

    [invocation] = eventually(lambda: invocations_of("work"), message="work invoked")
    assert invocation["payload"] == {"n": 1}
    assert invocation["dequeue_count"] == 1
    eventually(lambda: raw_queue(sample_app.WORK_QUEUE).get_queue_properties().approximate_message_count == 0,
               message="message deleted after success")
    assert len(invocations_of("work")) == 1


def test_failing_message_is_retried_then_moved_unchanged_to_poison_and_host_keeps_serving(start_host, caplog):
    caplog.set_level(logging.INFO, logger="devtools.host")
    host = start_host()
    poisoned_text = json.dumps({"fail": True})
    send_base64(sample_app.WORK_QUEUE, poisoned_text)

    poison = raw_queue(sample_app.WORK_QUEUE + "-poison")
    [kept] = eventually(lambda: poison.peek_messages(max_messages=5), message="message in the poison queue")
    assert json.loads(__import__("base64").b64decode(kept.content)) == {"fail": True}
    assert [i["dequeue_count"] for i in invocations_of("work")] == [1, 2, 3]  # maxDequeueCount = 3
    assert raw_queue(sample_app.WORK_QUEUE).peek_messages() == []
    assert "moved to poison queue host-test-work-poison after 3 attempts" in caplog.text
    assert "work: failing on purpose" in caplog.text  # the failure itself is logged, with its traceback

    # The host is unharmed: HTTP still answers, and the next message is processed.
    assert httpx.get(f"{host.url}/api/hello/again").text == "hello again"
    send_base64(sample_app.WORK_QUEUE, json.dumps({"n": 2}))
    eventually(lambda: any(i["payload"] == {"n": 2} for i in invocations_of("work")), message="next message processed")


def test_message_that_is_not_base64_goes_to_poison_without_running_the_function(start_host, caplog):
    start_host()
    raw_queue(sample_app.WORK_QUEUE).send_message('{"plain": "text, not base64"}')

    poison = raw_queue(sample_app.WORK_QUEUE + "-poison")
    [kept] = eventually(lambda: poison.peek_messages(), message="undecodable message poisoned")
    assert kept.content == '{"plain": "text, not base64"}'
    assert invocations_of("work") == []
    assert "is not valid base64" in caplog.text


def test_async_function_is_retried_until_it_succeeds(start_host):
    start_host()
    send_base64(sample_app.ASYNC_QUEUE, json.dumps({"fail_until": 1}))

    eventually(lambda: len(invocations_of("work_async")) == 2, message="second attempt")
    assert [i["dequeue_count"] for i in invocations_of("work_async")] == [1, 2]
    eventually(lambda: raw_queue(sample_app.ASYNC_QUEUE).get_queue_properties().approximate_message_count == 0)
    assert raw_queue(sample_app.ASYNC_QUEUE + "-poison").peek_messages() == []


def test_failed_message_stays_invisible_for_the_visibility_timeout(start_host):
    options = HostOptions(queues=QueueOptions(**{**FAST.queues.__dict__, "visibility_timeout": 2.0}))
    start_host(options=options)
    send_base64(sample_app.ASYNC_QUEUE, json.dumps({"fail_until": 1}))

    eventually(lambda: invocations_of("work_async"), message="first attempt")
    first = time.monotonic()
    eventually(lambda: len(invocations_of("work_async")) == 2, timeout=15, message="retry after the timeout")
    assert time.monotonic() - first >= 1.5


def test_batch_size_and_new_batch_threshold_bound_concurrency(start_host):
    sample_app.concurrency.update(now=0, max=0)
    for n in range(12):
        send_base64(sample_app.WORK_QUEUE, json.dumps({"n": n, "hold": 0.4}))
    start_host()  # batchSize 4, newBatchThreshold 2: at most 4 + 2 at once

    eventually(lambda: len(invocations_of("work")) == 12, timeout=20, message="all twelve processed")
    assert 4 <= sample_app.concurrency["max"] <= 6
    assert sorted(i["payload"]["n"] for i in invocations_of("work")) == list(range(12))


def test_stopping_with_a_hung_invocation_loses_nothing(start_host):
    options = HostOptions(queues=FAST.queues, function_timeout=3)  # the lease while a function runs
    host = start_host(options=options)
    send_base64(sample_app.WORK_QUEUE, json.dumps({"n": 7, "hold": 6}))
    eventually(lambda: invocations_of("work"), message="invocation started")

    started = time.monotonic()
    host.stop(timeout=0.5)
    assert time.monotonic() - started < 2.5  # shutdown doesn't wait for the hung function

    # Like a crashed Azure host: the message comes back when its lease runs out.
    [back] = eventually(lambda: raw_queue(sample_app.WORK_QUEUE).peek_messages(), timeout=10, message="message back")
    assert json.loads(__import__("base64").b64decode(back.content))["n"] == 7
