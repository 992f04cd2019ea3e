"""The supervisor: projects and agents in tmux, their prompt queue, and reconciliation.

An agent is a row (desired + observed state) and a tmux session named after it. What a
human asked for is recorded before tmux is touched, so a deliberate stop is never
mistaken for a crash, and a daemon restart finds every agent again (``reconcile``).
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from farmbot.config.schema import AgentProfile, Config, ProjectConfig
from farmbot.errors import CommandError, Conflict, NotFound, TmuxError
from farmbot.hooks_install import install_hooks
from farmbot.models import Agent, AgentKind, AgentState, DesiredState, Project, Prompt, PromptStatus
from farmbot.storage.base import Store
from farmbot.supervisor.events import EventLog
from farmbot.supervisor.panes import PanePatterns, classify
from farmbot.supervisor.prompts import clean_prompt
from farmbot.supervisor.tmux import PaneInfo, Tmux
from farmbot.supervisor.worktree import ensure_worktree, is_git_repo, remove_worktree

log = logging.getLogger(__name__)

PASTE_SETTLE = 0.15  # seconds between a paste and its Enter, so TUIs see two events
MAX_TAIL = 2000


@dataclass(frozen=True, slots=True)
class Sent:
    prompt: Prompt
    queued: bool  # waits for the agent to be ready instead of being typed now
    removed: int  # control characters removed from the text


class Supervisor:
    """Owns projects and agents; every agent operation goes through here."""

    def __init__(
        self,
        config: Config,
        store: Store,
        tmux: Tmux,
        events: EventLog,
        *,
        clock: Callable[[], float] = time.time,
        agent_env: dict[str, str] | None = None,
        hook_token: Callable[[str], str] | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._tmux = tmux
        self._events = events
        self._clock = clock
        self._agent_env = dict(agent_env or {})
        self._hook_token = hook_token
        self._lock = asyncio.Lock()  # spawn / kill / reconcile
        self._pane_locks: dict[str, asyncio.Lock] = {}
        self._patterns: dict[str, PanePatterns] = {
            name: PanePatterns.of(profile) for name, profile in config.agents.items()
        }
        self.spawned = 0
        self.delivered = 0

    def update_agent_env(self, **values: str) -> None:
        """Change what new agents get in their environment (e.g. the daemon's bound URL)."""
        self._agent_env.update(values)

    def __repr__(self) -> str:
        return f"<Supervisor spawned={self.spawned} delivered={self.delivered} tmux={self._tmux!r}>"

    # projects -------------------------------------------------------------------------
    async def sync_projects(self) -> None:
        """Register the configured projects in storage."""
        for pc in self._config.projects:
            project = Project(pc.name, str(pc.path), True, pc.verify, await is_git_repo(pc.path))
            await self._store.upsert_project(project, self._clock())

    async def projects(self) -> list[Project]:
        names = {p.name for p in self._config.projects}
        return [p for p in await self._store.list_projects() if p.name in names]

    async def set_active(self, name: str, active: bool) -> Project:
        self._project_config(name)
        await self._store.set_project_active(name, active, self._clock())
        await self._events.emit(
            "project.activated" if active else "project.deactivated", project=name
        )
        project = await self._store.get_project(name)
        assert project is not None
        return project

    def _project_config(self, name: str | None) -> ProjectConfig:
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
        agent = await self._store.get_agent(agent_id)
        if agent is None:
            known = [a.id for a in await self._store.list_agents()]
            raise NotFound(_unknown("agent", agent_id, known))
        return agent

    async def list_agents(self, project: str | None = None) -> list[Agent]:
        return await self._store.list_agents(project)

    async def spawn(
        self, kind: AgentKind, number: int | None, project_name: str | None, by: str
    ) -> Agent:
        """Start an agent in its own tmux session (builders in their own worktree)."""
        pc = self._project_config(project_name)
        project = await self._store.get_project(pc.name)
        if project is not None and not project.active:
            raise Conflict(f"project {pc.name} is deactivated; /activate {pc.name} first")
        profile = self._profile_for(pc)
        async with self._lock:
            if number is None and kind is not AgentKind.ARCHITECT:
                number = await self._next_number(pc.name, kind)
            agent_id = self.agent_id(kind, number, pc.name)
            existing = await self._store.get_agent(agent_id)
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
            )
            await self._store.save_agent(agent)
            await self._store.cancel_prompts(agent_id)
            command = (
                os.environ.get("SHELL", "/bin/sh") if kind is AgentKind.SHELL else profile.command
            )
            if profile.hooks and kind is not AgentKind.SHELL:
                await asyncio.to_thread(install_hooks, workdir, agent=agent_id)
            try:
                await self._tmux.new_session(
                    agent_id, command, workdir, self._env_for(agent, profile)
                )
            except TmuxError as exc:
                await self._store.set_agent_state(
                    agent_id, AgentState.DEAD, str(exc), self._clock()
                )
                raise CommandError(f"could not start {agent_id}: {exc}") from exc
            if kind is AgentKind.BUILDER:
                text = profile.builder_prompt.format(n=number, project=pc.name)
                await self._store.add_prompt(agent_id, text, "spawn", True, now)
            self.spawned += 1
            await self._events.emit(
                "agent.spawned", agent_id, pc.name, by=by, workdir=str(workdir), command=command
            )
        return agent

    async def _next_number(self, project: str, kind: AgentKind) -> int:
        numbers = [
            a.number
            for a in await self._store.list_agents(project)
            if a.kind is kind and a.number is not None
        ]
        return max(numbers, default=0) + 1

    async def _check_builder_limit(self, pc: ProjectConfig, agent_id: str) -> None:
        limit = pc.max_builders or self._config.supervisor.max_builders
        running = [
            a.id
            for a in await self._store.list_agents(pc.name)
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

    def _env_for(self, agent: Agent, profile: AgentProfile) -> dict[str, str]:
        env = dict(self._agent_env)
        env.update(
            FARMBOT_AGENT=agent.id,
            FARMBOT_PROJECT=agent.project,
            FARMBOT_KIND=agent.kind.value,
            FARMBOT_NUMBER="" if agent.number is None else str(agent.number),
            FARMBOT_PROFILE=agent.profile,
            FARMBOT_BRANCH=agent.branch or "",
        )
        if self._hook_token is not None:
            env["FARMBOT_HOOK_TOKEN"] = self._hook_token(agent.id)
        env.update(profile.env)
        return env

    async def send(self, agent_id: str, text: str, by: str) -> Sent:
        """Type ``text`` into the agent now, or queue it until the agent is ready."""
        agent = await self.get(agent_id)
        clean = clean_prompt(text, self._config.supervisor.prompt_max_bytes)
        if agent.desired is DesiredState.STOPPED or not agent.state.is_live:
            raise Conflict(
                f"{agent_id} is {agent.state.value} ({agent.state_reason}); "
                f"/spawn it again before sending to it"
            )
        now = self._clock()
        queue = agent.state in (AgentState.STARTING, AgentState.PAUSED) or bool(
            await self._store.pending_prompts(agent_id)
        )
        if queue:
            prompt = await self._store.add_prompt(agent_id, clean.text, by, True, now)
            return Sent(prompt, queued=True, removed=clean.removed)
        async with self._pane_lock(agent_id):
            await self._refuse_if_asking(agent)
            prompt = await self._store.add_prompt(agent_id, clean.text, by, False, now)
            await self._deliver(agent, prompt)
        return Sent(prompt, queued=False, removed=clean.removed)

    async def _refuse_if_asking(self, agent: Agent) -> None:
        # Keys typed into an open permission dialog answer it: never type into one.
        lines = await self._tmux.capture(agent.id, 40)
        if classify(lines, self.patterns(agent)) is AgentState.WAITING:
            raise Conflict(
                f"{agent.id} is asking a question (a permission prompt); text typed now "
                f"would answer it. Decide it first (/gates), then send again."
            )

    async def _deliver(self, agent: Agent, prompt: Prompt) -> None:
        try:
            await self._tmux.paste(agent.id, prompt.text)
            await asyncio.sleep(PASTE_SETTLE)
            await self._tmux.send_keys(agent.id, "Enter")
        except TmuxError as exc:
            await self._store.mark_prompt(prompt.id, PromptStatus.FAILED, self._clock(), str(exc))
            raise CommandError(f"could not type into {agent.id}: {exc}") from exc
        await self._store.mark_prompt(prompt.id, PromptStatus.DELIVERED, self._clock())
        self.delivered += 1
        if agent.state is not AgentState.BUSY:
            # It has work now; the pane (or a hook) says when it is idle again.
            await self.set_state(
                agent, AgentState.BUSY, f"working on a prompt from {prompt.source}"
            )
        await self._events.emit(
            "prompt.delivered",
            agent.id,
            agent.project,
            prompt_id=prompt.id,
            source=prompt.source,
            chars=len(prompt.text),
        )

    async def deliver_pending(self) -> int:
        """Deliver queued prompts, at most one per agent, to agents ready for them."""
        delivered = 0
        seen: set[str] = set()
        for prompt in await self._store.pending_prompts():
            if prompt.agent_id in seen:
                continue
            seen.add(prompt.agent_id)
            agent = await self._store.get_agent(prompt.agent_id)
            if agent is None or agent.desired is DesiredState.STOPPED:
                await self._store.mark_prompt(prompt.id, PromptStatus.CANCELLED, self._clock())
                continue
            if not self._ready_for(agent, prompt):
                continue
            async with self._pane_lock(agent.id):
                # `send` holds this lock while it types a prompt of its own, which was
                # pending when we looked: only a prompt still first in line goes in.
                queue = await self._store.pending_prompts(agent.id)
                fresh = await self._store.get_agent(agent.id)
                if not queue or queue[0].id != prompt.id or fresh is None:
                    continue
                if not self._ready_for(fresh, prompt):
                    continue
                try:
                    await self._refuse_if_asking(fresh)
                    await self._deliver(fresh, prompt)
                except (Conflict, TmuxError):
                    continue
                except CommandError as exc:
                    log.warning("prompt %s to %s not delivered: %s", prompt.id, agent.id, exc)
                    continue
            delivered += 1
        return delivered

    def _ready_for(self, agent: Agent, prompt: Prompt) -> bool:
        if prompt.not_before is not None and self._clock() < prompt.not_before:
            return False
        if agent.state is AgentState.IDLE:
            return True
        if agent.state is AgentState.STARTING:
            # A CLI whose ready prompt we never recognise still gets its prompt, late.
            return self._clock() - agent.state_since > self._config.supervisor.ready_timeout
        # A prompt meant to be typed at once (its delivery was interrupted) goes to a busy
        # agent too, as a person typing ahead would; queued ones wait for idle.
        return not prompt.wait_ready and agent.state in (AgentState.BUSY, AgentState.STUCK)

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

    async def kill(self, agent_id: str, by: str, remove: bool = False) -> tuple[Agent, int]:
        """Stop an agent on purpose; returns it and how many queued prompts were dropped."""
        async with self._lock:
            agent = await self.get(agent_id)
            if agent.desired is DesiredState.STOPPED and agent.state is AgentState.STOPPED:
                if not remove:
                    raise Conflict(f"{agent_id} is already stopped")
            now = self._clock()
            await self._store.set_agent_desired(agent_id, DesiredState.STOPPED, now)
            had_session = await self._tmux.kill_session(agent_id)
            stopped = await self._store.set_agent_state(
                agent_id, AgentState.STOPPED, f"stopped by {by}", now
            )
            dropped = await self._store.cancel_prompts(agent_id)
            if remove and agent.kind is AgentKind.BUILDER:
                pc = self._project_config(agent.project)
                await remove_worktree(pc.path, Path(agent.workdir))
            await self._events.emit(
                "agent.stopped",
                agent_id,
                agent.project,
                by=by,
                had_session=had_session,
                worktree_removed=remove,
            )
        assert stopped is not None
        return stopped, dropped

    # reconciliation and observation ---------------------------------------------------
    async def reconcile(self, startup: bool = False) -> None:
        """Make the rows agree with tmux: adopt live sessions, mark vanished agents dead."""
        async with self._lock:
            panes = await self._tmux.panes()
            agents = {a.id: a for a in await self._store.list_agents()}
            for agent in agents.values():
                await self._reconcile_one(agent, panes.get(agent.id), startup)
            for name in panes.keys() - agents.keys():
                await self._adopt(name, panes[name])

    async def _reconcile_one(self, agent: Agent, pane: PaneInfo | None, startup: bool) -> None:
        now = self._clock()
        if agent.desired is DesiredState.STOPPED:
            if agent.state is not AgentState.STOPPED:
                await self._store.set_agent_state(agent.id, AgentState.STOPPED, "stopped", now)
            return
        if pane is not None and not pane.dead:
            if startup:
                await self._events.emit("agent.readopted", agent.id, agent.project, pid=pane.pid)
            return
        if not agent.state.is_live:
            return
        if pane is None:
            reason = "its tmux session vanished"
            last: list[str] = []
        else:
            reason = f"its process exited with status {pane.exit_status}"
            last = await self._tmux.capture(agent.id, 10)
        await self._store.set_agent_state(agent.id, AgentState.DEAD, reason, now)
        await self._events.emit(
            "agent.dead", agent.id, agent.project, reason=reason, last_lines=last
        )

    async def _adopt(self, name: str, pane: PaneInfo) -> None:
        env = await self._tmux.session_env(name)
        pc = self._config.project(env.get("FARMBOT_PROJECT", ""))
        if env.get("FARMBOT_AGENT") != name or pc is None:
            return  # not a session farmbot started
        try:
            kind = AgentKind(env.get("FARMBOT_KIND", ""))
        except ValueError:
            return
        number_text = env.get("FARMBOT_NUMBER", "")
        now = self._clock()
        state = AgentState.DEAD if pane.dead else AgentState.STARTING
        agent = Agent(
            id=name,
            project=pc.name,
            kind=kind,
            profile=env.get("FARMBOT_PROFILE", self._config.supervisor.default_agent),
            number=int(number_text) if number_text.isdigit() else None,
            workdir=str(pc.path),
            branch=env.get("FARMBOT_BRANCH") or None,
            desired=DesiredState.RUNNING,
            state=state,
            state_reason="adopted from tmux",
            created_at=pane.created or now,
            updated_at=now,
            state_since=now,
        )
        await self._store.save_agent(agent)
        await self._events.emit("agent.adopted", name, pc.name, pid=pane.pid)

    async def set_state(self, agent: Agent, state: AgentState, reason: str) -> Agent:
        updated = await self._store.set_agent_state(agent.id, state, reason, self._clock())
        await self._events.emit(
            "agent.state",
            agent.id,
            agent.project,
            state=state.value,
            previous=agent.state.value,
            reason=reason,
        )
        return updated or replace(agent, state=state, state_reason=reason)

    def patterns(self, agent: Agent) -> PanePatterns:
        """The compiled idle/busy/waiting patterns of the agent's profile."""
        return self._patterns.get(agent.profile) or PanePatterns(None, None, None)

    def _pane_lock(self, agent_id: str) -> asyncio.Lock:
        return self._pane_locks.setdefault(agent_id, asyncio.Lock())

    async def press_keys(self, agent_id: str, keys: tuple[str, ...]) -> None:
        """Press tmux keys (``1``, ``Escape``) in an agent's pane, never mid-paste."""
        async with self._pane_lock(agent_id):
            try:
                await self._tmux.send_keys(agent_id, *keys)
            except TmuxError as exc:
                raise CommandError(f"could not type into {agent_id}: {exc}") from exc


def _unknown(what: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"unknown {what} '{name}'; did you mean '{close[0]}'?"
    if known:
        return f"unknown {what} '{name}' (known: {', '.join(sorted(known)[:10])})"
    return f"unknown {what} '{name}' (there are none yet)"
