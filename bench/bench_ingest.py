"""Measure sustained hook event ingest over HTTP, counted as rows in the database.

By default a server subprocess runs farmbot's web site with the hook routes, whose
ingest goes through the event bus into a real SQLite database in a temp directory; a
load generator in another process posts Claude Code PreToolUse/PostToolUse bodies with
keep-alive and ~64 requests in flight. ``--url`` (with ``--state-dir``) points the load
at a running ``farmbot serve`` instead. Target: >= 2,000 events/s on 2 cores.

Run: ``.venv/bin/python bench/bench_ingest.py [--seconds 8] [--concurrency 64]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

AGENTS = [f"builder-{n}" for n in range(1, 9)]
COMMON = {
    "session_id": "5f0c6a7e-2b1d-4c8e-9a3f-0d1e2f3a4b5c",
    "transcript_path": "/home/dev/.claude/projects/-home-dev-src-web/5f0c6a7e.jsonl",
    "cwd": "/home/dev/.local/state/farmbot/worktrees/web/builder-42",
    "prompt_id": "b7e2c1d0-9f8e-4a6b-8c7d-2e1f0a9b8c7d",
    "permission_mode": "default",
    "effort": {"level": "medium"},
    "tool_name": "Bash",
    "tool_input": {"command": "python -m pytest -q tests/", "description": "Run the tests"},
    "tool_use_id": "toolu_01HqXk3m9VfZ2bN7cR4sT8wY",
}
BODIES = [
    json.dumps({**COMMON, "hook_event_name": "PreToolUse"}).encode(),
    json.dumps(
        {
            **COMMON,
            "hook_event_name": "PostToolUse",
            "tool_response": {
                "stdout": "....F.\n=== FAILURES ===\n" + "E   AssertionError: rejected\n" * 20,
                "stderr": "",
                "interrupted": False,
                "isImage": False,
            },
            "duration_ms": 1873,
        }
    ).encode(),
]


async def serve(db: Path, key: str) -> None:
    """The daemon's web site, hook routes -> the event bus -> SQLite; prints the port."""
    from farmbot.adapters.hooks import hook_routes
    from farmbot.adapters.web import WebInterface
    from farmbot.bus import EventBus
    from farmbot.events import HookReceived
    from farmbot.messages import Incoming, Reply
    from farmbot.storage import open_sqlite

    async def no_commands(msg: Incoming) -> Reply:
        return Reply("", ok=False)

    async def no_status() -> dict[str, Any]:
        return {}

    async with open_sqlite(db) as storage, EventBus(storage.events) as bus:

        async def ingest(agent: str, event: dict[str, Any]) -> None:
            name = str(event["hook_event_name"])
            await bus.publish(HookReceived(agent_id=agent, name=name, payload=event))

        web = WebInterface("127.0.0.1", 0, key, status=no_status)
        for route in hook_routes(ingest, key):
            web.add_route(*route)
        await web.start(no_commands)
        print(web.port, flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the parent closes our stdin
        await web.stop()
    print(repr(bus), flush=True)


async def load(url: str, tokens: dict[str, str], seconds: float, concurrency: int) -> None:
    """Post events for ``seconds`` with ``concurrency`` in flight; print a JSON summary."""
    import aiohttp

    ok = errors = 0
    latencies: list[float] = []
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
        started = time.perf_counter()
        deadline = started + seconds

        async def worker(n: int) -> None:
            nonlocal ok, errors
            agent = AGENTS[n % len(AGENTS)]
            target = f"{url}/hooks/claude/{agent}?token={tokens[agent]}"
            i = n
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                try:
                    async with http.post(target, data=BODIES[i % 2]) as r:
                        await r.read()
                        if r.status == 200:
                            ok += 1
                        else:
                            errors += 1
                except aiohttp.ClientError:
                    errors += 1
                latencies.append(time.perf_counter() - sent)
                i += 1

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    print(
        json.dumps(
            {
                "ok": ok,
                "errors": errors,
                "elapsed": elapsed,
                "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else 0,
                "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0,
            }
        ),
        flush=True,
    )


def count_rows(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        [(count,)] = conn.execute("SELECT count(*) FROM events WHERE kind LIKE 'hook.%'")
    finally:
        conn.close()
    return int(count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--url", help="a running farmbot serve, e.g. http://127.0.0.1:8765")
    parser.add_argument("--state-dir", type=Path, help="its state_dir (local-key, farmbot.db)")
    parser.add_argument("--serve", nargs=2, metavar=("DB", "KEY"), help=argparse.SUPPRESS)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(Path(args.serve[0]), args.serve[1]))
        return
    if args.load:
        spec = json.loads(args.load)
        asyncio.run(load(spec["url"], spec["tokens"], args.seconds, args.concurrency))
        return

    from farmbot.adapters.hooks import hook_token

    python = sys.executable
    server = None
    with tempfile.TemporaryDirectory(prefix="farmbot-bench-ingest-") as tmp:
        if args.url:
            if args.state_dir is None:
                parser.error("--url needs --state-dir (for the local key and the database)")
            state_dir = args.state_dir.expanduser()
            key = (state_dir / "local-key").read_text().strip()
            db, url = state_dir / "farmbot.db", args.url.rstrip("/")
        else:
            key, db = "bench-local-key-0123456789abcdef", Path(tmp) / "farmbot.db"
            server = subprocess.Popen(
                [python, __file__, "--serve", str(db), key],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert server.stdout is not None
            url = f"http://127.0.0.1:{server.stdout.readline().strip()}"
        before = count_rows(db)
        spec = {"url": url, "tokens": {a: hook_token(key, a) for a in AGENTS}}
        loader = subprocess.run(
            [python, __file__, "--load", json.dumps(spec), "--seconds", str(args.seconds),
             "--concurrency", str(args.concurrency)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        summary = json.loads(loader.stdout)
        writer = ""
        if server is not None:
            assert server.stdin is not None and server.stdout is not None
            server.stdin.close()
            writer = server.stdout.read().strip()
            server.wait()
        rows = count_rows(db) - before
    elapsed = summary["elapsed"]
    print(
        f"hook ingest over HTTP, {os.cpu_count()} cores, {args.concurrency} in flight, "
        f"{elapsed:.1f} s:\n"
        f"  {rows / elapsed:,.0f} events/s stored ({rows} rows; {summary['ok']} answered 200, "
        f"{summary['errors']} errors)\n"
        f"  latency p50 {summary['p50_ms']:.1f} ms, p99 {summary['p99_ms']:.1f} ms"
        + (f"\n  {writer}" if writer else "")
        + "\ntarget: >= 2,000 events/s on 2 cores"
    )


if __name__ == "__main__":
    main()
