"""Domain records shared by storage, the supervisor and the bot.

Plain frozen dataclasses: storage returns them, the supervisor decides with them, the
status page and the JSON API render them. Times are UTC seconds since the epoch.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

from farmbot.messages import Buttons, Severity


class AgentKind(enum.StrEnum):
    ARCHITECT = "architect"
    BUILDER = "builder"
    SHELL = "shell"


class DesiredState(enum.StrEnum):
    """What a human asked for. A stop on purpose is never mistaken for a crash."""

    RUNNING = "running"
    STOPPED = "stopped"


class AgentState(enum.StrEnum):
    """What farmbot observes an agent doing."""

    STARTING = "starting"
    BUSY = "busy"
    IDLE = "idle"
    WAITING = "waiting"  # needs a human: a permission question or a request for help
    STUCK = "stuck"
    PAUSED = "paused"  # usage limit, until it resets
    DEAD = "dead"  # vanished or exited without being asked to
    STOPPED = "stopped"  # stopped on purpose

    @property
    def is_live(self) -> bool:
        return self not in (AgentState.DEAD, AgentState.STOPPED)


class GateStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    STALE = "stale"  # the question it answers is no longer asked


class PromptStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # handed to an interface; a crash here means it is sent again
    DELIVERED = "delivered"
    DEAD = "dead"  # gave up; shown on the status page with a retry button


class Role(enum.IntEnum):
    """A person's role; higher includes lower."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @classmethod
    def parse(cls, text: str) -> Role:
        return cls[text.upper()]

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Project:
    """A project as farmbot records it: where it is, and whether agents may spawn in it."""

    name: str
    path: str
    active: bool = True
    verify: str | None = None
    is_git: bool = False


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent's row: who it is, where it works, what it should be and what it is doing."""

    id: str
    project: str
    kind: AgentKind
    profile: str
    number: int | None
    workdir: str
    branch: str | None
    desired: DesiredState
    state: AgentState
    state_reason: str
    created_at: float
    updated_at: float
    state_since: float
    paused_until: float | None = None  # usage limit: no prompts before then
    node: str = ""  # the node that runs it (its tmux); "" in a row from before nodes

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class NodeHealth(enum.StrEnum):
    """Whether a node is heard from: up, down (quiet too long), or stopped on purpose."""

    UP = "up"
    DOWN = "down"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Node:
    """One machine running ``farmbot serve`` on a shared database, as its row says."""

    name: str
    url: str
    version: str
    projects: tuple[str, ...]  # the projects it holds a checkout of
    leading: bool  # it said so in its last heartbeat
    started_at: float
    heartbeat_at: float  # the database's clock
    stopped_at: float | None  # it stopped cleanly (SIGTERM) at this time
    down_since: float | None  # the leader reported it quiet at this time
    quiet: float  # seconds since its last heartbeat, by the database's clock

    def health(self, down_after: float) -> NodeHealth:
        if self.stopped_at is not None:
            return NodeHealth.STOPPED
        return NodeHealth.DOWN if self.quiet > down_after else NodeHealth.UP

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "projects": list(self.projects)}


@dataclass(frozen=True, slots=True)
class NodeState:
    """A node as the status page and ``/status`` show it: health, load, leadership."""

    node: Node
    health: NodeHealth
    agents: int  # live agents it runs (its load)
    leader: bool  # it leads now (it says so and is up)
    here: bool  # the node answering

    @property
    def name(self) -> str:
        return self.node.name

    def to_json(self) -> dict[str, Any]:
        return {
            **self.node.to_json(),
            "health": self.health.value,
            "agents": self.agents,
            "leader": self.leader,
            "here": self.here,
        }


@dataclass(frozen=True, slots=True)
class RoutedCommand:
    """A command taken on one node (``origin``) that another (``target``) runs."""

    id: int
    origin: str
    target: str
    platform: str
    user_id: str
    chat: str
    display_name: str
    text: str
    button: bool
    source: str | None  # the inbound update it came from, if any
    status: str  # pending, claimed, done, cancelled
    attempts: int  # claims so far; more than one means a claim's lease expired
    claimed_by: str | None
    reply: dict[str, Any] | None  # messages.Reply.to_json() once done
    created_at: float
    deadline: float  # the origin waits until then, by its own clock
    kind: str = "command"  # "command": a person's text; "step": an autopilot step (JSON)
    step_key: str | None = None  # the autopilot's record of the step it carries out
    generation: int = 0  # of a step run again after it was cut short


@dataclass(frozen=True, slots=True)
class InboundUpdate:
    """An update taken from a chat platform, with where its handling stands."""

    update_id: int
    body: dict[str, Any]
    status: str  # new, handling, done
    handler: str | None  # who is handling it (node:incarnation)


