"""The daemon's scheduled work that the configuration decides: cron jobs, the QA cycle.

``Schedules.apply(tasks, wanted)`` is given what should run now, by name: a ``Schedule``
(when, and the work). One whose ``when`` did not change keeps running untouched; one that
is gone or changed is told to stop -- a run in progress finishes first, nothing is cut
off mid-command -- and new ones start as tasks of the daemon's TaskGroup, which owns them.
The daemon applies the schedules of its configuration at start and again after a reload,
and cancels them all when it stops.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field

__all__ = ["Delays", "Schedule", "Schedules", "cron_delays", "every"]

log = logging.getLogger(__name__)

Delays = Callable[[], float | None]  # seconds until the next run; None: never again


@dataclass(frozen=True, slots=True)
class Schedule:
    """Work to run at times: ``when`` tells whether two schedules are the same."""

    when: Hashable  # a CronJob, ("every", 900.0), ...
    delays: Callable[[], Delays] = field(compare=False)  # a fresh clock of runs per start
    work: Callable[[], Awaitable[None]] = field(compare=False)


def every(seconds: float) -> Callable[[], Delays]:
    """Every ``seconds``, the first a period after the start."""
    return lambda: lambda: seconds


def cron_delays(expression: str) -> Callable[[], Delays]:
    """At the times of five crontab fields, in UTC."""

    def start() -> Delays:
        from apscheduler.triggers.cron import CronTrigger

        trigger = CronTrigger.from_crontab(expression, timezone="UTC")
        previous: list[dt.datetime | None] = [None]

        def delay() -> float | None:
            now = dt.datetime.now(dt.UTC)
            when: dt.datetime | None = trigger.get_next_fire_time(previous[0], now)
            if when is None:
                return None
            previous[0] = when
            return float(max(0.0, (when - now).total_seconds()))

        return delay

    return start


class Schedules:
    """The schedules running now, each a task with its own stop signal."""

    def __init__(self) -> None:
        self._running: dict[str, tuple[Schedule, asyncio.Event]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.started = 0
        self.stopped = 0

    def __repr__(self) -> str:
        return f"<Schedules running={sorted(self._running)}>"

    def names(self) -> list[str]:
        return sorted(self._running)

    def apply(self, tasks: asyncio.TaskGroup, wanted: Mapping[str, Schedule]) -> None:
        """Run exactly ``wanted``: keep the unchanged, stop the rest, start the new."""
        stopped, started = [], []
        for name, (schedule, stop) in list(self._running.items()):
            if wanted.get(name) != schedule:
                stop.set()
                del self._running[name]
                self.stopped += 1
                stopped.append(name)
        for name, schedule in wanted.items():
            if name not in self._running:
                started.append(name)
                stop = asyncio.Event()
                self._running[name] = (schedule, stop)
                task = tasks.create_task(_run(name, schedule, stop), name=name)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                self.started += 1
        if stopped or started:
            log.info(
                "schedules: started %s; stopped %s",
                ", ".join(started) or "none",
                ", ".join(stopped) or "none",
            )

    def cancel(self) -> None:
        """At shutdown: cancel every schedule's task, a run in progress too."""
        self._running.clear()
        for task in list(self._tasks):
            task.cancel()


async def _run(name: str, schedule: Schedule, stop: asyncio.Event) -> None:
    delays = schedule.delays()
    while True:
        delay = delays()
        if delay is None:
            return
        try:
            await asyncio.wait_for(stop.wait(), delay)
            return  # told to stop while waiting
        except TimeoutError:
            pass
        try:
            await schedule.work()
        except Exception:  # this loop's one boundary: log, and keep the schedule
            log.exception("%s failed; it runs again at its next time", name)
        if stop.is_set():
            return
