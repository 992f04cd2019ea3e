"""Retention: old events, the alerts they raised once delivered, and old audit rows go.

Without it the events table grows forever (hook events arrive thousands a second).
``Retention.run()`` is a long-lived task of the daemon: every ``EVERY`` seconds one pass
deletes, in batches of ``BATCH`` rows with a pause between them (so the event writer and
everyone else get the database in between), first delivered outbox rows (delivered, and
last repeated, before the horizon), then the alerts no outbox row points at any more, then
the events no alert points at, all older than ``[storage] keep_events_days``; then audit
rows older than ``keep_audit_days``, if set.

What is never pruned, whatever its age: an outbox row not delivered (pending, being sent,
or a dead letter that ``/retry`` can still send), hence its alert, hence that alert's
event. Folded repeats point at the newest alert of their row; the older ones are pruned
with their events once old. Every other table (agents, prompts, gates, tasks, QA runs) is
small and is kept.

Each batch walks a table in id order from where the last one stopped (ids follow time),
reads at most ``BATCH`` ids and deletes the old ones among them with one statement; a
pass ends at the first row young enough to keep. So a batch costs the same however large
the table is, and a pass over a table with nothing to prune reads one batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from farmbot.errors import StorageError
from farmbot.storage.db import Database

__all__ = ["BATCH", "EVERY", "Retention", "RetentionStore", "SqlRetentionStore"]

log = logging.getLogger(__name__)

BATCH = 500  # rows read (and at most deleted) per statement
PAUSE = 0.05  # seconds between two batches: the hot path gets the database
EVERY = 3600.0  # seconds between passes
FIRST = 60.0  # seconds after start before the first pass
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class _Table:
    """How to walk one table in time order and delete its old rows."""

    name: str
    time: str  # the column that grows with id: the walk stops at the first young row
    delete: str  # the statement: (after id, up to id, then "older than" ``olders`` times)
    olders: int = 1


_OUTBOX = _Table(
    "outbox",
    "created_at",
    "DELETE FROM outbox WHERE id > ? AND id <= ? AND status = 'delivered'"
    " AND last_at < ? AND delivered_at < ?",
    olders=2,  # its last repeat and its delivery: a message sent just now stays a while
)
_ALERTS = _Table(
    "alerts",
    "created_at",
    "DELETE FROM alerts WHERE id > ? AND id <= ? AND created_at < ?"
    " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.alert_id = alerts.id)",
)
_EVENTS = _Table(
    "events",
    "ts",
    "DELETE FROM events WHERE id > ? AND id <= ? AND ts < ?"
    " AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.event_id = events.id)",
)
_AUDIT = _Table("audit", "ts", "DELETE FROM audit WHERE id > ? AND id <= ? AND ts < ?")
TABLES = {t.name: t for t in (_OUTBOX, _ALERTS, _EVENTS, _AUDIT)}


@dataclass(frozen=True, slots=True)
class Batch:
    """What one batch did: rows deleted, and the id to go on after (None: the pass is done)."""

    deleted: int
    next_after: int | None


class RetentionStore(Protocol):
    async def prune_batch(self, table: str, before: float, after_id: int, limit: int) -> Batch:
        """Delete the prunable rows of ``table`` older than ``before`` among the next
        ``limit`` rows after ``after_id``."""


class SqlRetentionStore(RetentionStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def prune_batch(self, table: str, before: float, after_id: int, limit: int) -> Batch:
        t = TABLES[table]
        rows = await self._db.fetchall(
            f"SELECT id, {t.time} AS t FROM {t.name} WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        )
        old = 0
        while old < len(rows) and float(rows[old]["t"]) < before:
            old += 1
        if old == 0:
            return Batch(0, None)
        last = int(rows[old - 1]["id"])
        deleted = await self._db.execute(t.delete, (after_id, last, *[before] * t.olders))
        done = old < len(rows) or len(rows) < limit
        return Batch(deleted, None if done else last)


class Retention:
    """Prunes what is older than the horizons; ``run()`` runs a pass every ``EVERY`` s."""

    def __init__(
        self,
        store: RetentionStore,
        *,
        keep_events: float | None,
        keep_audit: float | None = None,
        clock: Callable[[], float] = time.time,
        batch: int = BATCH,
        pause: float = PAUSE,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._clock = clock
        self._batch = batch
        self._pause = pause
        self._sleep = sleep
        self.keep_events = keep_events
        self.keep_audit = keep_audit
        self.passes = 0
        self.pruned = dict.fromkeys(TABLES, 0)  # rows deleted since start, by table
        self.last_pass_seconds = 0.0

    def __repr__(self) -> str:
        return f"<Retention passes={self.passes} pruned={self.pruned}>"

    def statistics(self) -> dict[str, int | float | str]:
        return {
            "passes": self.passes,
            **{f"pruned_{name}": n for name, n in self.pruned.items()},
        }

    def reconfigure(self, *, keep_events: float | None, keep_audit: float | None) -> None:
        """New horizons (seconds; None keeps forever), from the next pass on."""
        self.keep_events = keep_events
        self.keep_audit = keep_audit

    async def run(self, every: float = EVERY, first: float = FIRST) -> None:
        """A pass ``first`` seconds after start, then every ``every`` seconds, forever."""
        await self._sleep(first)
        while True:
            try:
                await self.prune()
            except StorageError as exc:  # the database is down: the next pass tries again
                log.warning("retention: pass failed, next in %.0f s: %s", every, exc)
            await self._sleep(every)

    async def prune(self) -> dict[str, int]:
        """One pass over every table; the rows deleted, by table."""
        started = time.monotonic()
        now = self._clock()
        done = dict.fromkeys(TABLES, 0)
        if self.keep_events is not None:
            for table in ("outbox", "alerts", "events"):  # referrers first
                done[table] = await self._prune(table, now - self.keep_events)
        if self.keep_audit is not None:
            done["audit"] = await self._prune("audit", now - self.keep_audit)
        self.passes += 1
        self.last_pass_seconds = time.monotonic() - started
        if any(done.values()):
            log.info(
                "retention: pruned %s in %.1f s",
                ", ".join(f"{n} {table}" for table, n in done.items() if n),
                self.last_pass_seconds,
            )
        return done

    async def _prune(self, table: str, before: float) -> int:
        total = 0
        after: int | None = 0
        while after is not None:
            step = await self._store.prune_batch(table, before, after, self._batch)
            total += step.deleted
            self.pruned[table] += step.deleted
            after = step.next_after
            if after is not None:
                await self._sleep(self._pause)
        return total


def horizon(days: int) -> float | None:
    """A ``keep_*_days`` setting in seconds; None (keep forever) for 0."""
    return days * DAY if days > 0 else None