@dataclass(frozen=True, slots=True)
class Question:
    """A button's question a chat asked one person (Telegram's "Why? Reply to this
    message"): the reply to ``message`` completes ``command``, and only ``user_id`` may
    give it."""

    platform: str
    chat: str
    message: str  # the platform's id of the message that asks
    user_id: str  # whom it was put to: who pressed the button
    command: str  # what the answer follows: "/reject 7"
    asked_at: float


@dataclass(frozen=True, slots=True)
class Prompt:
    """A prompt queued for an agent, and what became of it."""

    id: int
    agent_id: str
    text: str
    source: str  # who queued it: "spawn", "web:alice", "telegram:1001", ...
    status: PromptStatus
    wait_ready: bool  # deliver only once the agent shows it is ready for input
    created_at: float
    delivered_at: float | None = None
    error: str = ""
    not_before: float | None = None  # e.g. "continue" once a usage limit resets
    typing_at: float | None = None  # typing began; pending with it set = cut short


@dataclass(frozen=True, slots=True)
class Gate:
    """A question that waits for a person's decision, and the decision."""

    id: int
    kind: str  # "permission", "autopilot", ...
    agent_id: str | None
    project: str | None
    title: str
    detail: str
    status: GateStatus
    created_at: float
    decided_by: str | None = None
    decided_at: float | None = None
    reason: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    scope: str = ""  # "session": approved for the rest of the agent's session

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Decision:
    """A person's answer to a gate."""

    approved: bool
    session: bool = False  # approve this and its like for the rest of the agent's session
    reason: str = ""  # why not (or a note), passed on to the agent where it can take it

    @property
    def scope(self) -> str:
        return "session" if self.approved and self.session else ""

    @property
    def verb(self) -> str:
        if not self.approved:
            return "rejected"
        return "approved for the session" if self.session else "approved"


@dataclass(frozen=True, slots=True)
class Event:
    """A stored event (the events table), as the status page and the API show it."""

    id: int
    ts: float
    kind: str  # "agent.spawned", "agent.dead", "prompt.delivered", "hook.PreToolUse", ...
    agent_id: str | None
    project: str | None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event not yet stored."""

    kind: str
    agent_id: str | None = None
    project: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    ts: float | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One command someone sent, allowed or refused (the audit table)."""

    id: int
    ts: float
    platform: str
    user_id: str
    user_name: str | None  # configured person, None for strangers
    chat: str
    command: str
    outcome: str  # "ok", "denied", "error", "usage", "not_found", "conflict"
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class QaRun:
    """One run of a project's verify command in an agent's worktree."""

    id: int
    agent_id: str
    project: str
    trigger: str  # what started it: "idle", "manual:alice", ...
    command: str
    started_at: float
    finished_at: float | None = None
    exit_code: int | None = None  # None while running, or when it was killed
    passed: bool | None = None  # None while running
    timed_out: bool = False
    output_tail: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


Destination = tuple[str, str]  # where an alert goes: (interface, channel), ("telegram", "-100123")


@dataclass(frozen=True, slots=True)
class AlertDraft:
    """An alert not yet stored, and where it goes."""

    kind: str  # the event kind it is about
    severity: Severity
    agent_id: str | None
    project: str | None
    title: str
    text: str
    pre: str | None = None  # the last lines of output
    buttons: Buttons = ()
    dedupe_key: str = ""  # repeats with the same key fold into one message; "" never folds
    routes: tuple[Destination, ...] = ()


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert an event raised: what it says, its buttons, and the key its repeats fold into."""

    id: int
    event_id: int
    kind: str
    severity: Severity
    agent_id: str | None
    project: str | None
    title: str
    text: str
    pre: str | None
    buttons: Buttons
    dedupe_key: str
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "severity": str(self.severity),
            "buttons": [[asdict(b) for b in row] for row in self.buttons],
        }


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One alert on its way to one (interface, channel)."""

    id: int
    alert: Alert  # the newest alert folded into this message
    interface: str
    channel: str
    status: OutboxStatus
    attempts: int
    next_attempt_at: float  # earliest retry after a failure
    not_before: float | None  # a folded repeat waits for its dedupe window
    last_error: str
    count: int  # how many alerts this one message stands for
    created_at: float
    last_at: float  # when the newest repeat was folded in
    delivered_at: float | None
    message_ref: str | None = None  # the platform's handle of the message sent, if any
    edited_at: float | None = None  # when the delivered message was edited (a gate decided)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "alert": self.alert.to_json()}


# -- the autopilot ------------------------------------------------------------------------


