"""A farm with the autopilot on, for tests: real git, tmux, the demo agent, SQLite, HTTP."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from farmbot.config.schema import Config, ProjectConfig, SupervisorConfig, UserConfig
from farmbot.messages import Incoming, Reply
from farmbot.models import AutopilotMode, Gate, GateStatus, Role, Task, TaskState
from tests.farm import Farm, farm_for, make_config, make_repo
from tests.helpers import retry_until

T = TypeVar("T")
VERIFY = f"{sys.executable} -m farmbot demo-agent --verify"
ADMIN = UserConfig("alice", Role.ADMIN, web=True)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def pilot_config(
    tmp_path: Path,
    tmux_socket: str,
    *,
    mode: AutopilotMode = AutopilotMode.OBSERVE,
    max_builders: int = 2,
    max_agents: int = 16,
    max_attempts: int = 3,
    task_timeout: float = 7200.0,
    **project: Any,
) -> Config:
    repo = make_repo(tmp_path / "repo")
    pc = ProjectConfig(
        "proj", repo, verify=VERIFY, autopilot=mode, max_builders=max_builders, **project
    )
    supervisor = SupervisorConfig(
        tick_seconds=0.1,
        ready_timeout=30,
        max_agents=max_agents,
        max_attempts=max_attempts,
        task_timeout=task_timeout,
    )
    config = make_config(
        tmp_path, tmux_socket, projects=(pc,), users=(ADMIN,), supervisor=supervisor
    )
    return replace(config, qa=replace(config.qa, interval_minutes=0))


@dataclass
class Pilot:
    """A farm whose web server runs (so `farmbot task done` reaches it), driven by ticks."""

    farm: Farm

    @property
    def repo(self) -> Path:
        return self.farm.config.projects[0].path

    async def say(self, text: str) -> Reply:
        """A command from alice (admin) on the web console."""
        return await self.farm.router.handle(Incoming("web", "local-key", "console", text))

    async def ok(self, text: str) -> Reply:
        reply = await self.say(text)
        assert reply.ok, f"{text!r}: {reply.text}"
        return reply

    async def turn(self) -> None:
        """What the daemon's loops do: supervise, deliver prompts, one autopilot tick."""
        await self.farm.tick()
        await self.farm.graph.autopilot.step()

    async def until(
        self, probe: Callable[[], Awaitable[T | None]], what: str, timeout: float = 30
    ) -> T:
        async def once() -> T | None:
            await self.turn()
            return await probe()

        return await retry_until(once, timeout=timeout, interval=0.05, message=what)

    async def task(self, task_id: int) -> Task:
        found = await self.farm.storage.tasks.get_task(task_id)
        assert found is not None
        return found

    async def until_state(self, task_id: int, *states: TaskState, timeout: float = 30) -> Task:
        async def probe() -> Task | None:
            task = await self.task(task_id)
            return task if task.state in states else None

        return await self.until(probe, f"task {task_id} to be {states}", timeout)

    async def gate_of(self, task_id: int) -> Gate:
        async def probe() -> Gate | None:
            task = await self.task(task_id)
            if task.state is not TaskState.REVIEW or task.gate_id is None:
                return None
            gate = await self.farm.gates.find(task.gate_id)
            return gate if gate is not None and gate.status is GateStatus.PENDING else None

        return await self.until(probe, f"task {task_id}'s milestone gate")


@asynccontextmanager
async def pilot_for(
    config: Config, tmp_path: Path, clock: Callable[[], float]
) -> AsyncIterator[Pilot]:
    async with farm_for(config, tmp_path, clock) as farm:
        web = farm.graph.web
        await web.start(farm.router.handle)
        farm.supervisor.update_agent_env(FARMBOT_URL=f"http://127.0.0.1:{web.port}")
        try:
            yield Pilot(farm)
        finally:
            await web.stop()


__all__ = ["VERIFY", "Pilot", "git", "make_repo", "pilot_config", "pilot_for"]
