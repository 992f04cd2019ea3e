"""The supervisor: projects and agents in tmux -- spawn, send, tail, kill.

An agent is a row (desired + observed state) and a tmux session named after it. What a
human asked for is recorded before tmux is touched, so a deliberate stop is never
mistaken for a crash. Prompts go through ``Delivery``; states change only through the
monitor's state machine; a daemon restart finds every agent again (the monitor's
reconciliation).

On a farm of several machines each node runs the agents of the projects it holds
(``ProjectConfig.held``) and records itself as their node; the agent ids are shared by
the whole farm, so an id another node runs is refused.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import os
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from farmbot import codex_hooks
from farmbot.bus import EventBus
from farmbot.config.schema import AgentProfile, Config, ProjectConfig
from farmbot.errors import CommandError, Conflict, NotFound, TmuxError, UnsavedWork
from farmbot.events import AgentSpawned, AgentStopped, ProjectActivated, ProjectDeactivated
from farmbot.hooks_install import PERMISSION_TIMEOUT, TIMEOUT, default_hook_command, install_hooks
from farmbot.models import Agent, AgentKind, AgentState, DesiredState, Project
from farmbot.storage.agents import AgentStore
from farmbot.storage.projects import ProjectStore
from farmbot.storage.prompts import PromptStore
from farmbot.supervisor import isolation
from farmbot.supervisor import state as sm
from farmbot.supervisor.delivery import Delivery, Sent
from farmbot.supervisor.environment import agent_environment
from farmbot.supervisor.files import WorktreeFile, read_file, save_upload
from farmbot.supervisor.monitor import Monitor
from farmbot.supervisor.tmux import Tmux
from farmbot.supervisor.worktree import (
    ensure_worktree,
    is_git_repo,
    remove_worktree,
    worktree_losses,
)

__all__ = ["Killed", "Sent", "Supervisor", "probe_projects"]

log = logging.getLogger(__name__)

MAX_TAIL = 2000


@dataclass(frozen=True, slots=True)
class Killed:
    """An agent stopped on purpose: it, the queued prompts dropped, and what a removed
    worktree took with it (only with ``force``)."""

    agent: Agent
    dropped: int
    lost: tuple[str, ...] = ()


async def probe_projects(config: Config) -> dict[str, bool]:
    """Whether each project this node holds is a git repository with a commit, by name.

    The projects are probed at once (a git process each); it needs no storage, so a
    start can run it while the database opens.
    """
    held = [pc for pc in config.projects if pc.held]
    found = await asyncio.gather(*(is_git_repo(pc.path) for pc in held))
    return {pc.name: is_git for pc, is_git in zip(held, found, strict=True)}


class Supervisor:
    """Owns projects and agents; every agent operation goes through here."""

    def __init__(
        self,
        config: Config,
        *,
        projects: ProjectStore,
        agents: AgentStore,
        prompts: PromptStore,
        tmux: Tmux,
        bus: EventBus,
        monitor: Monitor,
        delivery: Delivery,
        clock: Callable[[], float] = time.time,
        agent_env: dict[str, str] | None = None,
        hook_token: Callable[[str], str] | None = None,
        busy: set[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._config = config
        self._projects = projects
        self._agents = agents
        self._prompts = prompts
        self._tmux = tmux
        self._bus = bus
        self._monitor = monitor
        self._delivery = delivery
        self._clock = clock
        self._agent_env = dict(agent_env or {})
        # farmbot's own environment: agents get only what environment.py allows of it.
        self._environ: Mapping[str, str] = dict(environ or {})
        self._hook_token = hook_token
        self._lock = asyncio.Lock()  # one spawn or kill at a time
        # Agents being spawned or stopped right now: the monitor leaves them alone.
        self._busy: set[str] = busy if busy is not None else set()
        self.spawned = 0

    async def reconfigure(self, config: Config) -> None:
        """A reloaded config: projects (new ones registered), profiles and limits apply to
        the next spawn; running agents keep going, also those of a project that left."""
        self._config = config
        await self.sync_projects()

    def update_agent_env(self, **values: str) -> None:
        """Change what new agents get in their environment (e.g. the daemon's bound URL)."""
        self._agent_env.update(values)

    def __repr__(self) -> str:
        return f"<Supervisor spawned={self.spawned} tmux={self._tmux!r}>"

    def statistics(self) -> dict[str, int | float | str]:
        return {"spawned": self.spawned, "busy": len(self._busy)}

    # projects -------------------------------------------------------------------------
    @property
    def node(self) -> str:
        """The node this supervisor runs agents on."""
        return self._config.node.name

    async def sync_projects(self, repos: Mapping[str, bool] | None = None) -> None:
        """Register the configured projects this node holds in storage.

        ``repos``: what ``probe_projects`` found for this config, when it ran already
        (the daemon's start runs it while storage opens).
        """
        found = await probe_projects(self._config) if repos is None else repos
        for pc in self._config.projects:
            if not pc.held:
                continue
            is_git = found[pc.name]
            project = Project(pc.name, str(pc.path), active=True, verify=pc.verify, is_git=is_git)
            await self._projects.upsert_project(project, self._clock())

    async def projects(self) -> list[Project]:
        names = {p.name for p in self._config.projects}
        return [p for p in await self._projects.list_projects() if p.name in names]

    async def set_active(self, name: str, active: bool) -> Project:
        self._project_config(name, held=False)  # a row in the database: any node may
        if await self._projects.get_project(name) is None:  # no holder has started yet
            raise NotFound(f"project {name} is held by no node that has started yet")
        await self._projects.set_project_active(name, active, self._clock())
        await self._bus.publish(
            ProjectActivated(project=name) if active else ProjectDeactivated(project=name)
        )
        project = await self._projects.get_project(name)
        assert project is not None
        return project

    def _project_config(self, name: str | None, *, held: bool = True) -> ProjectConfig:
        if not self._config.projects:
            raise CommandError(
                "no projects are configured: add [[projects]] to farmbot.toml, "
                "or start farmbot serve inside a git repository"
            )
        if name is None:
            return self._config.projects[0]
        found = self._config.project(name)
        if found is None:
            raise NotFound(_unknown("project", name, [p.name for p in self._config.projects]))
        if held and not found.held:
            nodes = f" (it is held by {', '.join(found.nodes)})" if found.nodes else ""
            raise Conflict(f"node {self.node} holds no checkout of project {name}{nodes}")
        return found

    def _profile_for(self, project: ProjectConfig) -> AgentProfile:
        return self._config.profile(project.agent or self._config.supervisor.default_agent)

    def agent_id(self, kind: AgentKind, number: int | None, project: str) -> str:
        """``builder-42`` in the default (first) project, ``<project>-builder-42`` elsewhere."""
        base = kind.value if number is None else f"{kind.value}-{number}"
        default = self._config.projects[0].name if self._config.projects else project
        return base if project == default else f"{project}-{base}"

    # agents ---------------------------------------------------------------------------
    async def get(self, agent_id: str) -> Agent:
        agent = await self._agents.get_agent(agent_id)
        if agent is None:
            known = [a.id for a in await self._agents.list_agents()]
            raise NotFound(_unknown("agent", agent_id, known))
        return agent

    async def list_agents(self, project: str | None = None) -> list[Agent]:
        return await self._agents.list_agents(project)

    async def spawn(
        self,
        kind: AgentKind,
        number: int | None,
        project_name: str | None,
        by: str,
        *,
        builder_prompt: bool = True,
    ) -> Agent:
        """Start an agent in its own tmux session (builders in their own worktree).

        ``builder_prompt``: queue the profile's builder prompt (the autopilot sends a task
        prompt of its own instead).
        """
        pc = self._project_config(project_name)
        project = await self._projects.get_project(pc.name)
        if project is not None and not project.active:
            raise Conflict(f"project {pc.name} is deactivated; /activate {pc.name} first")
        profile = self._profile_for(pc)
        async with self._lock:
            if number is None and kind is not AgentKind.ARCHITECT:
                number = await self._next_number(pc.name, kind)
            agent_id = self.agent_id(kind, number, pc.name)
            self._busy.add(agent_id)
            try:
                return await self._spawn(pc, profile, kind, number, agent_id, by, builder_prompt)
            finally:
                self._busy.discard(agent_id)

    async def _spawn(
        self,
        pc: ProjectConfig,
        profile: AgentProfile,
        kind: AgentKind,
        number: int | None,
        agent_id: str,
        by: str,
        builder_prompt: bool,
    ) -> Agent:
        existing = await self._agents.get_agent(agent_id)
        if existing is not None and existing.node not in ("", self.node):
            if existing.project != pc.name or existing.state.is_live:
                raise Conflict(
                    f"{agent_id} is an agent of node {existing.node} (project"
                    f" {existing.project}, {existing.state.value}); choose another number"
                )
        pane = await self._tmux.pane(agent_id)
        if pane is not None and not pane.dead:
            state = existing.state.value if existing else "not tracked"
            raise Conflict(f"{agent_id} is already running ({state}); /kill {agent_id} first")
        if kind is AgentKind.BUILDER:
            await self._check_builder_limit(pc, agent_id)
        if pane is not None:
            await self._tmux.kill_session(agent_id)  # the dead pane of an earlier run
        workdir, branch = await self._prepare_workdir(pc, kind, agent_id)
        now = self._clock()
        agent = Agent(
            id=agent_id,
            project=pc.name,
            kind=kind,
            profile="shell" if kind is AgentKind.SHELL else profile.name,
            number=number,
            workdir=str(workdir),
            branch=branch,
            desired=DesiredState.RUNNING,
            state=AgentState.STARTING,
            state_reason=f"spawned by {by}",
            created_at=existing.created_at if existing else now,
            updated_at=now,
            state_since=now,
            node=self.node,
        )
        if not await self._agents.claim_agent(agent):  # another node took the id just now
            raise Conflict(f"{agent_id} was just spawned on another node; choose another number")
        await self._prompts.cancel_prompts(agent_id)
        shell = self._environ.get("SHELL", "/bin/sh")
        command = shell if kind is AgentKind.SHELL else profile.command
        if profile.hooks == "claude" and kind is not AgentKind.SHELL:
            await asyncio.to_thread(self._install_hooks, workdir, agent_id, profile)
        elif profile.hooks == "codex" and kind is not AgentKind.SHELL and not profile.run_as:
            # On its command line, trusted for exactly this content (codex_hooks.py). Not
            # for another Unix user, who may not be able to run this farmbot: Codex has
            # no http hooks, and its dialog is answered through the pane.
            hook = f"{default_hook_command()} --agent {shlex.quote(agent_id)}"
            command = codex_hooks.with_hooks(
                command, hook, timeout=TIMEOUT, permission_timeout=PERMISSION_TIMEOUT
            )
        env = self._env_for(agent, profile)
        if profile.run_as:  # another Unix user: its files, spool and process (isolation.py)
            runner = isolation.lookup(profile.run_as)
            env.update(await asyncio.to_thread(self._isolate, runner, agent, workdir))
            command = isolation.wrap(command, runner, sorted(env), root=os.geteuid() == 0)
        try:
            await self._tmux.new_session(agent_id, command, workdir, env)
        except TmuxError as exc:
            await self._monitor.observe(agent, sm.StartFailed(str(exc)))
            raise CommandError(f"could not start {agent_id}: {exc}") from exc
        if kind is AgentKind.BUILDER and builder_prompt:
            text = profile.builder_prompt.format(n=number, project=pc.name)
            await self._prompts.add_prompt(agent_id, text, "spawn", now, wait_ready=True)
        self.spawned += 1
        await self._bus.publish(
            AgentSpawned(
                agent_id=agent_id, project=pc.name, by=by, workdir=str(workdir), command=command
            )
        )
        self._delivery.wake()
        return agent

    async def _next_number(self, project: str, kind: AgentKind) -> int:
        numbers = [
            a.number
            for a in await self._agents.list_agents(project)
            if a.kind is kind and a.number is not None
        ]
        return max(numbers, default=0) + 1

    async def _check_builder_limit(self, pc: ProjectConfig, agent_id: str) -> None:
        limit = pc.max_builders or self._config.supervisor.max_builders
        running = [
            a.id
            for a in await self._agents.list_agents(pc.name)
            if a.kind is AgentKind.BUILDER
            and a.id != agent_id
            and a.desired is DesiredState.RUNNING
            and a.state.is_live
        ]
        if len(running) >= limit:
            raise Conflict(
                f"project {pc.name} already runs {len(running)} builders, its limit "
                f"({', '.join(running)}); /kill one first or raise max_builders"
            )

    async def _prepare_workdir(
        self, pc: ProjectConfig, kind: AgentKind, agent_id: str
    ) -> tuple[Path, str | None]:
        if kind is not AgentKind.BUILDER:
            return pc.path, None
        path = self._config.server.state_dir / "worktrees" / pc.name / agent_id
        if await is_git_repo(pc.path):
            branch = f"farmbot/{agent_id}"
            await ensure_worktree(pc.path, path, branch)
            return path, branch
        await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
        return path, None

    def _install_hooks(self, workdir: Path, agent_id: str, profile: AgentProfile) -> None:
        """``farmbot hook`` commands; for an agent of another Unix user, which may not be
        able to run this farmbot, http hooks (the CLI posts them itself)."""
        url, token = self._agent_env.get("FARMBOT_URL"), self._hook_token
        if profile.run_as and url and token is not None:
            http = f"{url}/hooks/claude/{agent_id}?token={token(agent_id)}"
            install_hooks(workdir, agent=agent_id, http_url=http)
        else:
            install_hooks(workdir, agent=agent_id)

    def _isolate(self, runner: isolation.RunAs, agent: Agent, workdir: Path) -> dict[str, str]:
        """Share what the agent works in with its user's group; what its env needs."""
        state_dir = self._config.server.state_dir
        isolation.share(workdir, runner.gid)
        isolation.share_repository(workdir, runner.gid)
        if agent.kind is AgentKind.BUILDER:
            isolation.traversable(state_dir / "worktrees", state_dir / "worktrees" / agent.project)
        spool = isolation.spool_dir(state_dir / "spool", agent.id, runner.gid)
        return {"FARMBOT_SPOOL_DIR": str(spool), **isolation.git_environment(workdir)}

    def _env_for(self, agent: Agent, profile: AgentProfile) -> dict[str, str]:
        """The agent's whole environment, built on purpose (supervisor/environment.py)."""
        farmbot = dict(self._agent_env)  # FARMBOT_URL
        farmbot.update(
            FARMBOT_AGENT=agent.id,
            FARMBOT_PROJECT=agent.project,
            FARMBOT_KIND=agent.kind.value,
            FARMBOT_NUMBER="" if agent.number is None else str(agent.number),
            FARMBOT_PROFILE=agent.profile,
            FARMBOT_BRANCH=agent.branch or "",
            FARMBOT_WORKDIR=agent.workdir,
            FARMBOT_SPOOL_DIR=str(self._config.server.state_dir / "spool"),
        )
        if self._hook_token is not None:
            farmbot["FARMBOT_HOOK_TOKEN"] = self._hook_token(agent.id)
        return agent_environment(
            self._environ,
            pass_env=self._config.supervisor.pass_env,
            farmbot=farmbot,
            profile=profile.env,
        )

    async def send(self, agent_id: str, text: str, by: str) -> Sent:
        """Type ``text`` into the agent now, or queue it until the agent is ready."""
        return await self._delivery.send(await self.get(agent_id), text, by)

    async def deliver_pending(self) -> int:
        """Deliver queued prompts to the agents ready for them (``Delivery`` does it)."""
        return await self._delivery.deliver_pending()

    async def read_file(self, agent_id: str, path: str, limit: int) -> WorktreeFile:
        """A file of the agent's worktree, at most ``limit`` bytes (``files.read_file``)."""
        agent = await self.get(agent_id)
        root = Path(agent.workdir)
        return await asyncio.to_thread(read_file, root, path, limit, whose=agent.id)

    async def save_file(self, agent_id: str, name: str, data: bytes) -> str:
        """Save a file people sent into the agent's worktree; its path relative to it."""
        agent = await self.get(agent_id)
        root = Path(agent.workdir)
        return await asyncio.to_thread(save_upload, root, name, data, whose=agent.id)

    async def tail(self, agent_id: str, lines: int) -> list[str]:
        agent = await self.get(agent_id)
        if not 1 <= lines <= MAX_TAIL:
            raise CommandError(f"lines must be between 1 and {MAX_TAIL}")
        try:
            return await self._tmux.capture(agent.id, lines)
        except TmuxError as exc:
            raise Conflict(
                f"{agent_id} has no tmux session any more ({agent.state.value}: "
                f"{agent.state_reason})"
            ) from exc

    async def kill(
        self, agent_id: str, by: str, *, remove: bool = False, force: bool = False
    ) -> Killed:
        """Stop an agent on purpose.

        ``remove``: also remove a builder's worktree (its branch is kept) -- refused, with
        nothing done, when that would lose uncommitted work, unless ``force``.
        """
        async with self._lock:
            agent = await self.get(agent_id)
            if agent.desired is DesiredState.STOPPED and agent.state is AgentState.STOPPED:
                if not remove:
                    raise Conflict(f"{agent_id} is already stopped")
            losses: list[str] = []
            if remove and agent.kind is AgentKind.BUILDER:
                losses = await worktree_losses(Path(agent.workdir))
                if losses and not force:
                    raise UnsavedWork(
                        f"{agent_id}'s worktree {agent.workdir} has work that is not on its "
                        f"branch{f' {agent.branch}' if agent.branch else ''}: "
                        f"{'; '.join(losses)}. Nothing was done. Commit it first, or "
                        f"/kill {agent_id} --remove-worktree --force to remove it anyway and "
                        f"lose that (/kill {agent_id} keeps the worktree)"
                    )
            self._busy.add(agent_id)
            try:
                stopped, dropped = await self._kill(agent, by, remove)
            finally:
                self._busy.discard(agent_id)
            return Killed(stopped, dropped, tuple(losses) if remove else ())

    async def _kill(self, agent: Agent, by: str, remove: bool) -> tuple[Agent, int]:
        agent_id = agent.id
        now = self._clock()
        marked = await self._agents.set_agent_desired(agent_id, DesiredState.STOPPED, now)
        had_session = await self._tmux.kill_session(agent_id)
        stopped = await self._monitor.observe(marked or agent, sm.Stopped(by))
        dropped = await self._prompts.cancel_prompts(agent_id)
        if remove and agent.kind is AgentKind.BUILDER:
            pc = self._project_config(agent.project)
            await remove_worktree(pc.path, Path(agent.workdir))
        await self._bus.publish(
            AgentStopped(
                agent_id=agent_id,
                project=agent.project,
                by=by,
                had_session=had_session,
                worktree_removed=remove,
            )
        )
        return stopped, dropped

    def busy(self, agent_id: str) -> bool:
        """Whether the agent is being spawned or stopped right now (the monitor waits)."""
        return agent_id in self._busy


def _unknown(what: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"unknown {what} '{name}'; did you mean '{close[0]}'?"
    if known:
        return f"unknown {what} '{name}' (known: {', '.join(sorted(known)[:10])})"
    return f"unknown {what} '{name}' (there are none yet)"
