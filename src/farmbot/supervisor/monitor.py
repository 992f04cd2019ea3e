"""The monitor: observes every agent and carries out what the state machine decides.

A thin shell around ``supervisor.state.decide``. It observes -- hook events as they
arrive; once a tick, tmux's process table for every agent in one ``list-panes`` call, and
the screens of only the panes that changed since they were last read -- and carries out
the effects: state writes, events, permission gates, usage-limit pauses, queued prompts,
QA requests. What the machine tracks about each agent is kept in storage, so a restart
does not reset stuck detection.

Reconciliation is part of the tick: an agent whose pane died or vanished is dead (unless a
human stopped it), and a session farmbot started but has no row for is adopted. On a
shared database a node observes and reconciles only its own agents (``Agent.node``):
another node's agent is in another tmux.

The monitor is also the resolver of permission gates. A CLI that asks through a hook
(the ``PermissionRequest`` of Claude Code and Codex) has that request held open while the
gate is pending (up to ``supervisor.permission_hold``), and the decision is its answer --
no keystroke. Otherwise the decision is typed into the pane with the profile's keys, and
the screen is read again to see that the question went away; a reason for a rejection
follows as the agent's next prompt. Codex's hook cannot grant a rule, so what a person
approved for the session there is kept by farmbot (``supervisor.approvals``) and answered
allow at once when the same request comes again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from farmbot.bus import EventBus
from farmbot.config.schema import AgentProfile, Config
from farmbot.durations import TICK_BUCKETS, Durations
from farmbot.errors import CommandError, TmuxError
from farmbot.events import (
    AgentAdopted,
    AgentEvent,
    AgentReadopted,
    AgentStateChanged,
    DomainEvent,
    GateDecided,
    GateOpened,
    GateStale,
    HookReceived,
)
from farmbot.models import Agent, AgentKind, AgentState, Decision, DesiredState, Event, Gate
from farmbot.storage.agents import AgentStore
from farmbot.storage.audit import AuditLog
from farmbot.storage.prompts import PromptStore
from farmbot.storage.tracks import TrackStore
from farmbot.supervisor import permissions
from farmbot.supervisor import state as sm
from farmbot.supervisor.approvals import SessionApprovals
from farmbot.supervisor.gates import Gates
from farmbot.supervisor.keyboard import Keyboard
from farmbot.supervisor.panes import classify, waiting_question
from farmbot.supervisor.tmux import PaneInfo, Tmux

log = logging.getLogger(__name__)

PERMISSION = sm.PERMISSION
CAPTURE_LINES = 200
DEATH_LINES = 10  # of a dead pane's screen, for its alert
HOOKED_READ_EVERY = 10.0  # seconds between screen reads of an agent that sends hooks
ANSWER_SETTLE = 3.0  # seconds a dialog may take to go away after its answer was typed
MAX_FIELD = 4000  # longest string kept from a hook payload

OnQa = Callable[[Agent, str], None]
IsBusy = Callable[[str], bool]


@dataclass(slots=True)
class _Read:
    """When an agent's screen was last read (wall clock), and tmux's activity time then."""

    at: float
    activity: int


class Monitor:
    def __init__(
        self,
        config: Config,
        *,
        agents: AgentStore,
        prompts: PromptStore,
        tracks: TrackStore,
        tmux: Tmux,
        gates: Gates,
        bus: EventBus,
        keyboard: Keyboard,
        rules: dict[str, sm.Rules],
        busy: IsBusy = lambda agent_id: False,
        on_qa: OnQa | None = None,
        audit: AuditLog | None = None,
        clock: Callable[[], float] = time.time,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._node = config.node.name  # observes the agents of this node only
        self._agents = agents
        self._prompts = prompts
        self._track_store = tracks
        self._tmux = tmux
        self._gates = gates
        self._bus = bus
        self._keyboard = keyboard
        self._rules = rules
        self._busy = busy
        self._on_qa = on_qa
        self._clock = clock
        self._wall = wall  # compared with tmux's own activity times, so never a fake clock
        self._tracks: dict[str, sm.Track] = {}
        self._pending: list[Gate] | None = None  # pending permission gates, until one moves
        self._hold = config.supervisor.permission_hold
        self._held: dict[int, asyncio.Future[dict[str, Any]]] = {}  # gate -> its hook's answer
        # agent -> the request its hook last got a decision for, and that answer (until
        # the agent's next event): the same request again is a repeated delivery.
        self._answered: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self.approvals = SessionApprovals(gates, audit, clock)
        self._dirty: set[str] = set()
        self._reads: dict[str, _Read] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Hook events arrive thousands a second: read agents from this cache, refreshed
        # every tick and dropped for an agent whenever an event says it changed.
        self._cache: dict[str, Agent | None] = {}
        bus.subscribe(self._forget)
        self.hook_events = 0
        self.holding = 0  # hook requests held open for a decision right now
        self.ticks = 0
        self.reads = 0
        self.last_tick_seconds = 0.0
        self.tick_durations = Durations(TICK_BUCKETS)  # for the metrics

    def __repr__(self) -> str:
        stats = " ".join(f"{k}={v}" for k, v in self.statistics().items())
        return f"<Monitor {stats}>"

    def statistics(self) -> dict[str, int | float | str]:
        return {
            "tracked": len(self._tracks),
            "hook_events": self.hook_events,
            "held": self.holding,
            "ticks": self.ticks,
            "screens_read": self.reads,
            "session_allowed": self.approvals.allowed,
            "tick_ms": round(self.last_tick_seconds * 1000, 1),
        }

    async def load(self) -> None:
        """Take up what was tracked before a restart."""
        now = self._clock()
        stored = await self._track_store.load_tracks()
        self._tracks = {agent: sm.Track.from_json(data, now) for agent, data in stored.items()}

    def rules_for(self, agent: Agent) -> sm.Rules | None:
        return self._rules.get(agent.profile)

    def reconfigure(self, config: Config) -> None:
        """A reloaded config: profiles' rules (shared with the keyboard, so replaced in
        place), the permission hold, projects; tracked agents keep their tracks."""
        self._config = config
        self._hold = config.supervisor.permission_hold
        self._rules.clear()
        self._rules.update({name: sm.Rules.of(p) for name, p in config.agents.items()})

    # observing one agent ----------------------------------------------------------------
    async def observe(
        self, agent: Agent, observation: sm.Observation, gate: Gate | None = None
    ) -> Agent:
        """Decide what ``observation`` means for ``agent`` and carry it out."""
        async with self._lock(agent.id):
            if gate is None:
                gate = await self._pending_gate(agent.id)
            return await self._observe(agent, observation, gate)

    async def _observe(self, agent: Agent, observation: sm.Observation, gate: Gate | None) -> Agent:
        track = self._tracks.get(agent.id) or sm.Track(last_output_at=self._clock())
        step = sm.decide(agent, observation, track, self.rules_for(agent), gate, self._clock())
        if step.track != track or agent.id not in self._tracks:
            self._tracks[agent.id] = step.track
            self._dirty.add(agent.id)
        updated = agent
        if step.state is not agent.state:
            updated = await self._set_state(agent, step.state, step.reason)
            if updated.state is not step.state:
                return updated  # stopped or dead meanwhile: its effects no longer apply
        for effect in step.effects:
            updated = await self._carry_out(updated, effect, gate)
        return updated

    async def _set_state(self, agent: Agent, state: AgentState, reason: str) -> Agent:
        fresh = await self._agents.get_agent(agent.id)
        if fresh is None:
            return agent
        if state is not AgentState.STOPPED and (
            fresh.desired is DesiredState.STOPPED or not fresh.state.is_live
        ):
            return fresh  # killed or dead meanwhile: never resurrect it
        updated = await self._agents.set_agent_state(agent.id, state, reason, self._clock())
        if updated is None:
            return fresh
        self._cache[agent.id] = updated
        await self._bus.publish(
            AgentStateChanged(
                agent_id=agent.id,
                project=agent.project,
                state=state.value,
                previous=fresh.state.value,
                reason=reason,
            )
        )
        self._cache[agent.id] = updated
        return updated

    async def _carry_out(self, agent: Agent, effect: sm.Effect, gate: Gate | None) -> Agent:
        now = self._clock()
        match effect:
            case sm.Emit(event):
                await self._bus.publish(event)
            case sm.OpenGate(title, detail, payload):
                if await self._pending_gate(agent.id) is None:
                    await self._gates.open(
                        PERMISSION,
                        title,
                        agent_id=agent.id,
                        project=agent.project,
                        detail=detail,
                        payload={**payload, "where": _where(agent)},
                        where=_where(agent),
                    )
            case sm.StaleGate(gate_id, reason):
                found = gate if gate is not None and gate.id == gate_id else None
                found = found or await self._gates.find(gate_id)
                if found is not None:
                    await self._gates.mark_stale(found, reason)
            case sm.Pause(until):
                paused = await self._agents.set_agent_paused(agent.id, until, now)
                if paused is not None:
                    agent = paused
                    self._cache[agent.id] = paused
            case sm.Queue(text, source, not_before):
                await self._prompts.add_prompt(
                    agent.id, text, source, now, wait_ready=True, not_before=not_before
                )
            case sm.RequestQa(trigger):
                if self._on_qa is not None:
                    self._on_qa(agent, trigger)
        return agent

    def let_go(self) -> int:
        """Answer every held hook with nothing (the daemon stops): each CLI shows its own
        dialog, answered through the pane after the restart. Returns how many."""
        self._hold = 0.0  # and holds no more
        held = [f for f in self._held.values() if not f.done()]
        for waiting in held:
            waiting.set_result(permissions.NO_ANSWER)
        self._held.clear()
        return len(held)

    async def open_question(self, agent_id: str) -> Gate | None:
        """The agent's permission gate still waiting on a person, if any.

        A CLI asking through its hook has a gate before its dialog is drawn (and keeps
        it while the hook is held), so a screen that shows no question yet proves nothing.
        """
        return await self._pending_gate(agent_id)

    async def _pending_gate(self, agent_id: str) -> Gate | None:
        if self._pending is None:
            self._pending = [g for g in await self._gates.pending() if g.kind == PERMISSION]
        return next((g for g in self._pending if g.agent_id == agent_id), None)

    def _lock(self, agent_id: str) -> asyncio.Lock:
        return self._locks.setdefault(agent_id, asyncio.Lock())

    # hook events ------------------------------------------------------------------------
    async def on_hook(
        self, agent_id: str, payload: dict[str, Any], *, hold: bool = True
    ) -> dict[str, Any]:
        """Store one hook event (durably), let it move the agent's state; return the answer.

        The answer to a ``PermissionRequest`` is the decision on its gate, waited for up to
        ``permission_hold`` seconds (unless ``hold`` is false: an event replayed from the
        spool has no CLI waiting for it); to anything else, or when the wait ends, ``{}``.
        Hook delivery is at least once: a copy of a request arriving while it is held waits
        for the same decision, and a copy of the request just answered (nothing else came
        from the agent since: a real second request follows its own ``PreToolUse``) gets
        the same answer at once, with no new gate.
        """
        name = str(payload.get("hook_event_name", "unknown"))
        agent = await self._agent(agent_id)
        await self._bus.publish(
            HookReceived(
                agent_id=agent_id,
                project=agent.project if agent else None,
                name=name,
                payload=_trim(payload),
            )
        )
        self.hook_events += 1
        if agent is None or agent.desired is DesiredState.STOPPED or not agent.state.is_live:
            return permissions.NO_ANSWER
        answered = self._answered.pop(agent_id, None)
        if name == "PermissionRequest" and answered is not None and answered[0] == payload:
            self._answered[agent_id] = answered
            return answered[1] if hold else permissions.NO_ANSWER
        if hold and name == "PermissionRequest" and self._hold > 0:
            profile = self._config.agents.get(agent.profile)
            allowed = await self.approvals.answer(agent, profile, payload)
            if allowed is not None:
                return allowed
        await self.observe(agent, sm.Hook(name, payload))
        if hold and name == "PermissionRequest" and self._hold > 0:
            gate = await self._pending_gate(agent_id)
            if gate is not None and gate.payload.get("source") == "hook":
                answer = await self._hold_for(gate)
                if answer:
                    self._answered[agent_id] = (payload, answer)
                return answer
        return permissions.NO_ANSWER

    async def _hold_for(self, gate: Gate) -> dict[str, Any]:
        """The decision on ``gate`` as the hook's answer, once made (or ``{}`` at the limit)."""
        waiting = self._held.get(gate.id)
        if waiting is None:  # a repeat of the request (a retried hook) waits for the same
            waiting = self._held[gate.id] = asyncio.get_running_loop().create_future()
        self.holding += 1
        try:
            async with asyncio.timeout(self._hold):
                return await asyncio.shield(waiting)
        except TimeoutError:
            return permissions.NO_ANSWER  # the CLI's own dialog stays: answered by keys
        finally:
            self.holding -= 1
            if self._held.get(gate.id) is waiting and not waiting.done():
                self._held.pop(gate.id, None)

    async def _agent(self, agent_id: str) -> Agent | None:
        if agent_id not in self._cache:
            self._cache[agent_id] = await self._agents.get_agent(agent_id)
        return self._cache[agent_id]

    def _forget(self, record: Event, event: DomainEvent, alerts: object) -> None:
        if isinstance(event, GateOpened | GateDecided | GateStale):
            self._pending = None
        if isinstance(event, GateStale):  # nothing to answer any more: let the hook go
            held = self._held.pop(event.gate_id, None)
            if held is not None and not held.done():
                held.set_result(permissions.NO_ANSWER)
        elif isinstance(event, AgentEvent) and event.agent_id is not None:
            if not isinstance(event, AgentStateChanged):  # the monitor wrote those itself
                self._cache.pop(event.agent_id, None)

    # the tick ---------------------------------------------------------------------------
    async def round(self) -> None:
        """One supervision round: reconcile with tmux, read the changed panes, decide."""
        await self.tick()

    async def tick(self) -> None:
        """Observe every agent once: its process, and its screen when that changed."""
        started = time.perf_counter()
        self.ticks += 1
        panes = await self._tmux.panes()
        self._pending = None
        every = await self._agents.list_agents()
        agents = [agent for agent in every if agent.node == self._node]
        self._cache = {agent.id: agent for agent in agents}
        for agent in agents:
            if self._busy(agent.id):
                continue  # being spawned or stopped right now
            gate = await self._pending_gate(agent.id)
            observation = await self._look(agent, panes.get(agent.id), gate)
            if observation is None:
                continue
            async with self._lock(agent.id):
                await self._observe(agent, observation, gate)
        known = {agent.id for agent in every}
        for name in panes.keys() - known:
            await self._adopt(name, panes[name])
        await self.save_tracks()
        self.last_tick_seconds = time.perf_counter() - started
        self.tick_durations.observe(self.last_tick_seconds)

    async def _look(
        self, agent: Agent, pane: PaneInfo | None, gate: Gate | None
    ) -> sm.Observation | None:
        """What there is to observe about the agent now (None: nothing to decide)."""
        if agent.desired is DesiredState.STOPPED or not agent.state.is_live:
            self._forget_agent(agent.id)
            stopping = agent.desired is DesiredState.STOPPED
            unsettled = stopping and agent.state is not AgentState.STOPPED
            return sm.Screen(None) if unsettled or gate is not None else None
        if pane is None:
            return sm.PaneGone(vanished=True)
        if pane.dead:
            last = await self._capture(agent.id, DEATH_LINES)
            return sm.PaneGone(
                exit_status=pane.exit_status, signal=pane.exit_signal, last_lines=tuple(last)
            )
        if not self._should_read(agent, pane):
            return sm.Screen(None)
        read_at = self._wall()
        lines = await self._capture(agent.id, CAPTURE_LINES)
        self._reads[agent.id] = _Read(read_at, pane.activity)
        self.reads += 1
        held = gate is not None and self._answers_by_hook(gate)
        return sm.Screen(tuple(lines), held=held)

    def _should_read(self, agent: Agent, pane: PaneInfo) -> bool:
        """Whether the screen may have changed since it was last read (tmux knows).

        A screen changes only when its program prints, and tmux records when a pane last
        printed: an idle agent's screen is never read twice. Agents whose CLI sends hook
        events are read at most every ``HOOKED_READ_EVERY`` seconds (the hooks say what
        they do), except while they wait on a question (it may be answered at the pane).
        """
        last = self._reads.get(agent.id)
        if last is None:
            return True
        # tmux's activity time has a resolution of a second: output in the second of the
        # last read may have come after it, so that second counts as new.
        if pane.activity < int(last.at):
            return False
        track = self._tracks.get(agent.id)
        hooked = track is not None and track.last_hook_at is not None
        if not hooked or agent.state is AgentState.WAITING:
            return True
        return self._wall() - last.at >= HOOKED_READ_EVERY

    async def _capture(self, agent_id: str, lines: int) -> list[str]:
        try:
            return await self._tmux.capture(agent_id, lines)
        except TmuxError:
            return []

    def _forget_agent(self, agent_id: str) -> None:
        self._reads.pop(agent_id, None)
        self._answered.pop(agent_id, None)
        self.approvals.forget(agent_id)
        if self._tracks.pop(agent_id, None) is not None:
            self._dirty.add(agent_id)

    async def save_tracks(self) -> None:
        """Store the tracks that changed (once per tick: a crash loses at most a tick)."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        now = self._clock()
        keep = [(a, self._tracks[a].to_json()) for a in sorted(dirty) if a in self._tracks]
        await self._track_store.save_tracks(keep, now)
        for agent_id in dirty - self._tracks.keys():
            await self._track_store.drop_track(agent_id)

    # reconciliation -----------------------------------------------------------------------
    async def reconcile(self, *, startup: bool = False) -> None:
        """Adopt sessions farmbot started but has no row for; at start, say who is back."""
        if not startup:
            panes = await self._tmux.panes()
        else:  # one tmux call: the hooks set, the environment read, the panes listed
            removed, panes = await self._tmux.take_over()
            if removed:
                log.warning(
                    "the tmux server on socket %r was started with farmbot's whole environment "
                    "(by an older farmbot); removed %s from what new agents inherit. The "
                    "agents already running, and the tmux server process itself, still hold "
                    "those values: restart them (stop every agent, then `tmux -L %s "
                    "kill-server`) to be rid of them",
                    self._tmux.socket,
                    ", ".join(removed),
                    self._tmux.socket,
                )
        agents = {a.id: a for a in await self._agents.list_agents()}
        if startup:
            for agent in (a for a in agents.values() if a.node == self._node):
                pane = panes.get(agent.id)
                live = agent.desired is DesiredState.RUNNING and agent.state.is_live
                if live and pane is not None and not pane.dead:
                    await self._bus.publish(
                        AgentReadopted(agent_id=agent.id, project=agent.project, pid=pane.pid)
                    )
        for name in panes.keys() - agents.keys():
            await self._adopt(name, panes[name])

    async def _adopt(self, name: str, pane: PaneInfo) -> None:
        if self._busy(name):
            return
        try:
            env = await self._tmux.session_env(name)
        except TmuxError:
            return
        pc = self._config.project(env.get("FARMBOT_PROJECT", ""))
        if env.get("FARMBOT_AGENT") != name or pc is None:
            return  # not a session farmbot started
        try:
            kind = AgentKind(env.get("FARMBOT_KIND", ""))
        except ValueError:
            return
        number_text = env.get("FARMBOT_NUMBER", "")
        now = self._clock()
        agent = Agent(
            id=name,
            project=pc.name,
            kind=kind,
            profile=env.get("FARMBOT_PROFILE", self._config.supervisor.default_agent),
            number=int(number_text) if number_text.isdigit() else None,
            workdir=env.get("FARMBOT_WORKDIR") or str(pc.path),
            branch=env.get("FARMBOT_BRANCH") or None,
            desired=DesiredState.RUNNING,
            state=AgentState.DEAD if pane.dead else AgentState.STARTING,
            state_reason="adopted from tmux",
            created_at=pane.created or now,
            updated_at=now,
            state_since=now,
            node=self._node,
        )
        await self._agents.save_agent(agent)
        await self._bus.publish(AgentAdopted(agent_id=name, project=pc.name, pid=pane.pid))

    # permission gates (the monitor is their GateResolver) --------------------------------
    async def stale_reason(self, gate: Gate) -> str | None:
        """Why a permission gate can no longer be decided, or None while it can."""
        agent = await self._agents.get_agent(gate.agent_id or "")
        if agent is None or not agent.state.is_live or agent.desired is DesiredState.STOPPED:
            return f"{gate.agent_id or 'its agent'} is no longer running"
        if self._answers_by_hook(gate):
            return None  # its CLI waits for the hook's answer (Codex draws no dialog meanwhile)
        rules = self.rules_for(agent)
        try:
            lines = await self._tmux.capture(agent.id, CAPTURE_LINES)
        except TmuxError:
            return f"{agent.id} has no screen any more"
        track = self._tracks.get(agent.id)
        said = list(sm.after_prompt(tuple(lines), track.prompt_head if track else ""))
        if rules is None or classify(said, rules.patterns) is not AgentState.WAITING:
            return f"the question is no longer showing on {agent.id}'s screen"
        expected = gate.payload.get("fingerprint")
        if expected and sm.fingerprint(waiting_question(said, rules.patterns)) != expected:
            return "a different question is showing now"
        return None

    async def refuses(self, gate: Gate, decision: Decision) -> str | None:
        """Why ``decision`` cannot be carried out on this gate's agent at all.

        Read from storage, not the tick's cache: an agent not seen since the last tick (a
        restart, a node that just took over) is refused alike, before anything is saved.
        """
        if not decision.session or self._answers_by_hook(gate):
            return None
        agent = await self._agents.get_agent(gate.agent_id or "")
        if agent is None:
            return None  # stale_reason says it is gone
        profile = self._config.agents.get(agent.profile)
        if profile is None:
            return (
                f"{agent.id}'s profile {agent.profile} is no longer configured, so farmbot "
                "knows no 'approve for this session' key; approve it once (/approve "
                "without --session)"
            )
        if not profile.session_keys:
            return (
                f"{agent.id}'s CLI (profile {profile.name}) has no "
                "'approve for this session'; approve it once (/approve without --session)"
            )
        return None

    def _answers_by_hook(self, gate: Gate) -> bool:
        held = self._held.get(gate.id)
        return held is not None and not held.done()

    async def apply(self, gate: Gate, decision: Decision) -> str:
        """Answer the question: through the CLI's hook when it holds one, else by keys."""
        agent = await self._agents.get_agent(gate.agent_id or "")
        assert agent is not None
        profile = self._config.agents.get(agent.profile)
        held = self._held.pop(gate.id, None)
        if held is not None and not held.done():
            grants = profile is None or profile.hook_grants_rules
            by = gate.decided_by or ""
            held.set_result(
                permissions.hook_answer(decision, gate.payload, by=by, grants_rules=grants)
            )
            async with self._lock(agent.id):
                await self._observe(agent, sm.Answered(decision.approved), None)
            done = f"answered through {agent.id}'s hook"
            if decision.approved and decision.session and not grants:
                self.approvals.remember(gate)
                done += "; farmbot allows the same request again in this session without asking"
            return done
        keys = _keys_for(profile, decision)
        await self._keyboard.press(agent.id, keys)
        async with self._lock(agent.id):
            await self._observe(agent, sm.Answered(decision.approved, gate.detail), None)
        done = f"sent {' '.join(keys)} to {agent.id}"
        if decision.approved and decision.session and profile is not None and profile.session_note:
            done += f" ({profile.session_note})"
        if not await self._question_gone(agent, gate):
            done += f"; the question still shows on its screen (/tail {agent.id})"
        if not decision.approved and decision.reason:
            await self._prompts.add_prompt(
                agent.id,
                decision.reason,
                f"gate {gate.id} ({gate.decided_by})",
                self._clock(),
                wait_ready=True,
            )
            done += "; the reason goes in as its next prompt"
        return done

    async def _question_gone(self, agent: Agent, gate: Gate) -> bool:
        """Whether the question left the screen soon after its answer was typed."""
        deadline = self._wall() + ANSWER_SETTLE
        while True:
            if await self.stale_reason(gate) is not None:
                return True
            if self._wall() >= deadline:
                return False
            await asyncio.sleep(0.1)


def _where(agent: Agent) -> str:
    """Where the agent works, as a gate says it."""
    where = f"worktree {agent.workdir}" if agent.branch else f"directory {agent.workdir}"
    return f"{where}, branch {agent.branch}" if agent.branch else where


def _keys_for(profile: AgentProfile | None, decision: Decision) -> tuple[str, ...]:
    if profile is None:
        return ("Escape",) if not decision.approved else ("Enter",)
    if not decision.approved:
        return profile.deny_keys
    if decision.session:
        if not profile.session_keys:
            raise CommandError(f"profile {profile.name} has no keys to approve for the session")
        return profile.session_keys
    return profile.approve_keys


def _trim(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_FIELD else f"{value[:MAX_FIELD]}… ({len(value)} chars)"
    if isinstance(value, dict) and depth < 6:
        return {str(k): _trim(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list) and depth < 6:
        return [_trim(v, depth + 1) for v in value[:200]]
    return value
