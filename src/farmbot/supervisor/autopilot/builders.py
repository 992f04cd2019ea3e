"""Where the autopilot's builders run, and where its steps on them are carried out.

``Builders`` is the autopilot's one seam to the machines: it places a new builder on a
node (``place``), names a node holding a project's checkout (``holder``) and carries a
step (steps.py) out on a node (``run``). ``LocalBuilders`` is the implementation for one
node (SQLite): everything is here, as it always was. On a shared database the
autopilot is given ``farmbot.cluster.steps.RoutedBuilders`` instead, which sends each
step to its node as a routed row and has that node's ``LocalBuilders`` -- its
``Workshop`` -- carry it out.

``LocalBuilders`` is also that workshop: it spawns and retires builders through the
supervisor, verifies in a builder's worktree through the QA runner, lands in the
project's repository and runs deploy commands in its checkout, all on this machine.
``Checkout`` reads one node's checkout of a project, wherever it is.

The steps (steps.py) and landing are imported where a step is made or carried out: the
graph holds builders from the start, but the daemon loads those with the first step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from farmbot.config.schema import Config, ProjectConfig
from farmbot.errors import CommandError, NotFound, UnsavedWork
from farmbot.models import AgentKind, DesiredState, QaRun, TaskState
from farmbot.storage.agents import AgentStore
from farmbot.storage.tasks import TaskStore
from farmbot.supervisor import shell
from farmbot.supervisor.agents import Supervisor
from farmbot.supervisor.autopilot import repo as git
from farmbot.supervisor.qa import QaRunner

if TYPE_CHECKING:
    from farmbot.supervisor.autopilot import landing
    from farmbot.supervisor.autopilot.steps import (
        Base,
        Commits,
        Deploy,
        Diff,
        Diffstat,
        Land,
        Retire,
        Start,
        Step,
        Verify,
    )

log = logging.getLogger(__name__)

R = TypeVar("R")


class Builders(Protocol):
    """Where the autopilot's builders run and its steps are carried out."""

    here: str  # this node's name
    durable: bool  # steps are recorded rows: one cut short is found again, not lost

    async def place(self, project: str, home: str | None = None) -> str:
        """The node a new builder of ``project`` goes to: ``home`` (where the task's
        branch is) while it holds the project and is up, else the least-loaded node
        holding it that is up; ``NodeUnreachable`` when none is."""

    async def holder(self, project: str) -> str:
        """A node holding ``project`` that is up, this one first (for its checkout)."""

    async def up(self) -> frozenset[str] | None:
        """The nodes heard from now (None: there is one node, this one)."""

    async def run(
        self, node: str, step: Step[R], key: str | None = None, *, again: bool = False
    ) -> R:
        """Carry ``step`` out on ``node`` and return its result.

        ``key`` names the recorded state the step carries out: asked again under the same
        key (after a restart, or by a new leader) it is not done twice, the first one's
        result is returned. ``again``: run it afresh although it ran under the key before
        (it was cut short, ``StepInterrupted``, and may safely run again). Raises what the
        step raises there (``CommandError``, ``GitError``, ``TmuxError``), and
        ``NodeUnreachable`` when nothing could be done.
        """


