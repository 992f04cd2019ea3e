"""`farmbot serve` as a real process: spawn over HTTP, SIGTERM, restart and re-adopt, the CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.helpers import retry_until


@dataclass
class Run:
    """What a finished subprocess did."""

    code: int
    out: str
    err: str


async def run(*args: str, cwd: Path | None = None) -> Run:
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def farmbot(config: Path, *args: str) -> Run:
    return await run(sys.executable, "-m", "farmbot", "--config", str(config), *args)


async def git_project(path: Path) -> Path:
    path.mkdir(parents=True)
    for args in (
        ["init", "-q", "-b", "main"],
        ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q",
         "--allow-empty", "-m", "init"],
    ):  # fmt: skip
        done = await run("git", "-C", str(path), *args)
        assert done.code == 0, done.err
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Daemon:
    proc: asyncio.subprocess.Process
    stdout: Path
    http: aiohttp.ClientSession
    key: str

    async def command(self, text: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.key}"}
        async with self.http.post("/api/command", json={"text": text}, headers=headers) as r:
            assert r.status == 200, await r.text()
            reply: dict[str, Any] = await r.json()
            return reply

    async def events(self) -> list[tuple[str, str | None]]:
        headers = {"Authorization": f"Bearer {self.key}"}
        async with self.http.get("/api/status", headers=headers) as r:
            assert r.status == 200, await r.text()
            status = await r.json()
        return [(e["kind"], e["agent_id"]) for e in status["events"]]

    async def terminate(self) -> int:
        """SIGTERM, and the exit status it stopped with (within a few seconds)."""
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 8)


@asynccontextmanager
async def serve(config: Path, url: str, logs: Path) -> AsyncIterator[Daemon]:
    """Run `farmbot serve` until it answers /healthz; always kill it afterwards."""
    logs.mkdir(parents=True, exist_ok=True)
    stdout, stderr = logs / "stdout", logs / "stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "farmbot", "--config", str(config), "serve",
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=err, cwd=config.parent,
        )  # fmt: skip
    try:
        async with aiohttp.ClientSession(base_url=url) as http:

            async def healthy() -> bool:
                assert proc.returncode is None, f"farmbot serve exited: {stderr.read_text()}"
                try:
                    async with http.get("/healthz") as r:
                        return r.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            up: bool = await retry_until(healthy, timeout=15, message="/healthz to answer")
            assert up
            key = (config.parent / "state" / "local-key").read_text().strip()
            yield Daemon(proc, stdout, http, key)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def tmux_has_session(sock: str, name: str) -> bool:
    return (await run("tmux", "-L", sock, "has-session", "-t", f"={name}")).code == 0


async def test_serve_spawn_sigterm_restart_readopt(tmp_path: Path, tmux_socket: str) -> None:
    repo = await git_project(tmp_path / "repo")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = tmp_path / "farmbot.toml"
    config.write_text(
        f"""
[server]
host = "127.0.0.1"
port = {port}
state_dir = "state"

[tmux]
socket = "{tmux_socket}"

[supervisor]
tick_seconds = 0.2

[[projects]]
name = "farm"
path = "{repo}"

[agents.demo]
env = {{ FARMBOT_DEMO_STEP = "0.02" }}
"""
    )
    worktree = tmp_path / "state" / "worktrees" / "farm" / "builder-42"

    async with serve(config, url, tmp_path / "first") as daemon:
        assert f"{url}/#key={daemon.key}" in daemon.stdout.read_text()
        spawned = await daemon.command("/spawn builder 42")
        assert spawned["ok"] is True, spawned
        assert f"worktree {worktree} on branch farmbot/builder-42" in spawned["text"]
        assert (worktree / ".git").is_file()
        branch = await run("git", "-C", str(worktree), "branch", "--show-current")
        assert branch.out.strip() == "farmbot/builder-42"
        where = await run(
            "tmux", "-L", tmux_socket, "display-message", "-p", "-t", "=builder-42:",
            "#{pane_current_path}",
        )  # fmt: skip
        assert Path(where.out.strip()).resolve() == worktree.resolve()

        async def screen_shows(text: str) -> str | None:
            tail = await daemon.command("/tail builder-42 60")
            return tail["pre"] if text in tail["pre"] else None

        screen: str = await retry_until(
            lambda: screen_shows("✓ done: You are builder 42 on project farm"),
            timeout=15,
            message="the builder prompt to be worked on",
        )
        assert "> received: You are builder 42 on project farm. Work on issue #42" in screen
        sent = await daemon.command("/send builder-42 add a login page\n  with two fields")
        assert sent["ok"] is True, sent
        screen = await retry_until(
            lambda: screen_shows("✓ done: add a login page"),
            message="the sent text to be worked on",
        )
        assert "demo> add a login page\n  ...   with two fields\n" in screen
        assert "> received: add a login page (+1 more lines)" in screen
        assert await daemon.terminate() == 0
    assert await tmux_has_session(tmux_socket, "builder-42"), "SIGTERM took the agent down"

    async with serve(config, url, tmp_path / "second") as daemon:
        agents = await daemon.command("/agents")
        [line] = [x for x in agents["text"].splitlines() if x.startswith("builder-42 ")]
        assert line.startswith("builder-42 [farm] ")
        assert not any(word in line for word in ("dead", "stopped")), line
        assert ("agent.readopted", "builder-42") in await daemon.events()
        listed = await farmbot(config, "cmd", "/agents")
        assert listed.code == 0, listed.err
        assert "builder-42 [farm]" in listed.out
        assert await daemon.terminate() == 0
    assert await tmux_has_session(tmux_socket, "builder-42")

    stopped = await farmbot(config, "cmd", "/status")
    assert stopped.code != 0
    assert stopped.out == ""
    assert len(stopped.err.strip().splitlines()) == 1
    assert stopped.err.startswith(f"farmbot is not running at {url}")


async def test_serve_with_a_bad_config_key_says_which_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nprot = 8080\n")
    done = await farmbot(config, "serve")
    assert done.code == 2
    assert done.err == "config: server.prot: unknown key (did you mean 'port'?)\n"
    assert not os.path.exists(tmp_path / "state")
