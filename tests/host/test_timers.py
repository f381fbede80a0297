"""Timer triggers: six-field NCRONTAB (seconds first), runOnStartup, past_due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devtools.host.bindings import FunctionSpec
from devtools.host.invocation import Invoker
from devtools.host.timers import Schedule, TimerRunner
from tests.fixtures.waiting import eventually
from tests.host.conftest import invocations_of

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_ncrontab_has_seconds_first():
    assert Schedule("0 */30 * * * *").next_after(T0) == T0 + timedelta(minutes=30)
    assert Schedule("*/5 * * * * *").next_after(T0) == T0 + timedelta(seconds=5)
    assert Schedule("30 0 9 * * 1-5").next_after(T0) == datetime(2025, 3, 3, 9, 0, 30, tzinfo=UTC)  # Monday


def test_timespan_schedule_is_an_interval():
    assert Schedule("00:05:00").next_after(T0) == T0 + timedelta(minutes=5)


@pytest.mark.parametrize("bad", ["*/30 * * * *", "0 61 * * * *", "every minute", "00:00:00"])
def test_invalid_schedules_are_refused_with_the_expression(bad):
    with pytest.raises(ValueError, match="schedule|interval"):
        Schedule(bad)


def _timer_spec(handler, *, schedule="*/1 * * * * *", run_on_startup=False) -> FunctionSpec:
    binding = {"type": "timerTrigger", "name": "timer", "schedule": schedule, "runOnStartup": run_on_startup}
    return FunctionSpec("a_timer", "timerTrigger", "timer", handler, binding)


def test_a_late_occurrence_is_past_due():
    times = iter([T0])  # then the host is busy for half a minute before it looks again
    clock = lambda: next(times, T0 + timedelta(seconds=30))  # noqa: E731
    received = []

    def handler(timer):
        received.append(timer)
        runner._stopping.set()

    runner = TimerRunner(_timer_spec(handler), Invoker(), clock=clock)
    runner._run()
    assert [timer.past_due for timer in received] == [True]
    assert received[0].schedule_status["Next"]


def test_run_on_startup_fires_at_once_and_then_on_schedule(start_host):
    start_host(run_timers=True)  # the sample app's `tick`: every second, runOnStartup

    first = eventually(lambda: invocations_of("tick"), timeout=2, message="startup run")
    assert first[0]["past_due"] is False
    eventually(lambda: len(invocations_of("tick")) >= 3, timeout=5, message="scheduled runs")


def test_a_failing_timer_keeps_firing():
    calls = []

    def handler(timer):
        calls.append(timer)
        raise RuntimeError("timer failing on purpose")

    runner = TimerRunner(_timer_spec(handler, run_on_startup=True), Invoker()).start()
    try:
        eventually(lambda: len(calls) >= 2, timeout=5, message="fired again after a failure")
    finally:
        runner.stop()


def test_a_bad_schedule_from_an_app_setting_names_the_setting():
    binding = {"type": "timerTrigger", "name": "timer", "schedule": "every 30 minutes"}
    spec = FunctionSpec("maintenance_timer", "timerTrigger", "timer", lambda timer: None, binding,
                        placeholders=(("schedule", "MAINTENANCE_SCHEDULE"),))
    with pytest.raises(ValueError, match="Setting MAINTENANCE_SCHEDULE .*maintenance_timer.*every 30 minutes"):
        TimerRunner(spec, Invoker())