class AutopilotMode(enum.StrEnum):
    """How far a project's autopilot goes on its own (seed: the dashboard's modes)."""

    OFF = "off"  # no runs, no automatic assignment
    OBSERVE = "observe"  # every verified task waits at a milestone gate before it lands
    FIX_FORWARD = "fix_forward"  # verified tasks land; a gate ends each wave
    AUTO_STAGING = "auto_staging"  # ... and deploy_staging runs after each wave
    AUTO_PROD = "auto_prod"  # ... and the wave's gate, approved, runs deploy_prod

    @property
    def gates_waves(self) -> bool:
        """Whether a gate ends each wave (and holds the next wave back until approved)."""
        return self in (
            AutopilotMode.FIX_FORWARD,
            AutopilotMode.AUTO_STAGING,
            AutopilotMode.AUTO_PROD,
        )

    @property
    def gates_tasks(self) -> bool:
        """Whether each verified task waits for a human before it lands."""
        return not self.gates_waves


class Priority(enum.IntEnum):
    """A task's priority; lower sorts first."""

    HIGH = 0
    NORMAL = 1
    LOW = 2

    @classmethod
    def parse(cls, text: str) -> Priority:
        return cls[text.upper()]

    def __str__(self) -> str:
        return self.name.lower()


class TaskState(enum.StrEnum):
    PENDING = "pending"  # waits for a run, or for the tasks it depends on
    READY = "ready"  # everything it depends on is done: the assigner may hand it out
    WORKING = "working"  # a builder has it
    VERIFYING = "verifying"  # the project's verify command runs on its branch
    REVIEW = "review"  # verified; waits at a milestone gate
    LANDING = "landing"  # approved (or landing by itself); being merged into the base
    DONE = "done"  # landed
    FAILED = "failed"  # out of attempts; /task retry starts it over
    CANCELLED = "cancelled"

    @property
    def is_closed(self) -> bool:
        return self in (TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED)

    @property
    def holds_agent(self) -> bool:
        """Whether the task's agent is busy with it (and gets no other task)."""
        return self in (TaskState.WORKING, TaskState.VERIFYING)


@dataclass(frozen=True, slots=True)
class Task:
    """One unit of work for a builder: its place in a run, its attempts, what landed."""

    id: int
    project: str
    title: str
    body: str
    priority: Priority
    state: TaskState
    created_by: str
    created_at: float
    updated_at: float
    depends_on: tuple[int, ...] = ()
    attempts: int = 0  # attempts started (the current one included)
    run_id: int | None = None
    wave: int | None = None
    agent_id: str | None = None  # who works (or last worked) on it
    branch: str | None = None
    base_branch: str | None = None
    base_commit: str | None = None  # the base's tip its branch started from
    started_at: float | None = None  # when the current attempt started
    deadline: float | None = None  # task_timeout after that (pushed out by usage limits)
    prompt_id: int | None = None  # the latest prompt queued for it
    feedback: str = ""  # what its next task prompt adds (QA output, a reviewer's reason)
    note: str = ""  # what the agent said when it reported done
    qa_run_id: int | None = None
    gate_id: int | None = None  # the milestone gate it waits at (review)
    land_base: str | None = None  # the base's tip when it landed
    landed_commit: str | None = None  # the base's tip right after it landed
    landed_commits: tuple[str, ...] = ()
    landed_at: float | None = None
    reason: str = ""  # why it is in its state, for people

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "priority": str(self.priority),
            "depends_on": list(self.depends_on),
            "landed_commits": list(self.landed_commits),
        }


@dataclass(frozen=True, slots=True)
class TaskChange:
    """One entry of a task's history: the state it moved to, who or what moved it, why."""

    id: int
    task_id: int
    ts: float
    state: TaskState
    previous: TaskState | None
    by: str  # a person, "autopilot", or an agent id
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RunState(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"  # no new assignments; work in progress carries on
    DONE = "done"  # every task landed or was cancelled
    BLOCKED = "blocked"  # settled with tasks failed (and those waiting on them)

    @property
    def is_open(self) -> bool:
        return self in (RunState.RUNNING, RunState.PAUSED)


class WaveState(enum.StrEnum):
    OPEN = "open"  # its tasks are being worked on
    STAGING = "staging"  # deploy_staging runs (recorded before it starts)
    GATE = "gate"  # waits at its milestone gate
    PROD = "prod"  # approved; deploy_prod runs (recorded before it starts)
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Wave:
    """One wave of a run: where it stands (open, deploying, at its gate, closed)."""

    run_id: int
    number: int
    state: WaveState
    gate_id: int | None = None
    staging: str = ""  # how deploy_staging ended, for people
    prod: str = ""
    closed_at: float | None = None
    deploys: int = 0  # deploys started (recorded before each starts)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Run:
    """An ordering of a project's open tasks into waves, carried out by the assigner."""

    id: int
    project: str
    state: RunState
    started_by: str
    created_at: float
    updated_at: float
    finished_at: float | None = None
    reason: str = ""
    waves: tuple[Wave, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "waves": [w.to_json() for w in self.waves]}


@dataclass(frozen=True, slots=True)
class ModeSetting:
    """A project's autopilot mode as set at runtime (it overrides the configured one)."""

    project: str
    mode: AutopilotMode
    set_by: str
    set_at: float
