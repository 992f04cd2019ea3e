"""Measure event insertion throughput of the SQLite store.

Run: ``.venv/bin/python bench/bench_storage.py [--events 50000] [--batch 200]``
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from farmbot.models import NewEvent
from farmbot.storage import open_sqlite


async def run(total: int, batch: int) -> float:
    """Insert ``total`` events in batches of ``batch``; return events per second."""
    with tempfile.TemporaryDirectory(prefix="farmbot-bench-") as tmp:
        async with open_sqlite(Path(tmp) / "farmbot.db") as store:
            batches = [
                [
                    NewEvent(
                        "hook.PreToolUse",
                        f"builder-{i % 8}",
                        "farm",
                        {"tool": "Bash", "command": "pytest -q", "seq": i},
                    )
                    for i in range(start, min(start + batch, total))
                ]
                for start in range(0, total, batch)
            ]
            started = time.perf_counter()
            for events in batches:
                pairs = [(e, ()) for e in events]
                await store.events.add_events(pairs, time.time(), dedupe_window=300)
            elapsed = time.perf_counter() - started
            newest = await store.events.recent_events(limit=1)
            assert newest and newest[0].data["seq"] == total - 1, "events went missing"
    return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    rate = asyncio.run(run(args.events, args.batch))
    print(f"add_events: {args.events} events in batches of {args.batch}: {rate:,.0f} events/s")


if __name__ == "__main__":
    main()
