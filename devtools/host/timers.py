"""Timer triggers: six-field NCRONTAB schedules (seconds first), as the Functions host fires them.

`runOnStartup` fires once when the host starts. An occurrence that fires late (the host was
busy, or the previous run was still going: runs of one timer never overlap) is `past_due`.
The schedule status (last and next occurrence) lives in memory: a restarted local host does not
catch up on occurrences it missed, while Azure's (which keeps it in blob storage) does once.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from azure.functions.timer import TimerRequest
from croniter import croniter

from .bindings import FunctionSpec
from .config import parse_timespan
from .invocation import Invoker

log = logging.getLogger("devtools.host")

# Fired later than this after its occurrence, a run is past due.
PAST_DUE_TOLERANCE = timedelta(seconds=1)


class Schedule:
    """An NCRONTAB expression (`0 */30 * * * *`) or a TimeSpan interval (`00:05:00`)."""

    def __init__(self, expression: str) -> None:
        self.expression = expression.strip()
        self._interval: timedelta | None = None
        if re.fullmatch(r"(\d+\.)?\d{1,2}:\d{2}:\d{2}", self.expression):
            self._interval = timedelta(seconds=parse_timespan(self.expression))
            if self._interval <= timedelta(0):
                raise ValueError(f"timer interval must be positive: {expression!r}")
            return
        if len(self.expression.split()) != 6:
            raise ValueError(f"timer schedule must have six fields (second minute hour day month weekday): {expression!r}")
        if not croniter.is_valid(self.expression, second_at_beginning=True):
            raise ValueError(f"not a valid NCRONTAB schedule: {expression!r}")

    def next_after(self, moment: datetime) -> datetime:
        if self._interval is not None:
            return moment + self._interval
        return croniter(self.expression, moment, second_at_beginning=True).get_next(datetime)


def utcnow() -> datetime:
    return datetime.now(UTC)


class TimerRunner:
    """Fires one timer-triggered function on its schedule. `start()`, `stop()`."""

    def __init__(self, spec: FunctionSpec, invoker: Invoker, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.spec = spec
        try:
            self.schedule = Schedule(spec.schedule)
        except ValueError as error:  # name the app setting it came from, if any
            setting = spec.setting_of("schedule")
            raise ValueError(f"Setting {setting} (the schedule of timer {spec.name}): {error}" if setting
                             else f"Timer {spec.name}: {error}") from None
        self.invoker = invoker
        self.clock = clock
        self.runs = 0
        self._last: datetime | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"timer:{spec.name}", daemon=True)

    def start(self) -> TimerRunner:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30) -> None:
        self._stopping.set()
        self._thread.join(timeout=timeout)

    def _run(self) -> None:
        if self.spec.run_on_startup:
            self._fire(scheduled=self.clock(), past_due=False)
        occurrence = self.schedule.next_after(self.clock())
        while not self._stopping.is_set():
            wait = (occurrence - self.clock()).total_seconds()
            if wait > 0:
                # Wake at least every few seconds: a clock jump (suspend, NTP) is noticed soon.
                self._stopping.wait(min(wait, 5.0))
                continue
            now = self.clock()
            self._fire(scheduled=occurrence, past_due=now - occurrence > PAST_DUE_TOLERANCE)
            # Occurrences missed while this one ran are skipped, not queued up (as in Azure).
            occurrence = self.schedule.next_after(max(occurrence, self.clock()))

    def _fire(self, *, scheduled: datetime, past_due: bool) -> None:
        next_occurrence = self.schedule.next_after(scheduled)
        status = {
            "Last": (self._last or scheduled).isoformat(),
            "Next": next_occurrence.isoformat(),
            "LastUpdated": self.clock().isoformat(),
        }
        request = TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})
        try:
            self.invoker.invoke(self.spec, request, reason=f"Timer fired at {self.clock().isoformat()}")
        except Exception:
            pass  # logged by the invoker; the next occurrence fires as usual
        finally:
            self.runs += 1
            self._last = scheduled
