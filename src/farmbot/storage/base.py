"""The storage interface: every SQL statement in farmbot lives behind this Protocol.

``SqliteStore`` (storage/sqlite.py) is the embedded implementation. A PostgreSQL store
for several machines will implement the same Protocol, so nothing above storage/ may
depend on SQLite.

All times are UTC seconds since the epoch and are passed in by the caller (``now``), so
the clock stays injectable. Methods raise ``StorageError`` on database failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from farmbot.models import (
    Agent,
    AgentState,
    AuditEntry,
    DesiredState,
    Event,
    Gate,
    GateStatus,
    NewEvent,
    Project,
    Prompt,
    PromptStatus,
)


class Store(Protocol):
    """farmbot's persistent state."""

    async def ping(self) -> None:
        """Answer a trivial query; raise ``StorageError`` when the database does not."""

    async def schema_version(self) -> int:
        """The schema version the database is at."""

    # projects -------------------------------------------------------------------------
    async def upsert_project(self, project: Project, now: float) -> None:
        """Insert or update a project by name. ``active`` of an existing row is kept."""

    async def get_project(self, name: str) -> Project | None: ...

    async def list_projects(self) -> list[Project]:
        """All projects, ordered by name."""

    async def set_project_active(self, name: str, active: bool, now: float) -> None: ...

    # agents ---------------------------------------------------------------------------
    async def save_agent(self, agent: Agent) -> None:
        """Insert or replace the whole agent row."""

    async def get_agent(self, agent_id: str) -> Agent | None: ...

    async def list_agents(self, project: str | None = None) -> list[Agent]:
        """Agents (optionally of one project), ordered by created_at then id."""

    async def set_agent_state(
        self, agent_id: str, state: AgentState, reason: str, now: float
    ) -> Agent | None:
        """Record an observed state. ``state_since`` changes only when the state does.

        Returns the updated agent, or None when no such agent exists.
        """

    async def set_agent_desired(
        self, agent_id: str, desired: DesiredState, now: float
    ) -> Agent | None: ...

    # prompts --------------------------------------------------------------------------
    async def add_prompt(
        self, agent_id: str, text: str, source: str, wait_ready: bool, now: float
    ) -> Prompt: ...

    async def pending_prompts(self, agent_id: str | None = None) -> list[Prompt]:
        """Pending prompts (of one agent, or all), oldest first."""

    async def mark_prompt(
        self, prompt_id: int, status: PromptStatus, now: float, error: str = ""
    ) -> None:
        """Move a prompt out of pending; sets delivered_at when status is DELIVERED."""

    async def cancel_prompts(self, agent_id: str, now: float) -> int:
        """Cancel an agent's pending prompts; returns how many."""

    # events ---------------------------------------------------------------------------
    async def add_events(self, events: Sequence[NewEvent], now: float) -> list[int]:
        """Store events in one transaction (``ts`` defaults to ``now``); return their ids."""

    async def recent_events(
        self, limit: int = 50, agent_id: str | None = None, kind_prefix: str | None = None
    ) -> list[Event]:
        """The newest events first."""

    # gates ----------------------------------------------------------------------------
    async def add_gate(
        self,
        kind: str,
        agent_id: str | None,
        project: str | None,
        title: str,
        detail: str,
        payload: dict[str, Any],
        now: float,
    ) -> Gate: ...

    async def get_gate(self, gate_id: int) -> Gate | None: ...

    async def list_gates(self, status: GateStatus | None = GateStatus.PENDING) -> list[Gate]:
        """Gates with that status (all when None), oldest first."""

    async def decide_gate(
        self, gate_id: int, status: GateStatus, by: str | None, reason: str, now: float
    ) -> Gate | None:
        """Move a *pending* gate to ``status`` atomically (compare-and-set).

        Returns the updated gate, or None when the gate was not pending (already decided,
        stale, or missing) -- so two people pressing Approve at once decide it once.
        """

    # audit ----------------------------------------------------------------------------
    async def add_audit(
        self,
        platform: str,
        user_id: str,
        user_name: str | None,
        chat: str,
        command: str,
        outcome: str,
        detail: str,
        now: float,
    ) -> None: ...

    async def recent_audit(self, limit: int = 50) -> list[AuditEntry]:
        """The newest entries first."""

    # button actions -------------------------------------------------------------------
    async def put_action(self, command: str, now: float) -> int:
        """Store a button's command; the same command always gets the same id."""

    async def get_action(self, action_id: int) -> str | None: ...
