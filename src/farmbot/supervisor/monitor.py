"""The monitor: what every agent is really doing, and when a human is needed.

Hook events decide first (Claude Code tells us when a turn starts, a tool runs, a
permission dialog opens, a turn stops). For CLIs without hooks the pane decides: its
process, whether its output changes, and the profile's idle/busy/waiting patterns.
On top of the state sit the stuck rules (seed: busy with no output for 10 min, no tool
call for 5 min, the same error 3 times, asking for help, waiting on a human too long),
permission gates, and usage-limit pauses. Time comes from the injected clock.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from farmbot.config.schema import AgentProfile, Config
from farmbot.errors import TmuxError
from farmbot.models import Agent, AgentKind, AgentState, DesiredState, Event, Gate, NewEvent
from farmbot.storage.base import Store
from farmbot.supervisor.agents import Supervisor
from farmbot.supervisor.events import EventLog
from farmbot.supervisor.gates import Gates
from farmbot.supervisor.limits import DEFAULT_PAUSE, reset_time
from farmbot.supervisor.panes import PanePatterns, bottom, classify, waiting_question
from farmbot.supervisor.tmux import Tmux

log = logging.getLogger(__name__)

PERMISSION = "permission"
CAPTURE_LINES = 200
STALE_GRACE = 3.0  # a dialog may take a moment to show after its hook event
MAX_FIELD = 4000  # longest string kept from a hook payload

WriteEvent = Callable[[NewEvent], Awaitable[int]]
OnIdle = Callable[[Agent], None]


@dataclass(slots=True)
class _Track:
    """What the monitor remembers about one agent between ticks (rebuilt after a restart)."""

    last_output_at: float
    digest: str = ""
    last_hook_at: float | None = None
    last_tool_at: float | None = None
    reported_errors: set[str] = field(default_factory=set)
    help_digest: str = ""
    limit_line: str = ""
    escalated: int = 0  # 0 none, 1 warning sent, 2 critical sent


def fingerprint(question: str) -> str:
    return hashlib.blake2b(question.encode(), digest_size=8).hexdigest()


class Monitor:
    def __init__(
        self,
        config: Config,
        store: Store,
        tmux: Tmux,
        supervisor: Supervisor,
        gates: Gates,
        events: EventLog,
        *,
        write_event: WriteEvent | None = None,
        on_idle: OnIdle | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._store = store
        self._tmux = tmux
        self._sup = supervisor
        self._gates = gates
        self._events = events
        self._write_event = write_event
        self._on_idle = on_idle
        self._clock = clock
        self._tracks: dict[str, _Track] = {}
        # Hook events arrive thousands a second: read agents from this cache, refreshed
        # every tick and dropped for an agent whenever anything happens to it.
        self._agents: dict[str, Agent | None] = {}
        events.subscribe(self._forget)
        self.hook_events = 0
        self.ticks = 0
        gates.register(PERMISSION, self)

    def __repr__(self) -> str:
        return (
            f"<Monitor tracked={len(self._tracks)} hook_events={self.hook_events} "
            f"ticks={self.ticks}>"
        )

    def _track(self, agent_id: str) -> _Track:
        track = self._tracks.get(agent_id)
        if track is None:
            track = self._tracks[agent_id] = _Track(last_output_at=self._clock())
        return track

    def profile(self, agent: Agent) -> AgentProfile | None:
        return self._config.agents.get(agent.profile)

    def patterns(self, agent: Agent) -> PanePatterns:
        return self._sup.patterns(agent)

    # hook events ----------------------------------------------------------------------
    async def on_hook(self, agent_id: str, payload: dict[str, Any]) -> None:
        """Store one hook event (durably, batched), then let it move the agent's state."""
        name = str(payload.get("hook_event_name", "unknown"))
        agent = await self._agent(agent_id)
        now = self._clock()
        event = NewEvent(
            kind=f"hook.{name}",
            agent_id=agent_id,
            project=agent.project if agent else None,
            data=_trim(payload),
            ts=now,
        )
        if self._write_event is not None:
            await self._write_event(event)
        else:
            await self._store.add_events([event], now)
        self.hook_events += 1
        if agent is None or agent.desired is DesiredState.STOPPED or not agent.state.is_live:
            return
        track = self._track(agent_id)
        track.last_hook_at = now
        await self._apply_hook(agent, name, payload, track, now)

    async def _agent(self, agent_id: str) -> Agent | None:
        if agent_id not in self._agents:
            self._agents[agent_id] = await self._store.get_agent(agent_id)
        return self._agents[agent_id]

    def _forget(self, event: Event) -> None:
        if event.agent_id is not None and event.kind.startswith(("agent.", "prompt.")):
            self._agents.pop(event.agent_id, None)

    async def _apply_hook(
        self, agent: Agent, name: str, payload: dict[str, Any], track: _Track, now: float
    ) -> None:
        if name in ("UserPromptSubmit", "PreToolUse", "PostToolUse"):
            track.last_tool_at = now
            if agent.state is not AgentState.WAITING or name == "PostToolUse":
                await self._set(agent, AgentState.BUSY, f"{name} hook")
        elif name == "SessionStart" and agent.state is AgentState.STARTING:
            await self._set(agent, AgentState.IDLE, "session started")
        elif name == "PermissionRequest" or (
            name == "Notification" and payload.get("notification_type") == "permission_prompt"
        ):
            agent = await self._set(agent, AgentState.WAITING, "asks for permission")
            request = _describe_request(payload)
            await self._open_permission_gate(agent, request, request, "hook", None)
        elif name == "Notification" and payload.get("notification_type") == "idle_prompt":
            await self._set(agent, AgentState.IDLE, "waiting for input")
        elif name == "Stop":
            await self._stale_gates(agent, "the agent finished its turn")
            await self._set(agent, AgentState.IDLE, "turn finished")

    # the pane -------------------------------------------------------------------------
    async def round(self) -> None:
        """One supervision round: reconcile with tmux, read the panes, deliver prompts."""
        await self._sup.reconcile()
        await self.tick()
        await self._sup.deliver_pending()

    async def tick(self) -> None:
        """Read every live agent's pane; apply the state, stuck and escalation rules."""
        self.ticks += 1
        panes = await self._tmux.panes()
        pending = await self._gates.pending()
        agents = await self._store.list_agents()
        self._agents = {agent.id: agent for agent in agents}
        for agent in agents:
            if agent.desired is DesiredState.STOPPED or not agent.state.is_live:
                self._tracks.pop(agent.id, None)
                await self._stale_gates(agent, f"{agent.id} is {agent.state.value}", pending)
                continue
            pane = panes.get(agent.id)
            if pane is None or pane.dead:
                continue  # reconciliation marks it dead
            try:
                lines = await self._tmux.capture(agent.id, CAPTURE_LINES)
            except TmuxError:
                continue
            gate = next(
                (g for g in pending if g.agent_id == agent.id and g.kind == PERMISSION), None
            )
            await self._observe(agent, lines, gate)

    async def _observe(self, agent: Agent, lines: list[str], gate: Gate | None) -> None:
        now = self._clock()
        track = self._track(agent.id)
        digest = hashlib.blake2b("\n".join(lines).encode(), digest_size=16).hexdigest()
        changed = digest != track.digest
        if changed:
            track.digest, track.last_output_at = digest, now
        profile = self.profile(agent)
        if agent.state is AgentState.PAUSED:
            await self._maybe_resume(agent, now)
            return
        if profile is not None and await self._maybe_pause(agent, profile, lines, track, now):
            return
        target = self._pane_state(agent, lines, track, changed)
        question = (
            waiting_question(lines, self.patterns(agent)) if target is AgentState.WAITING else ""
        )
        if question:
            agent = await self._set(agent, AgentState.WAITING, "asks a question")
            if gate is None or (
                gate.payload.get("fingerprint") not in (None, fingerprint(question))
            ):
                if gate is not None:
                    await self._gates.mark_stale(gate, "a different question is showing now")
                asked = _asked_line(question, self.patterns(agent))
                await self._open_permission_gate(
                    agent, asked, question, "pane", fingerprint(question)
                )
        elif gate is not None and now - gate.created_at > STALE_GRACE:
            await self._gates.mark_stale(gate, "the question is no longer showing")
        if profile is not None and agent.kind is not AgentKind.SHELL:
            target = await self._help_and_stuck(agent, profile, lines, track, target, now, changed)
        if target is not agent.state and not question:
            agent = await self._set(agent, target, _why(target))
        if profile is not None:
            await self._escalate(agent, profile, track, lines, now)

    def _pane_state(
        self, agent: Agent, lines: list[str], track: _Track, changed: bool
    ) -> AgentState:
        if agent.kind is AgentKind.SHELL:
            return AgentState.IDLE
        seen = classify(lines, self.patterns(agent))
        if track.last_hook_at is not None:
            # Hooks decide busy and idle; the pane only shows a question opening or going away
            # (after a plain "no" Claude Code sends no Stop event).
            if seen is AgentState.WAITING:
                return seen
            if agent.state is AgentState.WAITING and agent.state_reason != "asked for help":
                return seen or AgentState.IDLE
            return agent.state
        if seen is None:
            if agent.state is AgentState.STARTING:
                return agent.state
            return AgentState.BUSY if changed else agent.state
        if agent.state is AgentState.STUCK and seen is AgentState.BUSY and not changed:
            return AgentState.STUCK
        return seen

    async def _help_and_stuck(
        self,
        agent: Agent,
        profile: AgentProfile,
        lines: list[str],
        track: _Track,
        target: AgentState,
        now: float,
        changed: bool,
    ) -> AgentState:
        latest = bottom(lines, 3)
        asking = next((ln for ln in latest if re.search(profile.help_pattern, ln)), None)
        if asking is not None and fingerprint(asking) != track.help_digest:
            track.help_digest = fingerprint(asking)
            agent = await self._set(agent, AgentState.WAITING, "asked for help")
            await self._events.emit(
                "agent.needs_human",
                agent.id,
                agent.project,
                question=asking.strip(),
                last_lines=bottom(lines, 15),
            )
            return AgentState.WAITING
        if agent.state is AgentState.WAITING and agent.state_reason == "asked for help":
            return AgentState.WAITING if not changed else target
        if agent.state is AgentState.STUCK and not changed:
            return AgentState.STUCK  # until its screen moves again
        if target not in (AgentState.BUSY, AgentState.STUCK, AgentState.IDLE):
            return target
        reason = self._stuck_reason(
            profile, lines, track, now, agent, busy=target is not AgentState.IDLE
        )
        if reason is None:
            return AgentState.BUSY if target is AgentState.STUCK else target
        if agent.state is not AgentState.STUCK:
            await self._set(agent, AgentState.STUCK, reason)
            await self._events.emit(
                "agent.stuck", agent.id, agent.project, reason=reason, last_lines=bottom(lines, 15)
            )
        return AgentState.STUCK

    def _stuck_reason(
        self,
        profile: AgentProfile,
        lines: list[str],
        track: _Track,
        now: float,
        agent: Agent,
        *,
        busy: bool,
    ) -> str | None:
        errors = Counter(ln.strip() for ln in lines if re.search(profile.error_pattern, ln))
        for line, count in errors.most_common():
            if count < profile.stuck_repeated_error:
                break
            if line not in track.reported_errors:
                track.reported_errors.add(line)
                return f"the same error {count} times: {line[:200]}"
        if not busy:
            return None
        quiet = now - track.last_output_at
        if quiet >= profile.stuck_no_output:
            return f"busy with no new output for {_minutes(quiet)}"
        if track.last_hook_at is not None and agent.state in (AgentState.BUSY, AgentState.STUCK):
            since = now - max(track.last_tool_at or 0.0, agent.state_since)
            if since >= profile.stuck_no_tool:
                return f"busy with no tool call for {_minutes(since)}"
        return None

    async def _escalate(
        self, agent: Agent, profile: AgentProfile, track: _Track, lines: list[str], now: float
    ) -> None:
        if agent.state not in (AgentState.WAITING, AgentState.STUCK):
            track.escalated = 0
            return
        waited = now - agent.state_since
        level = 0
        if waited >= profile.waiting_critical:
            level = 2
        elif waited >= profile.waiting_warn and agent.state is AgentState.WAITING:
            level = 1
        if level > track.escalated:
            track.escalated = level
            await self._events.emit(
                "agent.waiting_too_long",
                agent.id,
                agent.project,
                level="critical" if level == 2 else "warning",
                minutes=int(waited // 60),
                state=agent.state.value,
                reason=agent.state_reason,
                last_lines=bottom(lines, 15),
            )

    # usage limits -----------------------------------------------------------------------
    async def _maybe_pause(
        self, agent: Agent, profile: AgentProfile, lines: list[str], track: _Track, now: float
    ) -> bool:
        line = next((ln for ln in bottom(lines, 3) if re.search(profile.limit_pattern, ln)), None)
        if line is None or line == track.limit_line:
            return False
        track.limit_line = line
        until = reset_time(line, now)
        guessed = until is None
        until = until if until is not None else now + DEFAULT_PAUSE
        await self._store.set_agent_paused(agent.id, until, now)
        await self._set(agent, AgentState.PAUSED, f"usage limit until {_clock_time(until)}")
        if profile.continue_prompt:
            await self._store.add_prompt(
                agent.id, profile.continue_prompt, "usage-limit", True, now, not_before=until
            )
        await self._events.emit(
            "agent.paused",
            agent.id,
            agent.project,
            until=until,
            reason=line.strip(),
            guessed=guessed,
            will_continue=bool(profile.continue_prompt),
        )
        return True

    async def _maybe_resume(self, agent: Agent, now: float) -> None:
        if agent.paused_until is not None and now < agent.paused_until:
            return
        await self._store.set_agent_paused(agent.id, None, now)
        await self._set(agent, AgentState.IDLE, "usage limit reset")
        await self._events.emit("agent.resumed", agent.id, agent.project)

    # gates ------------------------------------------------------------------------------
    async def _open_permission_gate(
        self, agent: Agent, summary: str, question: str, source: str, print_: str | None
    ) -> None:
        pending = [
            g
            for g in await self._gates.pending()
            if g.agent_id == agent.id and g.kind == PERMISSION
        ]
        if pending:
            return
        await self._gates.open(
            PERMISSION,
            f"{agent.id} asks: {summary.strip()[:120] or 'a question'}",
            agent_id=agent.id,
            project=agent.project,
            detail=question,
            payload={"source": source, "fingerprint": print_},
        )

    async def _stale_gates(
        self, agent: Agent, reason: str, pending: list[Gate] | None = None
    ) -> None:
        for gate in pending if pending is not None else await self._gates.pending():
            if gate.agent_id == agent.id and gate.kind == PERMISSION:
                await self._gates.mark_stale(gate, reason)

    # permission gates (the monitor is their GateResolver) ------------------------------
    async def stale_reason(self, gate: Gate) -> str | None:
        """Why a permission gate can no longer be decided, or None while it can."""
        agent = await self._store.get_agent(gate.agent_id or "")
        if agent is None or not agent.state.is_live or agent.desired is DesiredState.STOPPED:
            return f"{gate.agent_id or 'its agent'} is no longer running"
        try:
            lines = await self._tmux.capture(agent.id, CAPTURE_LINES)
        except TmuxError:
            return f"{agent.id} has no screen any more"
        if classify(lines, self.patterns(agent)) is not AgentState.WAITING:
            return f"the question is no longer showing on {agent.id}'s screen"
        expected = gate.payload.get("fingerprint")
        if expected and fingerprint(waiting_question(lines, self.patterns(agent))) != expected:
            return "a different question is showing now"
        return None

    async def apply(self, gate: Gate, approved: bool) -> str:
        """Answer the question: type the profile's approve or deny keys into the pane."""
        agent = await self._store.get_agent(gate.agent_id or "")
        assert agent is not None
        profile = self.profile(agent)
        keys = (profile.approve_keys if approved else profile.deny_keys) if profile else ("Escape",)
        await self._sup.press_keys(agent.id, keys)
        state = AgentState.BUSY if approved else AgentState.IDLE
        await self._set(agent, state, "permission approved" if approved else "permission denied")
        return f"sent {' '.join(keys)} to {agent.id}"

    async def _set(self, agent: Agent, state: AgentState, reason: str) -> Agent:
        if agent.state is state and agent.state_reason == reason:
            return agent
        fresh = await self._store.get_agent(agent.id)
        if fresh is None or fresh.desired is DesiredState.STOPPED or not fresh.state.is_live:
            return fresh or agent  # killed or dead meanwhile: never resurrect it
        if fresh.state is state:
            return fresh
        updated = await self._sup.set_state(fresh, state, reason)
        self._agents[updated.id] = updated
        if (
            state is AgentState.IDLE
            and fresh.state in (AgentState.BUSY, AgentState.STUCK)
            and self._on_idle is not None
        ):
            self._on_idle(updated)
        return updated


def _asked_line(question: str, patterns: PanePatterns) -> str:
    """The line of a pane's question that the waiting pattern matched."""
    lines = question.splitlines()
    if patterns.waiting is not None:
        for line in reversed(lines):
            if patterns.waiting.search(line):
                return line
    return next((ln for ln in lines if ln.strip()), "")


def _describe_request(payload: dict[str, Any]) -> str:
    tool = str(payload.get("tool_name") or payload.get("message") or "a tool")
    tool_input = payload.get("tool_input")
    if isinstance(tool_input, dict):
        detail = (
            tool_input.get("command")
            or tool_input.get("file_path")
            or tool_input.get("description")
        )
        if detail:
            return f"{tool}: {detail}"
    return tool


def _trim(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_FIELD else f"{value[:MAX_FIELD]}… ({len(value)} chars)"
    if isinstance(value, dict) and depth < 6:
        return {str(k): _trim(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list) and depth < 6:
        return [_trim(v, depth + 1) for v in value[:200]]
    return value


def _why(state: AgentState) -> str:
    return {
        AgentState.IDLE: "waiting for input",
        AgentState.BUSY: "working",
        AgentState.WAITING: "asks a question",
    }.get(state, "seen on the pane")


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min" if seconds >= 60 else f"{int(seconds)} s"


def _clock_time(ts: float) -> str:
    return time.strftime("%H:%M UTC", time.gmtime(ts))
