"""The embedded store: one aiosqlite connection to a SQLite file in WAL mode.

One connection means one writer. An ``asyncio.Lock`` serializes the store's operations
on it, so a transaction opened by one coroutine never swallows another's statements.
The connection runs in autocommit mode; single statements commit on their own and
``transaction()`` wraps several in ``BEGIN IMMEDIATE`` ... ``COMMIT``.

Every ``sqlite3``/``aiosqlite`` error is translated here into ``StorageError``.
Requires SQLite 3.35 or newer (``RETURNING``).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, fields
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

import aiosqlite

from farmbot.errors import StorageError
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
from farmbot.storage import outbox, rows, threads
from farmbot.storage.connection import Transaction, encode_json
from farmbot.storage.migrations import Migration, apply_migrations, load_migrations

__all__ = ["SqliteStore"]

P = ParamSpec("P")
T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000

# The agents table has exactly the columns of the Agent record.
_AGENT_COLUMNS = [f.name for f in fields(Agent)]
_SAVE_AGENT = (
    f"INSERT INTO agents ({', '.join(_AGENT_COLUMNS)})"
    f" VALUES ({', '.join(':' + c for c in _AGENT_COLUMNS)}) ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _AGENT_COLUMNS if c != "id")
)


class SqliteStore:
    """farmbot's state in a SQLite file; implements ``farmbot.storage.base.Store``.

    Use ``async with SqliteStore(path) as store:`` (or ``await store.open()`` and
    ``await store.close()``). Opening creates the parent directory, applies the
    migrations (``None`` means the packaged ones) and switches the file to WAL.
    """

    def __init__(
        self, path: str | os.PathLike[str], migrations: Sequence[Migration] | None = None
    ) -> None:
        self.path = Path(path)
        self._migrations = migrations
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._tx_owner: asyncio.Task[Any] | None = None

    def __repr__(self) -> str:
        state = "open" if self._conn is not None else "closed"
        return f"<SqliteStore {str(self.path)!r} {state}>"

    # lifecycle ------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Migrate the database and connect to it."""
        if self._conn is not None:
            raise RuntimeError(f"{self!r} is already open")
        await asyncio.to_thread(self._migrate)
        conn = aiosqlite.connect(self.path, isolation_level=None)
        try:
            await conn
            conn.row_factory = sqlite3.Row
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
            await conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            await conn.close()
            raise self._error(exc) from exc
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        """Close the connection once the operation in progress ends (no-op when closed)."""
        async with self._lock:  # let the operation in progress finish
            conn, self._conn = self._conn, None
            if conn is None:
                return
            try:
                await conn.close()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def _migrate(self) -> None:
        # Runs in a worker thread (it reads package files and the disk) on a short-lived
        # connection of its own, before the store's connection exists. The version is
        # checked before anything is written, so a database from a newer farmbot is left
        # untouched.
        migrations = load_migrations() if self._migrations is None else self._migrations
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"{self.path.parent}: cannot create directory: {exc}") from exc
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
            apply_migrations(conn, migrations)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StorageError(f"{self.path}: cannot switch to WAL (journal mode {mode})")
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        finally:
            conn.close()

    def _error(self, exc: sqlite3.Error) -> StorageError:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
            return StorageError(f"{self.path}: not a SQLite database")
        return StorageError(f"{self.path}: {exc}")

    # transactions ---------------------------------------------------------------------
    @asynccontextmanager
    async def _locked(self) -> AsyncIterator[aiosqlite.Connection]:
        """Hold the store's connection exclusively; translate database errors."""
        if self._tx_owner is not None and self._tx_owner is asyncio.current_task():
            raise RuntimeError("store method called inside store.transaction(); use tx")
        async with self._lock:
            conn = self._conn
            if conn is None:
                raise StorageError(f"{self.path}: store is not open")
            try:
                yield conn
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """Run several writes atomically: ``async with store.transaction() as tx:``.

        The block holds the store's only connection, so keep it short and run SQL only
        through ``tx``; calling the store's own methods inside it raises RuntimeError.
        Leaving the block commits; an exception rolls back and propagates.
        """
        async with self._locked() as conn:
            self._tx_owner = asyncio.current_task()
            try:
                await conn.execute("BEGIN IMMEDIATE")
                yield Transaction(conn)
                await conn.execute("COMMIT")
            except BaseException:
                # Queued behind the failed statement, so it runs before anyone's next one.
                await conn.rollback()
                raise
            finally:
                self._tx_owner = None

    async def _run(
        self,
        fn: Callable[Concatenate[Transaction, P], Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run a storage/ SQL helper whose statements each commit on their own."""
        async with self._locked() as conn:
            return await fn(Transaction(conn), *args, **kwargs)

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return await self._run(Transaction.fetchall, sql, params)

    async def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        return await self._run(Transaction.fetchone, sql, params)

    async def _execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> int:
        return await self._run(Transaction.execute, sql, params)

    # health ---------------------------------------------------------------------------
    async def ping(self) -> None:
        """Answer a trivial query; raise ``StorageError`` when the database does not."""
        await self._fetchone("SELECT 1")

    async def schema_version(self) -> int:
        """The schema version the database is at."""
        row = await self._fetchone("PRAGMA user_version")
        assert row is not None
        return int(row[0])

    # projects -------------------------------------------------------------------------
    async def upsert_project(self, project: Project, now: float) -> None:
        """Insert or update a project by name. ``active`` of an existing row is kept."""
        await self._execute(
            "INSERT INTO projects (name, path, active, verify, is_git, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET path = excluded.path,"
            " verify = excluded.verify, is_git = excluded.is_git,"
            " updated_at = excluded.updated_at",
            (project.name, project.path, project.active, project.verify, project.is_git, now),
        )

    async def get_project(self, name: str) -> Project | None:
        """The project of that name, or None."""
        row = await self._fetchone("SELECT * FROM projects WHERE name = ?", (name,))
        return None if row is None else rows.project(row)

    async def list_projects(self) -> list[Project]:
        """All projects, ordered by name."""
        return [
            rows.project(r) for r in await self._fetchall("SELECT * FROM projects ORDER BY name")
        ]

    async def set_project_active(self, name: str, active: bool, now: float) -> None:
        """Mark a project active or inactive."""
        await self._execute(
            "UPDATE projects SET active = ?, updated_at = ? WHERE name = ?", (active, now, name)
        )

    # agents ---------------------------------------------------------------------------
    async def save_agent(self, agent: Agent) -> None:
        """Insert or replace the whole agent row."""
        # An upsert, not INSERT OR REPLACE: REPLACE deletes the row its prompts point at.
        await self._execute(_SAVE_AGENT, asdict(agent))

    async def get_agent(self, agent_id: str) -> Agent | None:
        """The agent with that id, or None."""
        row = await self._fetchone("SELECT * FROM agents WHERE id = ?", (agent_id,))
        return None if row is None else rows.agent(row)

    async def list_agents(self, project: str | None = None) -> list[Agent]:
        """Agents (optionally of one project), ordered by created_at then id."""
        found = await self._fetchall(
            "SELECT * FROM agents WHERE ?1 IS NULL OR project = ?1 ORDER BY created_at, id",
            (project,),
        )
        return [rows.agent(r) for r in found]

    async def set_agent_state(
        self, agent_id: str, state: AgentState, reason: str, now: float
    ) -> Agent | None:
        """Record an observed state. ``state_since`` changes only when the state does.

        Returns the updated agent, or None when no such agent exists.
        """
        # The right-hand sides of SET see the row as it was before the update.
        row = await self._fetchone(
            "UPDATE agents SET state = ?, state_reason = ?, updated_at = ?,"
            " state_since = CASE WHEN state = ? THEN state_since ELSE ? END"
            " WHERE id = ? RETURNING *",
            (state.value, reason, now, state.value, now, agent_id),
        )
        return None if row is None else rows.agent(row)

    async def set_agent_desired(
        self, agent_id: str, desired: DesiredState, now: float
    ) -> Agent | None:
        """Record what a human asked for; return the updated agent, or None."""
        row = await self._fetchone(
            "UPDATE agents SET desired = ?, updated_at = ? WHERE id = ? RETURNING *",
            (desired.value, now, agent_id),
        )
        return None if row is None else rows.agent(row)

    async def set_agent_paused(
        self, agent_id: str, until: float | None, now: float
    ) -> Agent | None:
        """Record a usage-limit pause (None lifts it); return the updated agent, or None."""
        row = await self._fetchone(
            "UPDATE agents SET paused_until = ?, updated_at = ? WHERE id = ? RETURNING *",
            (until, now, agent_id),
        )
        return None if row is None else rows.agent(row)

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
        """Queue a prompt for an agent (not to be delivered before ``not_before``)."""
        row = await self._fetchone(
            "INSERT INTO prompts (agent_id, text, source, status, wait_ready, created_at,"
            " not_before) VALUES (?, ?, ?, 'pending', ?, ?, ?) RETURNING *",
            (agent_id, text, source, wait_ready, now, not_before),
        )
        assert row is not None
        return rows.prompt(row)

    async def pending_prompts(self, agent_id: str | None = None) -> list[Prompt]:
        """Pending prompts (of one agent, or all), oldest first."""
        found = await self._fetchall(
            "SELECT * FROM prompts WHERE status = 'pending' AND (?1 IS NULL OR agent_id = ?1)"
            " ORDER BY id",
            (agent_id,),
        )
        return [rows.prompt(r) for r in found]

    async def mark_prompt(
        self, prompt_id: int, status: PromptStatus, now: float, error: str = ""
    ) -> None:
        """Move a prompt out of pending; sets delivered_at when status is DELIVERED.

        A prompt that is no longer pending (e.g. cancelled meanwhile) is left as it is.
        """
        if status is PromptStatus.PENDING:
            raise ValueError("mark_prompt moves a prompt out of pending")
        delivered_at = now if status is PromptStatus.DELIVERED else None
        await self._execute(
            "UPDATE prompts SET status = ?, delivered_at = ?, error = ?"
            " WHERE id = ? AND status = 'pending'",
            (status.value, delivered_at, error, prompt_id),
        )

    async def cancel_prompts(self, agent_id: str) -> int:
        """Cancel an agent's pending prompts; returns how many."""
        return await self._execute(
            "UPDATE prompts SET status = 'cancelled' WHERE agent_id = ? AND status = 'pending'",
            (agent_id,),
        )

    # events ---------------------------------------------------------------------------
    async def add_events(self, events: Sequence[NewEvent], now: float) -> list[int]:
        """Store events in one transaction (``ts`` defaults to ``now``); return their ids."""
        if not events:
            return []
        async with self.transaction() as tx:
            return await outbox.insert_events(tx, events, now)

    async def recent_events(
        self, limit: int = 50, agent_id: str | None = None, kind_prefix: str | None = None
    ) -> list[Event]:
        """The newest events first."""
        where: list[str] = []
        params: list[Any] = []
        if agent_id is not None:
            where.append("agent_id = ?")
            params.append(agent_id)
        if kind_prefix:
            where.append("substr(kind, 1, ?) = ?")
            params += [len(kind_prefix), kind_prefix]
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        found = await self._fetchall(
            f"SELECT * FROM events{clause} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [rows.event(r) for r in found]

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
    ) -> Gate:
        """Open a pending gate."""
        row = await self._fetchone(
            "INSERT INTO gates (kind, agent_id, project, title, detail, status, created_at,"
            " payload) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?) RETURNING *",
            (kind, agent_id, project, title, detail, now, encode_json(payload)),
        )
        assert row is not None
        return rows.gate(row)

    async def get_gate(self, gate_id: int) -> Gate | None:
        """The gate with that id, or None."""
        row = await self._fetchone("SELECT * FROM gates WHERE id = ?", (gate_id,))
        return None if row is None else rows.gate(row)

    async def list_gates(self, status: GateStatus | None = GateStatus.PENDING) -> list[Gate]:
        """Gates with that status (all when None), oldest first."""
        # Two statements, not "?1 IS NULL OR status = ?1", which no index can serve.
        if status is None:
            found = await self._fetchall("SELECT * FROM gates ORDER BY id")
        else:
            found = await self._fetchall(
                "SELECT * FROM gates WHERE status = ? ORDER BY id", (status.value,)
            )
        return [rows.gate(r) for r in found]

    async def decide_gate(
        self, gate_id: int, status: GateStatus, by: str | None, reason: str, now: float
    ) -> Gate | None:
        """Move a *pending* gate to ``status`` atomically (compare-and-set).

        Returns the updated gate, or None when the gate was not pending (already decided,
        stale, or missing) -- so two people pressing Approve at once decide it once.
        """
        if status is GateStatus.PENDING:
            raise ValueError("decide_gate moves a gate out of pending")
        row = await self._fetchone(
            "UPDATE gates SET status = ?, decided_by = ?, decided_at = ?, reason = ?"
            " WHERE id = ? AND status = 'pending' RETURNING *",
            (status.value, by, now, reason, gate_id),
        )
        return None if row is None else rows.gate(row)

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
    ) -> None:
        """Record a command, allowed or refused."""
        await self._execute(
            "INSERT INTO audit (ts, platform, user_id, user_name, chat, command, outcome,"
            " detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (now, platform, user_id, user_name, chat, command, outcome, detail),
        )

    async def recent_audit(self, limit: int = 50) -> list[AuditEntry]:
        """The newest entries first."""
        found = await self._fetchall("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
        return [rows.audit(r) for r in found]

    # button actions -------------------------------------------------------------------
    async def put_action(self, command: str, now: float) -> int:
        """Store a button's command; the same command always gets the same id."""
        async with self.transaction() as tx:
            await tx.execute(
                "INSERT INTO actions (command, created_at) VALUES (?, ?)"
                " ON CONFLICT (command) DO NOTHING",
                (command, now),
            )
            row = await tx.fetchone("SELECT id FROM actions WHERE command = ?", (command,))
        assert row is not None
        return int(row[0])

    async def get_action(self, action_id: int) -> str | None:
        """The command behind a button, or None."""
        row = await self._fetchone("SELECT command FROM actions WHERE id = ?", (action_id,))
        return None if row is None else str(row[0])

    # chat threads (SQL in storage/threads.py) ------------------------------------------
    async def get_thread(self, interface: str, channel: str, key: str) -> str | None:
        """The thread kept for ``key`` in a channel, or None."""
        return await self._run(threads.get, interface, channel, key)

    async def set_thread(
        self, interface: str, channel: str, key: str, thread_ref: str, now: float
    ) -> None:
        """Remember the thread for ``key`` in a channel, replacing an earlier one."""
        await self._run(threads.put, interface, channel, key, thread_ref, now)

    # QA runs --------------------------------------------------------------------------
    async def start_qa_run(
        self, agent_id: str, project: str, trigger: str, command: str, now: float
    ) -> QaRun:
        """Record a QA run that has just started."""
        row = await self._fetchone(
            "INSERT INTO qa_runs (agent_id, project, trigger, command, started_at)"
            " VALUES (?, ?, ?, ?, ?) RETURNING *",
            (agent_id, project, trigger, command, now),
        )
        assert row is not None
        return rows.qa_run(row)

    async def finish_qa_run(
        self,
        run_id: int,
        exit_code: int | None,
        passed: bool,
        timed_out: bool,
        output_tail: str,
        now: float,
    ) -> QaRun:
        """Record how a QA run ended; raises StorageError for an unknown run."""
        row = await self._fetchone(
            "UPDATE qa_runs SET finished_at = ?, exit_code = ?, passed = ?, timed_out = ?,"
            " output_tail = ? WHERE id = ? RETURNING *",
            (now, exit_code, passed, timed_out, output_tail, run_id),
        )
        if row is None:
            raise StorageError(f"{self.path}: no QA run {run_id}")
        return rows.qa_run(row)

    async def recent_qa_runs(self, limit: int = 20, agent_id: str | None = None) -> list[QaRun]:
        """QA runs (of one agent, or all), newest first."""
        # Two statements, so the agent's runs are read through the qa_runs_agent index.
        if agent_id is None:
            found = await self._fetchall("SELECT * FROM qa_runs ORDER BY id DESC LIMIT ?", (limit,))
        else:
            found = await self._fetchall(
                "SELECT * FROM qa_runs WHERE agent_id = ? ORDER BY id DESC LIMIT ?",
                (agent_id, limit),
            )
        return [rows.qa_run(r) for r in found]

    async def last_qa_run(self, agent_id: str) -> QaRun | None:
        """The newest QA run of an agent, or None."""
        found = await self.recent_qa_runs(1, agent_id)
        return found[0] if found else None

    # alerts and the outbox (SQL in storage/outbox.py) -----------------------------------
    async def add_event_with_alerts(
        self,
        event: NewEvent,
        alerts: Sequence[AlertDraft],
        now: float,
        *,
        dedupe_window: float,
    ) -> tuple[Event, list[Alert]]:
        """Store an event, its alerts and their outbox rows in one transaction."""
        async with self.transaction() as tx:
            return await outbox.add_event_with_alerts(tx, event, alerts, now, dedupe_window)

    async def due_outbox(self, now: float, limit: int = 100) -> list[OutboxItem]:
        """The due head of each channel's queue, oldest first."""
        return await self._run(outbox.due, now, limit)

    async def get_outbox(self, outbox_id: int) -> OutboxItem | None:
        """One outbox item with its alert, or None."""
        return await self._run(outbox.get, outbox_id)

    async def mark_sending(self, outbox_id: int) -> OutboxItem | None:
        """Claim a pending item for delivery; return it as claimed, None if not pending."""
        return await self._run(outbox.mark_sending, outbox_id)

    async def mark_delivered(self, outbox_id: int, now: float) -> bool:
        """Record the delivery of an item being sent."""
        return await self._run(outbox.mark_delivered, outbox_id, now)

    async def mark_retry(self, outbox_id: int, error: str, next_attempt_at: float) -> bool:
        """Count a failed attempt and put the item back in its queue for later."""
        return await self._run(outbox.mark_retry, outbox_id, error, next_attempt_at)

    async def mark_dead(self, outbox_id: int, error: str) -> bool:
        """Give up on an item (a dead letter); its channel moves on."""
        return await self._run(outbox.mark_dead, outbox_id, error)

    async def retry_dead(self, outbox_id: int, now: float) -> OutboxItem | None:
        """Put a dead letter back in its queue; None when it is not dead."""
        async with self.transaction() as tx:
            return await outbox.retry_dead(tx, outbox_id, now)

    async def requeue_sending(self, now: float) -> int:
        """Put items a crash left in ``sending`` back to pending; return how many."""
        return await self._run(outbox.requeue_sending, now)

    async def outbox_summary(self) -> dict[str, int]:
        """How many outbox items are in each status."""
        return await self._run(outbox.summary)

    async def dead_letters(self, limit: int = 50) -> list[OutboxItem]:
        """Dead letters, newest first."""
        return await self._run(outbox.dead_letters, limit)

    async def recent_alerts(self, limit: int = 50) -> list[Alert]:
        """Alerts, newest first."""
        return await self._run(outbox.recent_alerts, limit)
