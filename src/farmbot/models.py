"""Domain records shared by storage, the supervisor and the bot.

Plain frozen dataclasses: storage returns them, the supervisor decides with them, the
status page and the JSON API render them. Times are UTC seconds since the epoch.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


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
    name: str
    path: str
    active: bool = True
    verify: str | None = None
    is_git: bool = False


@dataclass(frozen=True, slots=True)
class Agent:
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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Prompt:
    id: int
    agent_id: str
    text: str
    source: str  # who queued it: "spawn", "web:alice", "telegram:1001", ...
    status: PromptStatus
    wait_ready: bool  # deliver only once the agent shows it is ready for input
    created_at: float
    delivered_at: float | None = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class Gate:
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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Event:
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