class LocalBuilders(Builders):
    """Builders and steps on this node: the one-node implementation and every node's
    workshop (``steps.Workshop``)."""

    durable = False

    def __init__(
        self,
        config: Config,
        *,
        supervisor: Supervisor,
        agents: AgentStore,
        tasks: TaskStore,
        qa: QaRunner,
        adopt: Callable[[str], None] = lambda agent_id: None,
    ) -> None:
        """``adopt`` is told of each builder started here for the autopilot (the QA runner
        leaves those to it)."""
        self.config = config
        self.here = config.node.name
        self._supervisor = supervisor
        self._agents = agents
        self._tasks = tasks
        self._qa = qa
        self._adopt = adopt
        self.carried_out = 0

    def __repr__(self) -> str:
        return f"<LocalBuilders {self.here!r} carried_out={self.carried_out}>"

    def reconfigure(self, config: Config) -> None:
        self.config = config

    async def place(self, project: str, home: str | None = None) -> str:
        return self.here

    async def holder(self, project: str) -> str:
        return self.here

    async def up(self) -> frozenset[str] | None:
        return None

    async def run(
        self, node: str, step: Step[R], key: str | None = None, *, again: bool = False
    ) -> R:
        result = await step.carry_out(self)
        self.carried_out += 1
        return result

    def _project(self, name: str) -> ProjectConfig:
        pc = self.config.project(name)
        if pc is None:
            raise NotFound(f"unknown project '{name}' on node {self.here}")
        return pc

    # -- the workshop ---------------------------------------------------------------------
    async def start(self, step: Start) -> None:
        agent = await self._agents.get_agent(step.agent_id)
        if agent is None or agent.desired is DesiredState.STOPPED or not agent.state.is_live:
            agent = await self._supervisor.spawn(
                AgentKind.BUILDER, step.number, step.project, "autopilot", builder_prompt=False
            )
        self._adopt(agent.id)
        await git.switch(Path(agent.workdir), step.branch, step.start)

    async def verify(self, step: Verify) -> QaRun | None:
        pc = self._project(step.project)
        agent = await self._agents.get_agent(step.agent_id)
        if not pc.verify or agent is None:
            return None
        return await self._qa.run_for(agent, f"task {step.task_id}")

    async def land(self, step: Land) -> landing.Landing:
        from farmbot.supervisor.autopilot import landing

        task = await self._tasks.get_task(step.task_id)
        if task is None or task.state is not TaskState.LANDING:
            state = task.state.value if task is not None else "gone"
            return landing.Landing("refused", f"task {step.task_id} is {state}, not landing")
        pc = self._project(task.project)
        assert task.branch and task.base_branch
        where = self.config.server.state_dir / "worktrees" / pc.name / landing.LANDING_DIR
        if pc.land in ("merge", "rebase"):
            return await landing.land_git(
                pc.path,
                where,
                branch=task.branch,
                base_branch=task.base_branch,
                how="merge" if pc.land == "merge" else "rebase",
                message=f"Land task {task.id}: {task.title}\n\nfarmbot autopilot: {task.reason}",
            )
        head = await git.branch_tip(pc.path, task.branch)
        if head is None:
            return landing.Landing("refused", f"branch {task.branch} does not exist")
        try:
            await git.ensure_detached(pc.path, where, head)
        except git.GitError as exc:
            return landing.Landing("refused", str(exc))
        assert pc.land_command is not None
        env = {
            "FARMBOT_PROJECT": pc.name,
            "FARMBOT_TASK": str(task.id),
            "FARMBOT_TASK_TITLE": task.title,
            "FARMBOT_BRANCH": task.branch,
            "FARMBOT_BASE_BRANCH": task.base_branch,
            "FARMBOT_COMMIT": head,
        }
        ran = await shell.run_command(pc.land_command, where, env, self.config.qa.timeout)
        if not ran.passed:
            detail = f"`{pc.land_command}` {ran.outcome}:\n{ran.tail}"
            return landing.Landing("conflict", detail, how="land_command")
        return landing.Landing("landed", ran.tail, head, head, (head,), "land_command")

    async def deploy(self, step: Deploy) -> shell.CommandRun:
        from farmbot.supervisor.autopilot.steps import Base

        pc = self._project(step.project)
        command = pc.deploy_staging if step.target == "staging" else pc.deploy_prod
        if not command:
            return shell.CommandRun(
                "", None, False, f"project {pc.name} has no deploy_{step.target}"
            )
        base = await self.base(Base(pc.name))
        env = {
            "FARMBOT_PROJECT": pc.name,
            "FARMBOT_RUN": str(step.run_id),
            "FARMBOT_WAVE": str(step.wave),
            "FARMBOT_BASE_BRANCH": base[0] if base else "",
            "FARMBOT_COMMIT": base[1] if base else "",
        }
        return await shell.run_command(command, pc.path, env, self.config.qa.timeout)

    async def retire(self, step: Retire) -> None:
        try:
            try:
                await self._supervisor.kill(step.agent_id, "autopilot", remove=True)
            except UnsavedWork as exc:  # stopped all the same; the worktree waits for a person
                log.warning("%s: stopping it, keeping its worktree: %s", step.agent_id, exc)
                await self._supervisor.kill(step.agent_id, "autopilot")
        except CommandError as exc:
            log.warning("could not retire %s: %s", step.agent_id, exc)

    async def base(self, step: Base) -> tuple[str, str] | None:
        pc = self._project(step.project)
        branch = pc.base_branch or await git.current_branch(pc.path)
        commit = await git.branch_tip(pc.path, branch) if branch else None
        return (branch, commit) if branch and commit else None

    async def commits(self, step: Commits) -> list[tuple[str, str]]:
        return await git.commits(self._project(step.project).path, step.base, step.head, step.limit)

    async def diffstat(self, step: Diffstat) -> str:
        path = self._project(step.project).path
        if step.three_dots:
            return await git.diffstat(path, step.base, step.head)
        return await git.must(path, "diff", "--stat=100", step.base, step.head)

    async def diff(self, step: Diff) -> str:
        path = self._project(step.project).path
        if step.three_dots:
            return await git.diff(path, step.base, step.head)
        return (await git.git(path, "diff", step.base, step.head)).out


@dataclass(frozen=True, slots=True)
class Checkout:
    """One node's checkout of a project, read through ``builders`` wherever it is."""

    builders: Builders
    node: str
    project: str

    async def commits(self, base: str, head: str, limit: int = 200) -> list[tuple[str, str]]:
        from farmbot.supervisor.autopilot.steps import Commits

        return await self.builders.run(self.node, Commits(self.project, base, head, limit))

    async def diffstat(self, base: str, head: str, *, three_dots: bool = True) -> str:
        from farmbot.supervisor.autopilot.steps import Diffstat

        return await self.builders.run(self.node, Diffstat(self.project, base, head, three_dots))

    async def diff(self, base: str, head: str, *, three_dots: bool = True) -> str:
        from farmbot.supervisor.autopilot.steps import Diff

        return await self.builders.run(self.node, Diff(self.project, base, head, three_dots))
