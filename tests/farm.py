"""Builders for a real farmbot stack in a test: git repo, config, store, tmux, supervisor."""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from farmbot.adapters.shared import InterfaceDeps
from farmbot.bot.router import Router
from farmbot.build import Farm as Graph
from farmbot.build import build
from farmbot.bus import EventBus
from farmbot.config.schema import (
    Config,
    ProjectConfig,
    ServerConfig,
    SupervisorConfig,
    TmuxConfig,
    UserConfig,
    builtin_profiles,
)
from farmbot.messages import Interface
from farmbot.models import Agent, AgentState, Event
from farmbot.storage import Storage
from farmbot.supervisor.agents import Supervisor
from farmbot.supervisor.gates import Gates
from farmbot.supervisor.monitor import Monitor
from farmbot.supervisor.tmux import Tmux
from tests.helpers import retry_until


def make_repo(path: Path) -> Path:
    """A git repository with one commit."""
    path.mkdir(parents=True, exist_ok=True)
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    for args in (
        ["init", "-q", "-b", "main"],
        [*identity, "commit", "-q", "--allow-empty", "-m", "x"],
    ):
        subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True)
    return path


def make_config(
    tmp_path: Path,
    tmux_socket: str,
    *,
    projects: tuple[ProjectConfig, ...] | None = None,
    users: tuple[UserConfig, ...] = (),
    supervisor: SupervisorConfig | None = None,
    port: int = 0,
) -> Config:
    """A config whose demo agent is fast and logs every prompt it receives."""
    profiles = builtin_profiles()
    profiles["demo"] = replace(
        profiles["demo"],
        env={"FARMBOT_DEMO_STEP": "0.02", "FARMBOT_DEMO_LOG": str(tmp_path / "prompts.jsonl")},
    )
    if projects is None:
        projects = (ProjectConfig("proj", make_repo(tmp_path / "repo")),)
    return Config(
        server=ServerConfig(host="127.0.0.1", port=port, state_dir=tmp_path / "state"),
        tmux=TmuxConfig(socket=tmux_socket),
        supervisor=supervisor or SupervisorConfig(tick_seconds=0.1, ready_timeout=30),
        projects=projects,
        agents=profiles,
        users=users,
    )


def received_prompts(tmp_path: Path) -> list[str]:
    """Every prompt the demo agents received, in order, exactly as typed."""
    path = tmp_path / "prompts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["prompt"] for line in path.read_text().splitlines() if line]


@dataclass
class Farm:
    """A real farmbot graph (farmbot.build) with helpers that drive it from a test."""

    graph: Graph
    tmp_path: Path
    seen: list[Event] = field(default_factory=list)

    @property
    def config(self) -> Config:
        return self.graph.config

    @property
    def storage(self) -> Storage:
        return self.graph.storage

    @property
    def tmux(self) -> Tmux:
        return self.graph.tmux

    @property
    def bus(self) -> EventBus:
        return self.graph.bus

    @property
    def supervisor(self) -> Supervisor:
        return self.graph.supervisor

    @property
    def gates(self) -> Gates:
        return self.graph.gates

    @property
    def monitor(self) -> Monitor:
        return self.graph.monitor

    @property
    def router(self) -> Router:
        return self.graph.router

    async def tick(self) -> None:
        """One supervision round, then one pass of prompt delivery (the daemon's loops)."""
        await self.graph.monitor.round()
        await self.graph.delivery.deliver_pending()

    async def agent(self, agent_id: str) -> Agent:
        found = await self.storage.agents.get_agent(agent_id)
        assert found is not None, agent_id
        return found

    async def until_state(self, agent_id: str, *states: AgentState, timeout: float = 15) -> Agent:
        """Tick the supervisor until the agent reaches one of ``states``."""

        async def probe() -> Agent | None:
            await self.tick()
            agent = await self.agent(agent_id)
            return agent if agent.state in states else None

        return await retry_until(probe, timeout=timeout, message=f"{agent_id} to be {states}")

    async def until_idle(self, agent_id: str, timeout: float = 15) -> Agent:
        """Tick until the agent is idle with nothing left in its queue."""

        async def probe() -> Agent | None:
            await self.tick()
            agent = await self.agent(agent_id)
            pending = await self.storage.prompts.pending_prompts(agent_id)
            return agent if agent.state is AgentState.IDLE and not pending else None

        return await retry_until(probe, timeout=timeout, message=f"{agent_id} to be idle")

    async def screen(self, agent_id: str, lines: int = 40) -> str:
        return "\n".join(await self.tmux.capture(agent_id, lines))

    async def until_screen(self, agent_id: str, text: str, timeout: float = 10) -> str:
        async def probe() -> str | None:
            screen = await self.screen(agent_id, 80)
            return screen if text in screen else None

        return await retry_until(probe, timeout=timeout, message=f"{text!r} on {agent_id}'s screen")


@asynccontextmanager
async def farm_for(
    config: Config,
    tmp_path: Path,
    clock: Callable[[], float] = time.time,
    *,
    interfaces: Sequence[Interface | Callable[[InterfaceDeps], Interface]] = (),
    rand: Callable[[], float] = random.random,
    environ: Mapping[str, str] | None = None,
) -> AsyncIterator[Farm]:
    """The daemon's own graph over real SQLite and real tmux; no loops run: tests tick.

    ``rand``: the notifier's jitter (``lambda: 1.0`` makes backoff exact); ``environ``:
    farmbot's own environment (default: the test's).
    """
    async with build(
        config, clock=clock, interfaces=interfaces, rand=rand, environ=environ
    ) as graph:
        farm = Farm(graph, tmp_path)
        graph.bus.subscribe(lambda record, event, alerts: farm.seen.append(record))
        yield farm
