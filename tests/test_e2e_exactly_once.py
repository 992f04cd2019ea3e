"""Prompts arrive exactly once across kill -9: `farmbot serve` as a real process is killed
at random moments right after a `/send`, 20 times, and restarted; the demo agent logs every
prompt it receives (FARMBOT_DEMO_LOG)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sqlite3
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.daemon import Daemon, free_port, git_project, serve
from tests.farm import received_prompts
from tests.helpers import retry_until

ROUNDS = 20
KILL_WINDOW = 0.3  # seconds after the /send within which the kill lands


def stored_prompts(state: Path) -> dict[str, str]:
    """Every prompt farmbot stored, by text: its status."""
    with contextlib.closing(sqlite3.connect(state / "farmbot.db")) as db:
        return dict(db.execute("SELECT text, status FROM prompts").fetchall())


async def idle(daemon: Daemon) -> bool:
    tail = await daemon.command("/tail architect 5")
    lines = [line for line in (tail.get("pre") or "").splitlines() if line.strip()]
    return bool(lines) and lines[-1].rstrip() == "demo>"


async def send_without_waiting(daemon: Daemon, text: str) -> None:
    headers = {"Authorization": f"Bearer {daemon.key}"}
    with contextlib.suppress(aiohttp.ClientError, asyncio.CancelledError):
        async with daemon.http.post("/api/command", json={"text": text}, headers=headers) as r:
            await r.read()


@pytest.mark.timeout(600)
async def test_prompts_sent_just_before_a_kill_9_arrive_exactly_once(
    tmp_path: Path, tmux_socket: str
) -> None:
    await git_project(tmp_path / "repo")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = tmp_path / "farmbot.toml"
    config.write_text(
        f"""
[server]
port = {port}
state_dir = "state"

[tmux]
socket = "{tmux_socket}"

[supervisor]
tick_seconds = 0.2

[[projects]]
name = "proj"
path = "repo"

[agents.demo]
env = {{ FARMBOT_DEMO_STEP = "0.01", FARMBOT_DEMO_STEPS = "2", FARMBOT_DEMO_LOG = "{tmp_path / "prompts.jsonl"}" }}
"""  # noqa: E501
    )
    state = tmp_path / "state"
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    sys.stderr.write(f"exactly-once seed: {seed}\n")
    texts = [f"relsec-p{n:05d}-architect" for n in range(ROUNDS)]

    async with serve(config, url, tmp_path / "logs-start") as daemon:
        assert (await daemon.command("/spawn architect"))["ok"]
        await retry_until(lambda: idle(daemon), timeout=20, message="the architect to start")
        daemon.proc.send_signal(signal.SIGKILL)
        await daemon.proc.wait()

    for n, text in enumerate(texts):
        async with serve(config, url, tmp_path / f"logs-{n}") as daemon:
            # Each round starts on a settled agent: what came before is resolved.
            await retry_until(lambda: idle(daemon), timeout=20, message=f"idle before {n}")
            sending = asyncio.create_task(send_without_waiting(daemon, f"/send architect {text}"))
            await asyncio.sleep(rng.uniform(0.0, KILL_WINDOW))
            daemon.proc.send_signal(signal.SIGKILL)
            await daemon.proc.wait()
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)

    async with serve(config, url, tmp_path / "logs-end") as daemon:

        async def settled() -> dict[str, str] | None:
            stored = await asyncio.to_thread(stored_prompts, state)
            pending = [t for t in texts if stored.get(t) == "pending"]
            return stored if not pending and await idle(daemon) else None

        stored = await retry_until(settled, timeout=60, message="every prompt to be resolved")
        await asyncio.sleep(1.0)  # anything typed late would show in the log by now

    received = received_prompts(tmp_path)
    for text in texts:
        if text in stored:  # farmbot took the /send: exactly once, and says so
            assert (stored[text], received.count(text)) == ("delivered", 1), (seed, text)
        else:  # killed before it was stored: never typed
            assert received.count(text) == 0, (seed, text)
    assert all(text in texts for text in received), (seed, received)  # nothing mixed
    assert len(stored) > ROUNDS // 2, (seed, stored)  # most kills came after the store
