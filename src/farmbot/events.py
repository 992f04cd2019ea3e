"""Typed events: everything that happens to agents, gates and projects.

Each kind of event is a frozen dataclass with a stable ``kind`` string (what the events
table, the status page, the JSON API and ``[alerts.rules]`` call it). Publishing one
(``EventBus.publish``, farmbot/bus.py) stores it -- with the alerts it raises, in one
transaction -- and then tells the listeners. Alert rules and listeners match on the class,
never on strings.

``AgentEvent`` marks the events after which what is known about the agent has changed
(its row, its queue), so caches of agent rows drop it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

__all__ = [
    "AgentAdopted",
    "AgentDead",
    "AgentEvent",
    "AgentNeedsHuman",
    "AgentPaused",
    "AgentReadopted",
    "AgentResumed",
    "AgentSpawned",
    "AgentStateChanged",
    "AgentStopped",
    "AgentStuck",
    "AgentWaitingTooLong",
    "ConfigRefused",
    "ConfigReloaded",
    "Deployed",
    "DomainEvent",
    "GateDecided",
    "GateOpened",
    "GateStale",
    "HookReceived",
    "InterfaceDeaf",
    "InterfaceHears",
    "ModeChanged",
    "NodeDown",
    "NodeUp",
    "ProjectActivated",
    "ProjectDeactivated",
    "PromptDelivered",
    "PromptFailed",
    "QaFinished",
    "RunBlocked",
    "RunFinished",
    "RunStarted",
    "RunStateChanged",
    "TaskAdded",
    "TaskFailed",
    "TaskLanded",
    "TaskMoved",
    "TaskNotLanded",
    "TaskRetried",
    "WaveDone",
]

_WHERE = ("agent_id", "project")


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainEvent:
    """Something that happened; stored first, then announced."""

    KIND: ClassVar[str] = ""
    agent_id: str | None = None
    project: str | None = None

    @property
    def kind(self) -> str:
        return self.KIND

    def data(self) -> dict[str, Any]:
        """The event's own fields, as the events table stores them (JSON: tuples are lists)."""
        return {
            f.name: list(value) if isinstance(value := getattr(self, f.name), tuple) else value
            for f in fields(self)
            if f.name not in _WHERE
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentEvent(DomainEvent):
    """An event after which an agent's row or queue may differ."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentSpawned(AgentEvent):
    """An agent was started in a new tmux session."""

    KIND: ClassVar[str] = "agent.spawned"
    by: str
    workdir: str
    command: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStopped(AgentEvent):
    """An agent was stopped on purpose (``/kill``, or the autopilot retiring it)."""

    KIND: ClassVar[str] = "agent.stopped"
    by: str
    had_session: bool
    worktree_removed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentReadopted(AgentEvent):
    """A live session found again at start."""

    KIND: ClassVar[str] = "agent.readopted"
    pid: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentAdopted(AgentEvent):
    """A session farmbot started, found in tmux with no row (e.g. a lost database)."""

    KIND: ClassVar[str] = "agent.adopted"
    pid: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStateChanged(AgentEvent):
    """What the agent is doing changed: busy, idle, waiting, stuck, dead, ..."""

    KIND: ClassVar[str] = "agent.state"
    state: str
    previous: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentDead(AgentEvent):
    """An agent that should be running is not: its session or its program ended."""

    KIND: ClassVar[str] = "agent.dead"
    reason: str
    last_lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStuck(AgentEvent):
    """An agent is busy with no new output, or no tool call, for longer than its profile
    allows."""

    KIND: ClassVar[str] = "agent.stuck"
    reason: str
    last_lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentNeedsHuman(AgentEvent):
    """The agent asked for human help in its own words (not a permission dialog)."""

    KIND: ClassVar[str] = "agent.needs_human"
    question: str
    last_lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentWaitingTooLong(AgentEvent):
    """An agent has waited for a person (or been stuck) past its profile's warning or
    critical threshold."""

    KIND: ClassVar[str] = "agent.waiting_too_long"
    level: str  # "warning" or "critical"
    minutes: int
    state: str
    reason: str
    last_lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentPaused(AgentEvent):
    """A usage limit: no prompts until ``until``."""

    KIND: ClassVar[str] = "agent.paused"
    until: float
    reason: str
    guessed: bool  # the screen named no reset time we could read
    will_continue: bool  # "continue" is typed at the reset


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentResumed(AgentEvent):
    """A paused agent takes prompts again (its usage limit was reset)."""

    KIND: ClassVar[str] = "agent.resumed"


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptDelivered(AgentEvent):
    """A queued prompt was typed into the agent's pane."""

    KIND: ClassVar[str] = "prompt.delivered"
    prompt_id: int
    source: str
    chars: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptFailed(AgentEvent):
    """A prompt that will not be typed: it timed out, or the pane could not take it."""

    KIND: ClassVar[str] = "prompt.failed"
    prompt_id: int
    source: str
    reason: str
    head: str  # the prompt's first line, shortened


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectActivated(DomainEvent):
    """A project was switched on (``/activate``): its agents may be spawned."""

    KIND: ClassVar[str] = "project.activated"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectDeactivated(DomainEvent):
    """A project was switched off (``/deactivate``)."""

    KIND: ClassVar[str] = "project.deactivated"


@dataclass(frozen=True, slots=True, kw_only=True)
class GateOpened(DomainEvent):
    """A gate waits for a person's decision (a permission dialog, a milestone)."""

    KIND: ClassVar[str] = "gate.opened"
    gate_id: int
    gate_kind: str
    title: str
    detail: str = ""
    where: str = ""  # e.g. "worktree /srv/.../builder-42, branch farmbot/builder-42"


@dataclass(frozen=True, slots=True, kw_only=True)
class GateDecided(DomainEvent):
    """``gate.approved`` or ``gate.rejected``."""

    gate_id: int
    approved: bool
    by: str
    reason: str = ""
    done: str = ""  # what carrying out the decision did
    scope: str = ""  # "session": approved for the rest of the agent's session

    @property
    def kind(self) -> str:
        return "gate.approved" if self.approved else "gate.rejected"


@dataclass(frozen=True, slots=True, kw_only=True)
class GateStale(DomainEvent):
    """A pending gate no longer asks anything (what it asked about changed)."""

    KIND: ClassVar[str] = "gate.stale"
    gate_id: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QaFinished(DomainEvent):
    """``qa.passed`` or ``qa.failed``."""

    run_id: int
    command: str
    exit_code: int | None
    timed_out: bool
    trigger: str
    output_tail: str
    passed: bool

    @property
    def kind(self) -> str:
        return "qa.passed" if self.passed else "qa.failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeDown(DomainEvent):
    """A node of the farm stopped heartbeating (the leader reports it, once)."""

    KIND: ClassVar[str] = "node.down"
    node: str
    quiet: float  # seconds since its last heartbeat
    agents: tuple[str, ...]  # its agents that were running


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeUp(DomainEvent):
    """A node reported down is heard from again."""

    KIND: ClassVar[str] = "node.up"
    node: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HookReceived(DomainEvent):
    """One hook event from an agent's CLI (``hook.<name>``); stores the payload as is."""

    name: str
    payload: dict[str, Any]

    @property
    def kind(self) -> str:
        return f"hook.{self.name}"

    def data(self) -> dict[str, Any]:
        return self.payload


# -- the daemon -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigReloaded(DomainEvent):
    """A reloaded configuration is in force (SIGHUP, ``farmbot reload``)."""

    KIND: ClassVar[str] = "config.reloaded"
    source: str  # the file it was read from
    changed: tuple[str, ...]  # the settings that changed ("users", "alerts.routes", ...)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigRefused(DomainEvent):
    """A reload was refused: the configuration in force before stays."""

    KIND: ClassVar[str] = "config.refused"
    source: str
    reason: str  # the config error, or what needs a restart
    restart: tuple[str, ...] = ()  # settings that changed but only apply at a restart


# -- the autopilot ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskAdded(DomainEvent):
    """A task was queued for the autopilot."""

    KIND: ClassVar[str] = "task.added"
    task_id: int
    title: str
    by: str
    priority: str
    depends_on: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskMoved(DomainEvent):
    """A task changed state (every transition; its history holds the same)."""

    KIND: ClassVar[str] = "task.state"
    task_id: int
    state: str
    previous: str
    by: str
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRetried(DomainEvent):
    """A task's agent died or its attempt timed out; a fresh builder takes it."""

    KIND: ClassVar[str] = "task.retried"
    task_id: int
    title: str
    reason: str
    attempt: int
    max_attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFailed(DomainEvent):
    """A task ran out of attempts; a person retries or cancels it."""

    KIND: ClassVar[str] = "task.failed"
    task_id: int
    title: str
    reason: str
    attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskLanded(DomainEvent):
    """A task's work landed on its base branch."""

    KIND: ClassVar[str] = "task.landed"
    task_id: int
    title: str
    commit: str
    commits: tuple[str, ...]
    how: str
    by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskNotLanded(DomainEvent):
    """A task's work did not land: back to a builder, or (``refused``) to a human."""

    KIND: ClassVar[str] = "task.not_landed"
    task_id: int
    title: str
    detail: str
    to: str  # who has it now: an agent id, "a fresh builder", "review"
    refused: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(DomainEvent):
    """A run of a project's open tasks started, ordered into waves."""

    KIND: ClassVar[str] = "run.started"
    run_id: int
    by: str
    mode: str
    tasks: int
    waves: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStateChanged(DomainEvent):
    """A run was paused, resumed or taken up again."""

    KIND: ClassVar[str] = "run.state"
    run_id: int
    state: str
    previous: str
    by: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunBlocked(DomainEvent):
    """A task of a run cannot start: a task it depends on failed or was cancelled."""

    KIND: ClassVar[str] = "run.blocked"
    run_id: int
    task_id: int
    title: str
    blocked_by: tuple[int, ...]
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WaveDone(DomainEvent):
    """Every task of a wave of a run is settled: landed, failed or blocked."""

    KIND: ClassVar[str] = "wave.done"
    run_id: int
    wave: int
    landed: tuple[int, ...]
    failed: tuple[int, ...] = ()
    blocked: tuple[int, ...] = ()
    by: str = "autopilot"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished(DomainEvent):
    """A run ended: nothing more can happen in it."""

    KIND: ClassVar[str] = "run.finished"
    run_id: int
    state: str  # "done" or "blocked"
    done: int
    failed: int
    blocked: int
    cancelled: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Deployed(DomainEvent):
    """``deploy.passed`` or ``deploy.failed``: a wave's deploy_staging or deploy_prod."""

    run_id: int
    wave: int
    target: str  # "staging" or "prod"
    command: str
    exit_code: int | None
    output_tail: str
    passed: bool

    @property
    def kind(self) -> str:
        return "deploy.passed" if self.passed else "deploy.failed"


# -- the interfaces -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class InterfaceDeaf(DomainEvent):
    """A chat interface has not been hearing for longer than ``[alerts] deaf_after``."""

    KIND: ClassVar[str] = "interface.deaf"
    interface: str
    detail: str  # what it says about its inbound path
    silent_for: float  # seconds since it stopped hearing
    last_heard: float | None  # epoch seconds of the last thing it received


@dataclass(frozen=True, slots=True, kw_only=True)
class InterfaceHears(DomainEvent):
    """A chat interface that was deaf hears again."""

    KIND: ClassVar[str] = "interface.hears"
    interface: str
    detail: str
    deaf_for: float  # seconds it did not hear


@dataclass(frozen=True, slots=True, kw_only=True)
class ModeChanged(DomainEvent):
    """A project's autopilot mode was set by a person."""

    KIND: ClassVar[str] = "autopilot.mode"
    mode: str
    previous: str
    by: str
