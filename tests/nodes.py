"""Two real `farmbot serve` nodes on one PostgreSQL database, for the cluster's tests.

Each node has its own tmux socket, state directory, port and node name; both read the
same list of projects, as machines sharing one config file do. Node a holds project
alpha, node b project beta, both hold gamma (``nodes = [...]``): alpha and beta are
repositories of their own under a/ and b/, gamma one repository both machines reach.
A git hook in beta's repository can make a builder's worktree slow to create (``slow``:
for ``SLOW_HOOK`` seconds; ``hold``: until the test removes the file), so that a node can
be killed while it runs a command it claimed. ``autopilot=True``
gives every project a verify command and the observe mode, and logs every prompt the
demo agents receive.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from tests.backends import PostgresBackend
from tests.daemon import Daemon, free_port, git_project, run, serve
from tests.fakes.telegram_api import FakeTelegram
from tests.helpers import retry_until

TOKEN = "777001:CLUSTER-token"
ADA = 1001  # the admin, in Telegram and the web console
BEA = 1002  # another admin, in Telegram
ALERTS = -100777  # the chat alerts go to
SLOW_HOOK = 6  # seconds beta's post-checkout hook sleeps while the slow file exists
HOLD_MAX = 30  # seconds it waits at most for the hold file to go
VERIFY = f"{sys.executable} -m farmbot demo-agent --verify"
PROMPTS = "prompts.jsonl"  # in the test's directory: what the demo agents were typed


@dataclass
class Node:
    name: str
    config: Path
    url: str
    socket: str


@dataclass
class Farm:
    """Two nodes' configs on one database; ``start`` runs a node's `farmbot serve`."""

    tmp: Path
    db: PostgresBackend
    nodes: dict[str, Node]
    slow: Path  # while it exists, creating a beta worktree takes SLOW_HOOK seconds
    hold: Path  # while it exists, a beta checkout waits (HOLD_MAX seconds at most)
    env: dict[str, str]
    stack: AsyncExitStack
    lives: int = 0

    async def start(self, name: str) -> Daemon:
        """Start node ``name`` (until the test ends, or it is killed)."""
        node = self.nodes[name]
        self.lives += 1
        logs = self.tmp / "logs" / f"{name}-{self.lives}"
        return await self.stack.enter_async_context(
            serve(node.config, node.url, logs, env=self.env)
        )

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db.url, autocommit=True) as conn:
            return list(conn.execute(query, params).fetchall())


async def status(daemon: Daemon) -> dict[str, Any]:
    async with daemon.http.get(
        "/api/status", headers={"Authorization": f"Bearer {daemon.key}"}
    ) as r:
        assert r.status == 200, await r.text()
        found: dict[str, Any] = await r.json()
        return found


async def leader(daemon: Daemon) -> str | None:
    found = (await status(daemon))["leader"]
    return None if found is None else str(found)


async def leads(daemon: Daemon, name: str) -> bool:
    return await leader(daemon) == name


async def farmbot_status(farm: Farm, name: str) -> list[str]:
    """What `farmbot status` prints on node ``name``'s machine (its config, its daemon)."""
    config = farm.nodes[name].config
    shown = await run(
        sys.executable, "-m", "farmbot", "--config", str(config), "status",
        cwd=config.parent, env=farm.env,
    )  # fmt: skip
    assert shown.code == 0, shown.err
    return shown.out.splitlines()


async def has_session(socket: str, name: str) -> bool:
    return (await run("tmux", "-L", socket, "has-session", "-t", f"={name}")).code == 0


def write_config(
    path: Path,
    node: str,
    port: int,
    socket: str,
    repos: dict[str, Path],
    tg: FakeTelegram | None,
    *,
    autopilot: bool = False,
) -> None:
    telegram = (
        f"""
[telegram]
token = "env:FARMBOT_TEST_TELEGRAM_TOKEN"
base_url = "{tg.base_url}"
base_file_url = "{tg.base_file_url}"
alert_chats = [{ALERTS}]
poll_timeout = 1
"""
        if tg is not None
        else ""
    )
    piloted = f'\nverify = "{VERIFY}"\nautopilot = "observe"' if autopilot else ""
    log = f', FARMBOT_DEMO_LOG = "{path.parent.parent / PROMPTS}"' if autopilot else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"""
[server]
host = "127.0.0.1"
port = {port}
state_dir = "state"

[node]
name = "{node}"
heartbeat = 0.5
lease = 3
answer_timeout = 25

[storage]
url = "env:FARMBOT_TEST_DATABASE_URL"
pool_max = 4

[tmux]
socket = "{socket}"

[supervisor]
tick_seconds = 0.2

[qa]
interval_minutes = 0

[users.ada]
role = "admin"
web = true
telegram = {ADA}

[users.bea]
role = "admin"
telegram = {BEA}

[[projects]]
name = "alpha"
path = "{repos["alpha"]}"
nodes = ["a"]{piloted}

[[projects]]
name = "beta"
path = "{repos["beta"]}"
nodes = ["b"]{piloted}

[[projects]]
name = "gamma"
path = "{repos["gamma"]}"
nodes = ["a", "b"]{piloted}

[agents.demo]
env = {{ FARMBOT_DEMO_STEP = "0.02"{log} }}
{telegram}"""
    )


@asynccontextmanager
async def two_nodes(
    tmp_path: Path,
    db: PostgresBackend,
    sockets: dict[str, str],
    tg: FakeTelegram | None = None,
    *,
    autopilot: bool = False,
) -> AsyncIterator[Farm]:
    repos = {
        "alpha": await git_project(tmp_path / "a" / "alpha"),
        "beta": await git_project(tmp_path / "b" / "beta"),
        "gamma": await git_project(tmp_path / "gamma"),  # both machines have a checkout
    }
    slow, hold = tmp_path / "slow", tmp_path / "hold"
    hook = repos["beta"] / ".git" / "hooks" / "post-checkout"
    hook.write_text(
        f"#!/bin/sh\nif [ -f '{slow}' ]; then sleep {SLOW_HOOK}; fi\n"
        f"n=0; while [ -f '{hold}' ] && [ $n -lt {HOLD_MAX * 10} ]; do\n"
        "  sleep 0.1; n=$((n+1))\ndone\n"
    )
    hook.chmod(0o755)
    nodes = {}
    for name in "ab":
        port = free_port()
        config = tmp_path / name / "farmbot.toml"
        write_config(config, name, port, sockets[name], repos, tg, autopilot=autopilot)
        nodes[name] = Node(name, config, f"http://127.0.0.1:{port}", sockets[name])
    env = {"FARMBOT_TEST_DATABASE_URL": db.url, "FARMBOT_TEST_TELEGRAM_TOKEN": TOKEN}
    async with AsyncExitStack() as stack:
        yield Farm(tmp_path, db, nodes, slow, hold, env, stack)


async def start_a_then_b(farm: Farm) -> tuple[Daemon, Daemon]:
    """Node a first, so that it leads; then node b."""
    a = await farm.start("a")
    assert await retry_until(lambda: leads(a, "a"), timeout=10, message="node a to lead")
    b = await farm.start("b")

    async def both_up() -> bool:
        nodes = (await status(a))["nodes"]
        return sorted((n["name"], n["health"]) for n in nodes) == [("a", "up"), ("b", "up")]

    assert await retry_until(both_up, timeout=10, message="both nodes heartbeating")
    return a, b


async def claimed(farm: Farm, text: str) -> bool:
    rows = farm.sql("SELECT status FROM routed_commands WHERE text = %s", text)
    return rows == [("claimed",)]
