"""Measure retention: how fast a pass prunes, how long one batch holds the database, and
what it costs the hot path (the event bus's inserts) while it runs.

For each backend (SQLite in a temp file; PostgreSQL in a throwaway cluster, or
``--postgres URL`` of an empty database you own) it stores ``--old`` events older than
the horizon (one in 50 with a delivered alert) and ``--young`` newer ones, then prints:

- ``prune``: rows deleted per second by one pass (batches of 500, without the pauses the
  daemon makes between them), and the longest and the 95th percentile batch;
- ``inserts``: the latency of a batch of 50 events (as the bus commits them), median and
  95th percentile, alone and while a pass (with its pauses, as in the daemon) runs.

Figures only; nothing is asserted but that the right rows went.

Run: ``.venv/bin/python bench/bench_retention.py [--old 100000] [--young 10000]
[--postgres URL]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.pgcluster

from farmbot.messages import Severity
from farmbot.models import AlertDraft, NewEvent
from farmbot.storage import Storage, open_sqlite
from farmbot.storage.postgres import PostgresDatabase
from farmbot.storage.retention import BATCH, DAY, PAUSE, Batch, Retention, RetentionStore

Opener = Callable[[], AbstractAsyncContextManager[Storage]]
KEEP = 30 * DAY


class Timed(RetentionStore):
    """The real store, timing each batch."""

    def __init__(self, inner: RetentionStore) -> None:
        self.inner = inner
        self.times: list[float] = []

    async def prune_batch(self, table: str, before: float, after_id: int, limit: int) -> Batch:
        started = time.perf_counter()
        try:
            return await self.inner.prune_batch(table, before, after_id, limit)
        finally:
            self.times.append((time.perf_counter() - started) * 1000)


def _event(i: int) -> NewEvent:
    return NewEvent("hook.PreToolUse", f"builder-{i % 8}", "farm", {"tool": "Bash", "seq": i})


def _alert(i: int) -> AlertDraft:
    return AlertDraft(
        "agent.stuck", Severity.WARNING, "builder-1", "farm", f"alert {i}", "no output",
        routes=(("chat", f"C{i % 10}"),),
    )  # fmt: skip


async def fill(storage: Storage, old: int, young: int, now: float) -> None:
    for start in range(0, old, 1000):
        batch = [
            (_event(i), [_alert(i)] if i % 50 == 0 else [])
            for i in range(start, min(start + 1000, old))
        ]
        await storage.events.add_events(batch, now - KEEP - DAY, dedupe_window=300)
    await storage.db.execute(
        "UPDATE outbox SET status = 'delivered', delivered_at = ?", (now - KEEP - DAY,)
    )
    for start in range(0, young, 1000):
        batch = [(_event(i), []) for i in range(start, min(start + 1000, young))]
        await storage.events.add_events(batch, now - DAY, dedupe_window=300)


async def insert_latencies(storage: Storage, count: int, now: float) -> list[float]:
    timings: list[float] = []
    for n in range(count):
        batch = [(_event(n * 50 + i), ()) for i in range(50)]
        started = time.perf_counter()
        await storage.events.add_events(batch, now, dedupe_window=300)
        timings.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.005)
    return timings


def _p(timings: list[float], q: float) -> float:
    ordered = sorted(timings)
    return ordered[max(0, int(len(ordered) * q) - 1)]


async def measure(name: str, opener: Opener, args: argparse.Namespace) -> None:
    now = time.time()
    async with opener() as storage:
        await fill(storage, args.old, args.young, now)
        timed = Timed(storage.retention)

        async def no_pause(seconds: float) -> None:
            pass

        retention = Retention(timed, keep_events=KEEP, clock=lambda: now, sleep=no_pause)
        started = time.perf_counter()
        pruned = await retention.prune()
        elapsed = time.perf_counter() - started
        rows = sum(pruned.values())
        assert pruned["events"] == args.old, pruned
        alone = await insert_latencies(storage, args.inserts, now)
    async with opener() as storage:  # the same again, with the hot path running alongside
        for table in ("outbox", "alerts", "events"):  # from empty: the old rows come first
            await storage.db.execute(f"DELETE FROM {table}")
        await fill(storage, args.old, args.young, now)
        retention = Retention(storage.retention, keep_events=KEEP, clock=lambda: now, pause=PAUSE)
        pass_ = asyncio.create_task(retention.prune())
        during = await insert_latencies(storage, args.inserts, now)
        await pass_
    print(
        f"{name:<12} prune {rows / elapsed:>9,.0f} rows/s ({rows} rows, batches of {BATCH}: "
        f"max {max(timed.times):.1f} ms, p95 {_p(timed.times, 0.95):.1f} ms)   inserts of 50: "
        f"alone median {statistics.median(alone):.2f} ms p95 {_p(alone, 0.95):.2f} ms, "
        f"during a pass median {statistics.median(during):.2f} ms p95 {_p(during, 0.95):.2f} ms"
    )


def postgres_opener(url: str) -> Opener:
    @asynccontextmanager
    async def opener() -> AsyncIterator[Storage]:
        async with PostgresDatabase(url) as db:
            yield Storage.over(db)

    return opener


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="farmbot-bench-") as tmp:
        await measure("sqlite", lambda: open_sqlite(Path(tmp) / "farmbot.db"), args)
    cluster = None
    url = args.postgres
    if url is None:
        from tests.pgcluster import find_bindir, start_cluster

        bindir = find_bindir()
        if bindir is None:
            print("postgresql: no PostgreSQL binaries found (apt-get install postgresql)")
            return
        cluster = start_cluster(bindir, settings=())  # the server's defaults: fsync on
        url = cluster.url(cluster.create_database())
    try:
        await measure("postgresql", postgres_opener(url), args)
    finally:
        if cluster is not None:
            cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=int, default=100_000)
    parser.add_argument("--young", type=int, default=10_000)
    parser.add_argument("--inserts", type=int, default=100, help="batches of 50 timed")
    parser.add_argument("--postgres", metavar="URL", help="an empty database to measure on")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
