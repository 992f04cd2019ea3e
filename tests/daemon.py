"""Run farmbot itself as a real process in tests: the daemon, the CLI, git projects."""

from __future__ import annotations

import asyncio
import resource
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.farm import make_repo
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
async def serve(
    config: Path,
    url: str,
    logs: Path,
    *,
    open_files: int | None = None,
    env: dict[str, str] | None = None,
) -> AsyncIterator[Daemon]:
    """Run `farmbot serve` until it answers /healthz; always kill it afterwards.

    ``open_files``: the daemon's limit of open files (RLIMIT_NOFILE), as a small host has;
    ``env``: its environment (default: the test's own).
    """
    logs.mkdir(parents=True, exist_ok=True)
    stdout, stderr = logs / "stdout", logs / "stderr"

    def limit() -> None:
        if open_files is not None:
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, hard))

    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "farmbot", "--config", str(config), "serve",
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=err, cwd=config.parent,
            preexec_fn=limit if open_files is not None else None, env=env,
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


async def git_project(path: Path) -> Path:
    """A git repository with one commit (made off the event loop)."""
    return await asyncio.to_thread(make_repo, path)
