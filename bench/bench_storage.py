"""Measure the storage backends: batched event inserts, and the outbox's due query.

For each backend (SQLite in a temp file, as farmbot opens it; PostgreSQL in a throwaway
cluster with the server's default durability, or ``--postgres URL`` of an empty database
you own), this prints:

- ``add_events``: events per second, stored in batches (one transaction per batch, as the
  event bus writes them), without alerts;
- ``due_outbox``: the latency of the notifier's poll, median and 95th percentile, over an
  outbox of many delivered rows and a few open ones per channel (as it looks after a
  while in use).

PostgreSQL runs twice: as configured, and with ``synchronous_commit=off`` set through the
URL (a commit then does not wait for its WAL flush; like SQLite's ``synchronous=NORMAL``
in WAL mode, a crash of the machine can lose the last moments, never consistency).
Figures only; nothing is asserted.

Run: ``.venv/bin/python bench/bench_storage.py [--events 20000] [--batch 200]
[--outbox 20000] [--polls 200] [--postgres URL]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.pgcluster

from farmbot.messages import Severity
from farmbot.models import AlertDraft, NewEvent
from farmbot.storage import Storage, open_sqlite
from farmbot.storage.postgres import PostgresDatabase

Opener = Callable[[], AbstractAsyncContextManager[Storage]]
CHANNELS = 50


async def insert_events(storage: Storage, total: int, batch: int) -> float:
    """Insert ``total`` events in batches of ``batch``; return events per second."""
    batches = [
        [
            (
                NewEvent(
                    "hook.PreToolUse",
                    f"builder-{i % 8}",
                    "farm",
                    {"tool": "Bash", "command": "pytest -q", "seq": i},
                ),
                (),
            )
            for i in range(start, min(start + batch, total))
        ]
        for start in range(0, total, batch)
    ]
    started = time.perf_counter()
    for events in batches:
        await storage.events.add_events(events, time.time(), dedupe_window=300)
    elapsed = time.perf_counter() - started
    newest = await storage.events.recent_events(limit=1)
    assert newest and newest[0].data["seq"] == total - 1, "events went missing"
    return total / elapsed


async def due_latency(storage: Storage, rows: int, polls: int) -> tuple[float, float]:
    """Fill the outbox (``rows`` rows over CHANNELS channels, all but a few delivered);
    return the due query's median and 95th percentile in milliseconds."""
    now = time.time()
    for start in range(0, rows, 500):
        batch = [
            (NewEvent("agent.stuck", "builder-1", "farm"), [_alert(i)])
            for i in range(start, min(start + 500, rows))
        ]
        await storage.events.add_events(batch, now, dedupe_window=300)
    # All delivered but each channel's last four, as after a while in use.
    await storage.db.execute(
        "UPDATE outbox SET status = 'delivered', delivered_at = ?"
        " WHERE id <= (SELECT MAX(id) FROM outbox) - ?",
        (now, 4 * CHANNELS),
    )
    await storage.db.execute("ANALYZE")
    timings: list[float] = []
    for _ in range(polls):
        started = time.perf_counter()
        due = await storage.outbox.due_outbox(now + 1)
        timings.append((time.perf_counter() - started) * 1000)
    assert len(due) == CHANNELS, f"expected one head per channel, got {len(due)}"
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.95) - 1]


def _alert(n: int) -> AlertDraft:
    """Alert ``n``, to one of CHANNELS chat channels (no dedupe key: nothing folds)."""
    return AlertDraft(
        "agent.stuck",
        Severity.WARNING,
        "builder-1",
        "farm",
        f"alert {n}",
        "no output",
        routes=(("chat", f"C{n % CHANNELS}"),),
    )


async def measure(name: str, opener: Opener, args: argparse.Namespace) -> None:
    async with opener() as storage:
        rate = await insert_events(storage, args.events, args.batch)
    async with opener() as storage:
        median, p95 = await due_latency(storage, args.outbox, args.polls)
    print(
        f"{name:<40} add_events {rate:>9,.0f} events/s (batches of {args.batch})"
        f"   due_outbox median {median:.2f} ms, p95 {p95:.2f} ms ({args.outbox} rows)"
    )


def sqlite_opener(directory: Path) -> Opener:
    return lambda: open_sqlite(directory / "farmbot.db")


def postgres_opener(url: str) -> Opener:
    @asynccontextmanager
    async def opener() -> AsyncIterator[Storage]:
        async with PostgresDatabase(url) as db:
            yield Storage.over(db)

    return opener


def with_option(url: str, option: str) -> str:
    """The URL with a server setting for its sessions (libpq's ``options``)."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={urllib.parse.quote('-c ' + option)}"


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="farmbot-bench-") as tmp:
        await measure("sqlite (WAL, synchronous=NORMAL)", sqlite_opener(Path(tmp)), args)
    if args.postgres:
        urls = [args.postgres]
        cluster = None
    else:
        from tests.pgcluster import find_bindir, start_cluster

        bindir = find_bindir()
        if bindir is None:
            print("postgresql: no PostgreSQL binaries found (apt-get install postgresql)")
            return
        cluster = start_cluster(bindir, settings=())  # the server's defaults: fsync on
        urls = [cluster.url(cluster.create_database()), cluster.url(cluster.create_database())]
    try:
        await measure("postgresql (synchronous_commit=on)", postgres_opener(urls[0]), args)
        second = urls[1] if len(urls) > 1 else urls[0]
        if len(urls) == 1:
            async with postgres_opener(second)() as storage:  # start again from empty tables
                await storage.db.execute("TRUNCATE outbox, alerts, events RESTART IDENTITY")
        await measure(
            "postgresql (synchronous_commit=off)",
            postgres_opener(with_option(second, "synchronous_commit=off")),
            args,
        )
    finally:
        if cluster is not None:
            cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--outbox", type=int, default=20_000)
    parser.add_argument("--polls", type=int, default=200)
    parser.add_argument("--postgres", metavar="URL", help="an empty database to measure on")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
