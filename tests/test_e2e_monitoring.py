"""Monitoring end to end, with `farmbot serve` as a real process.

A builder works, goes idle, QA fails, an alert with buttons reaches the web console and
an external webhook; a permission question is approved from the web console; the daemon
is killed with SIGKILL while alerts are undelivered and delivers each exactly once after
a restart; hook events sent while the daemon is down are spooled and replayed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from farmbot import localkey
from farmbot.adapters.hooks import hook_token
from tests.daemon import Daemon, free_port, git_project, serve
from tests.farm import received_prompts
from tests.helpers import retry_until
from tests.hook_payloads import payload


def write_config(tmp_path: Path, tmux_socket: str, port: int, ops_port: int) -> Path:
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
verify = "echo 'FAILED tests/test_login.py::test_login - AssertionError'; exit 1"

[agents.demo]
env = {{ FARMBOT_DEMO_STEP = "0.02", FARMBOT_DEMO_LOG = "{tmp_path / "prompts.jsonl"}" }}

[qa]
interval_minutes = 0
min_gap = 3600

[alerts]
backoff_base = 0.2
backoff_max = 0.5

[[alerts.routes]]
interface = "ops"
channel = "ops"
min_severity = "info"

[[webhooks]]
name = "ops"
url = "http://127.0.0.1:{ops_port}/alerts"
"""
    )
    return config


class Receiver:
    """The other end of the `ops` webhook: records every alert it is sent."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None

    async def _alert(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        return web.Response(status=204)

    @asynccontextmanager
    async def up(self) -> AsyncIterator[Receiver]:
        app = web.Application()
        app.router.add_post("/alerts", self._alert)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        try:
            yield self
        finally:
            await self._runner.cleanup()


async def status(daemon: Daemon) -> dict[str, Any]:
    async with daemon.http.get(
        "/api/status", headers={"Authorization": f"Bearer {daemon.key}"}
    ) as r:
        result: dict[str, Any] = await r.json()
        return result


async def test_qa_alert_permission_and_kill_9(tmp_path: Path, tmux_socket: str) -> None:
    await git_project(tmp_path / "repo")
    port, ops_port = free_port(), free_port()
    config = write_config(tmp_path, tmux_socket, port, ops_port)
    url = f"http://127.0.0.1:{port}"

    async with serve(config, url, tmp_path / "run1") as daemon:
        reply = await daemon.command("/spawn builder 42")
        assert reply["ok"], reply

        # busy -> idle -> QA runs and fails -> an alert with buttons, on the web console.
        async def qa_alert() -> dict[str, Any] | None:
            alerts = (await status(daemon))["alerts"]
            return next((a for a in alerts if a["kind"] == "qa.failed"), None)

        alert = await retry_until(qa_alert, timeout=20, message="the QA failure alert")
        assert alert["agent_id"] == "builder-42" and alert["project"] == "proj"
        assert "FAILED tests/test_login.py::test_login" in (alert["pre"] or alert["text"])
        commands = [b["command"] for row in alert["buttons"] for b in row]
        send_failure = next(c for c in commands if c.startswith("/send builder-42"))

        # The button sends the failure to the agent.
        assert (await daemon.command(send_failure))["ok"]

        async def failure_received() -> bool:
            return any("FAILED tests/test_login.py" in p for p in received_prompts(tmp_path))

        await retry_until(failure_received, timeout=15, message="the failure to reach the agent")

        # A permission question, approved from the web console.
        await retry_until(lambda: _idle(daemon), timeout=15, message="builder-42 to be idle again")
        assert (await daemon.command("/send builder-42 run make deploy"))["ok"]

        async def gate() -> dict[str, Any] | None:
            gates = (await status(daemon))["gates"]
            return gates[0] if gates else None

        opened = await retry_until(gate, timeout=15, message="a permission gate")
        assert "Do you want to proceed?" in opened["detail"]
        approved = await daemon.command(f"/approve {opened['id']}")
        assert approved["ok"] and "approved by local" in approved["text"], approved
        tail = await retry_until(
            lambda: _tail_has(daemon, "✓ approved: make deploy"), timeout=15, message="approval"
        )
        assert tail
        # Idle again before the kill: waking up busy, it would go idle after the restart
        # and fail QA once more (a repeat, held back for its dedupe window).
        await retry_until(lambda: _idle(daemon), timeout=15, message="builder-42 to be idle")

        # The ops webhook has been down all along: kill -9 with its alerts undelivered.
        undelivered = (await status(daemon))["outbox"]
        assert undelivered.get("pending", 0) + undelivered.get("sending", 0) >= 2, undelivered
        expected = {a["id"] for a in (await status(daemon))["alerts"]}
        daemon.proc.send_signal(signal.SIGKILL)
        await daemon.proc.wait()

    receiver = Receiver(ops_port)
    async with receiver.up(), serve(config, url, tmp_path / "run2") as daemon:

        async def all_delivered() -> bool:
            summary = (await status(daemon))["outbox"]
            return not summary.get("pending") and not summary.get("sending")

        await retry_until(all_delivered, timeout=20, message="the outbox to drain")
        ids = [alert["alert_id"] for alert in receiver.received]
        assert len(ids) == len(set(ids)), f"an alert was delivered twice: {ids}"
        assert expected <= set(ids)
        assert ids == sorted(ids)  # in order
        kinds = {a["title"].split(":")[0] for a in receiver.received}
        assert kinds  # titles are human readable
        assert (await daemon.command("/agents"))["text"].startswith("builder-42")


async def _idle(daemon: Daemon) -> bool:
    agents = (await status(daemon))["agents"]
    return any(a["id"] == "builder-42" and a["state"] == "idle" for a in agents)


async def _tail_has(daemon: Daemon, text: str) -> bool:
    reply = await daemon.command("/tail builder-42 30")
    return text in (reply.get("pre") or "")


async def test_hook_events_spooled_while_down_are_replayed(
    tmp_path: Path, tmux_socket: str
) -> None:
    await git_project(tmp_path / "repo")
    port, ops_port = free_port(), free_port()
    config = write_config(tmp_path, tmux_socket, port, ops_port)
    state = tmp_path / "state"
    state.mkdir()
    key = localkey.ensure(state)  # as a first start made it; the daemon is down now
    env = dict(
        os.environ,
        FARMBOT_AGENT="builder-7",
        FARMBOT_URL=f"http://127.0.0.1:{port}",
        FARMBOT_SPOOL_DIR=str(state / "spool"),
        FARMBOT_HOOK_TOKEN=hook_token(key, "builder-7"),
    )
    body = json.dumps(payload("SessionStart")).encode()
    for _ in range(3):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "farmbot", "hook",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(body), 10)
        assert proc.returncode == 0 and out == b""  # never breaks the agent, never talks
    assert len(list((state / "spool").glob("*.json"))) == 3

    async with serve(config, f"http://127.0.0.1:{port}", tmp_path / "run") as daemon:

        async def replayed() -> bool:
            events = await daemon.events()
            return events.count(("hook.SessionStart", "builder-7")) == 3

        await retry_until(replayed, timeout=15, message="the spooled events to be replayed")
        assert not list((state / "spool").glob("*.json"))
