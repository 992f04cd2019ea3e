"""Measure the wall time of `farmbot hook` against a bare interpreter start.

`farmbot hook` runs on every tool call of every agent; the target is a median of at
most 1.5x `python -c pass`. Each form is timed with a Claude Code PreToolUse event on
stdin (a) against a live hook endpoint and (b) with nothing listening (the spool path).
Runs are interleaved in shuffled rounds so machine noise hits every variant alike.

Run: ``.venv/bin/python bench/bench_hook.py [--runs 40] [--warmup 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KEY = "bench-local-key-0123456789abcdef"
AGENT = "builder-42"
EVENT = {
    "session_id": "5f0c6a7e-2b1d-4c8e-9a3f-0d1e2f3a4b5c",
    "transcript_path": "/home/dev/.claude/projects/-home-dev-src-web/5f0c6a7e.jsonl",
    "cwd": "/home/dev/.local/state/farmbot/worktrees/web/builder-42",
    "hook_event_name": "PreToolUse",
    "prompt_id": "b7e2c1d0-9f8e-4a6b-8c7d-2e1f0a9b8c7d",
    "permission_mode": "default",
    "effort": {"level": "medium"},
    "tool_name": "Bash",
    "tool_input": {"command": "python -m pytest -q tests/", "description": "Run the tests"},
    "tool_use_id": "toolu_01HqXk3m9VfZ2bN7cR4sT8wY",
}


async def serve() -> None:
    """The hook endpoint on farmbot's web server, with an ingest that only counts; prints
    the port, then the count."""
    from farmbot.adapters.hooks import hook_routes
    from farmbot.adapters.web import WebInterface
    from farmbot.messages import Incoming, Reply

    received = 0

    async def ingest(agent: str, event: dict[str, object]) -> None:
        nonlocal received
        received += 1

    async def no_commands(msg: Incoming) -> Reply:
        return Reply("", ok=False)

    async def no_status() -> dict[str, object]:
        return {}

    web = WebInterface("127.0.0.1", 0, KEY, status=no_status)
    for route in hook_routes(ingest, KEY):
        web.add_route(*route)
    await web.start(no_commands)
    print(web.port, flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the parent closes our stdin
    await web.stop()
    print(received, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def measure(
    variants: dict[str, tuple[list[str], dict[str, str]]], runs: int, warmup: int
) -> dict[str, list[float]]:
    """Wall seconds of every variant, run in shuffled rounds."""
    body = json.dumps(EVENT).encode()
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for round_ in range(warmup + runs):
        random.shuffle(names)
        for name in names:
            command, env = variants[name]
            started = time.perf_counter()
            done = subprocess.run(command, input=body, env=env, capture_output=True, check=False)
            elapsed = time.perf_counter() - started
            if done.returncode != 0 or done.stdout:
                raise SystemExit(f"{name}: exit {done.returncode}, stdout {done.stdout!r}")
            if round_ >= warmup:
                times[name].append(elapsed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return

    from farmbot.adapters.hooks import hook_token

    python = sys.executable
    script = str(Path(python).with_name("farmbot"))
    server = subprocess.Popen(
        [python, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None and server.stdin is not None
    live_url = f"http://127.0.0.1:{server.stdout.readline().strip()}"
    down_url = f"http://127.0.0.1:{free_port()}"
    tmp = Path(tempfile.mkdtemp(prefix="farmbot-bench-hook-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith("FARMBOT_")}
    base.update(
        FARMBOT_AGENT=AGENT,
        FARMBOT_HOOK_TOKEN=hook_token(KEY, AGENT),
        FARMBOT_STATE_DIR=str(tmp / "state"),
    )
    modes = {"bytecode cache on": False}
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        modes["as this shell runs it (PYTHONDONTWRITEBYTECODE set: no .pyc)"] = True
    forms = {
        f"{Path(script).name} hook (console script)": [script, "hook"],
        "python -m farmbot hook": [python, "-m", "farmbot", "hook"],
        "python -m farmbot.hook": [python, "-m", "farmbot.hook"],
    }
    expected_delivered = expected_spooled = 0
    try:
        for mode, as_is in modes.items():
            env = dict(base)
            if not as_is:  # as installed: .pyc files are written once, then read
                env.pop("PYTHONDONTWRITEBYTECODE", None)
                env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
            variants = {"python -c pass": ([python, "-c", "pass"], env)}
            for form, command in forms.items():
                variants[f"{form}, live"] = (command, {**env, "FARMBOT_URL": live_url})
                variants[f"{form}, daemon down"] = (command, {**env, "FARMBOT_URL": down_url})
            times = measure(variants, args.runs, args.warmup)
            expected_delivered += len(forms) * (args.runs + args.warmup)
            expected_spooled += len(forms) * (args.runs + args.warmup)
            baseline = statistics.median(times["python -c pass"])
            print(f"farmbot hook, median of {args.runs} runs, {mode}:")
            for name, values in times.items():
                median = statistics.median(values)
                print(f"  {name:<48} {median * 1000:7.2f} ms  {median / baseline:5.2f}x")
        print("target: <= 1.5x python -c pass")
    finally:
        server.stdin.close()
        delivered = int(server.stdout.readline() or 0)
        server.wait()
        spooled = len(list((tmp / "state" / "spool").glob("*.json")))
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"delivered {delivered} of {expected_delivered}; spooled {spooled} of {expected_spooled}")
    if (delivered, spooled) != (expected_delivered, expected_spooled):
        raise SystemExit("some events went astray: the figures above are not of working hooks")


if __name__ == "__main__":
    main()
