"""The QA cycle: run a project's verify command in a builder's worktree and record it.

Runs on a schedule (every N minutes) and when a builder goes idle after working. A
failure becomes a ``qa.failed`` event, which the alert rules turn into an alert with a
button that sends the failure to the agent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from farmbot.bus import EventBus
from farmbot.config.schema import Config
from farmbot.events import QaFinished
from farmbot.models import Agent, AgentKind, DesiredState, QaRun
from farmbot.storage.agents import AgentStore
from farmbot.storage.qa_runs import QaRunStore
from farmbot.supervisor.shell import run_command

log = logging.getLogger(__name__)


class QaRunner:
    def __init__(
        self,
        config: Config,
        *,
        agents: AgentStore,
        runs: QaRunStore,
        bus: EventBus,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._agents = agents
        self._runs = runs
        self._bus = bus
        self._clock = clock
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._queued: set[str] = set()
        self._last_run: dict[str, float] = {}
        self.runs = 0
        self.failures = 0

    def reconfigure(self, config: Config) -> None:
        """Verify commands, timeouts and triggers of a reloaded config, for the next runs."""
        self._config = config

    def __repr__(self) -> str:
        return f"<QaRunner runs={self.runs} failures={self.failures} queued={len(self._queued)}>"

    def request(self, agent: Agent, trigger: str) -> None:
        """Queue a QA run for a builder (at most one queued per agent; rate-limited)."""
        qa = self._config.qa
        if agent.kind is not AgentKind.BUILDER or agent.id in self._queued:
            return
        if trigger == "idle" and (
            not qa.on_idle or self._clock() - self._last_run.get(agent.id, 0.0) < qa.min_gap
        ):
            return
        self._queued.add(agent.id)
        self._queue.put_nowait((agent.id, trigger))

    async def run(self) -> None:
        """Work through requested runs, one at a time, forever."""
        while True:
            agent_id, trigger = await self._queue.get()
            self._queued.discard(agent_id)
            agent = await self._agents.get_agent(agent_id)
            if agent is not None:
                await self.run_for(agent, trigger)

    async def run_cycle(self) -> None:
        """The scheduled cycle: queue every running builder whose project has a verify command."""
        for agent in await self._agents.list_agents():
            if agent.node != self._config.node.name:
                continue  # another node's worktree, on another machine
            if agent.desired is DesiredState.RUNNING and agent.state.is_live:
                self.request(agent, "schedule")

    async def run_for(self, agent: Agent, trigger: str) -> QaRun | None:
        """Run the project's verify command in the agent's workdir; None when there is none."""
        project = self._config.project(agent.project)
        if project is None or not project.verify:
            return None
        command = project.verify
        self._last_run[agent.id] = self._clock()
        run = await self._runs.start_qa_run(
            agent.id, agent.project, trigger, command, self._clock()
        )
        env = {"FARMBOT_AGENT": agent.id, "FARMBOT_PROJECT": agent.project}
        ran = await run_command(command, Path(agent.workdir), env, self._config.qa.timeout)
        done = await self._runs.finish_qa_run(
            run.id,
            exit_code=ran.exit_code,
            passed=ran.passed,
            timed_out=ran.timed_out,
            output_tail=ran.tail,
            now=self._clock(),
        )
        self.runs += 1
        if not ran.passed:
            self.failures += 1
        await self._bus.publish(
            QaFinished(
                agent_id=agent.id,
                project=agent.project,
                run_id=run.id,
                command=command,
                exit_code=ran.exit_code,
                timed_out=ran.timed_out,
                trigger=trigger,
                output_tail=ran.tail,
                passed=ran.passed,
            )
        )
        return done
