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
    Alert,
    AlertDraft,
    AuditEntry,
    DesiredState,
    Event,
    Gate,
    GateStatus,
    NewEvent,
    OutboxItem,
    Project,
    Prompt,
    PromptStatus,
    QaRun,
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

    async def set_agent_paused(
        self, agent_id: str, until: float | None, now: float
    ) -> Agent | None:
        """Record a usage-limit pause until ``until`` (None lifts it).

        Returns the updated agent, or None when no such agent exists.
        """

    # prompts --------------------------------------------------------------------------
    async def add_prompt(
        self,
        agent_id: str,
        text: str,
        source: str,
        wait_ready: bool,
        now: float,
        *,
        not_before: float | None = None,
    ) -> Prompt:
        """Queue a prompt; ``not_before`` keeps it back until then (the supervisor decides)."""

    async def pending_prompts(self, agent_id: str | None = None) -> list[Prompt]:
        """Pending prompts (of one agent, or all), oldest first, ``not_before`` or not."""

    async def mark_prompt(
        self, prompt_id: int, status: PromptStatus, now: float, error: str = ""
    ) -> None:
        """Move a prompt out of pending; sets delivered_at when status is DELIVERED."""

    async def cancel_prompts(self, agent_id: str) -> int:
        """Cancel an agent's pending prompts; returns how many."""

    # events ---------------------------------------------------------------------------
    async def add_events(self, events: Sequence[NewEvent], now: float) -> list[int]:
        """Store events in one transaction (``ts`` defaults to ``now``); return their ids."""

    async def recent_events(
        self, limit: int = 50, agent_id: str | None = None, kind_prefix: str | None = None
    ) -> list[Event]:
        """The newest events first."""

    async def add_event_with_alerts(
        self,
        event: NewEvent,
        alerts: Sequence[AlertDraft],
        now: float,
        *,
        dedupe_window: float,
    ) -> tuple[Event, list[Alert]]:
        """Store an event, its alerts and one outbox item per route in ONE transaction.

        Nothing is sent that was not stored first, and either all of it is stored or none.
        Repeats fold: when a channel's newest item with the same ``dedupe_key`` last took
        an alert less than ``dedupe_window`` seconds ago, a pending item adds one to its
        ``count`` (and shows the newest alert); an item already sent gets one successor
        that waits a window after it (``not_before``), into which further repeats fold.
        A repeating alert is thus sent at most once per window per channel.
        """

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

    # chat threads ---------------------------------------------------------------------
    async def get_thread(self, interface: str, channel: str, key: str) -> str | None:
        """The thread an interface keeps ``key``'s messages in (e.g. an agent's alerts)."""

    async def set_thread(
        self, interface: str, channel: str, key: str, thread_ref: str, now: float
    ) -> None:
        """Remember the thread for ``key`` in a channel, replacing an earlier one."""

    # QA runs --------------------------------------------------------------------------
    async def start_qa_run(
        self, agent_id: str, project: str, trigger: str, command: str, now: float
    ) -> QaRun:
        """Record a QA run that has just started."""

    async def finish_qa_run(
        self,
        run_id: int,
        exit_code: int | None,
        passed: bool,
        timed_out: bool,
        output_tail: str,
        now: float,
    ) -> QaRun:
        """Record how a QA run ended; raises ``StorageError`` for an unknown run."""

    async def recent_qa_runs(self, limit: int = 20, agent_id: str | None = None) -> list[QaRun]:
        """QA runs (of one agent, or all), newest first."""

    async def last_qa_run(self, agent_id: str) -> QaRun | None:
        """The newest QA run of an agent, or None."""

    # the outbox -----------------------------------------------------------------------
    # Each (interface, channel) is a queue in outbox-id order. An item is delivered
    # exactly once: the notifier claims it (mark_sending), sends it, then records it
    # (mark_delivered). Only a crash between send and mark_delivered leaves it in
    # ``sending``; requeue_sending at the next start sends it again (at least once
    # in that window, exactly once everywhere else).

    async def due_outbox(self, now: float, limit: int = 100) -> list[OutboxItem]:
        """The head of each channel's queue, if it is due, oldest first.

        The head is the oldest pending or sending item whose ``not_before`` has passed;
        it is due when pending with ``next_attempt_at <= now``. A head waiting to be
        retried holds its channel back, so each channel keeps its order.
        """

    async def get_outbox(self, outbox_id: int) -> OutboxItem | None:
        """One outbox item with its alert, or None."""

    async def mark_sending(self, outbox_id: int) -> OutboxItem | None:
        """Claim a pending item for delivery; None when it is no longer pending.

        Returns the item as claimed, with every repeat folded into it until then; a
        claimed item takes no more repeats, so this is the message to send.
        """

    async def mark_delivered(self, outbox_id: int, now: float) -> bool:
        """Record the delivery of an item being sent (counts the attempt)."""

    async def mark_retry(self, outbox_id: int, error: str, next_attempt_at: float) -> bool:
        """Count a failed attempt; the item is pending again from ``next_attempt_at``."""

    async def mark_dead(self, outbox_id: int, error: str) -> bool:
        """Give up on a pending or sending item (a dead letter); its channel moves on."""

    async def retry_dead(self, outbox_id: int, now: float) -> OutboxItem | None:
        """Put a dead letter back in its queue with fresh attempts; None if not dead."""

    async def requeue_sending(self, now: float) -> int:
        """At start: put items a crash left in ``sending`` back to pending; how many."""

    async def outbox_summary(self) -> dict[str, int]:
        """How many items are pending, sending, delivered and dead (all four keys)."""

    async def dead_letters(self, limit: int = 50) -> list[OutboxItem]:
        """Dead letters, newest first."""

    async def recent_alerts(self, limit: int = 50) -> list[Alert]:
        """Alerts, newest first."""
