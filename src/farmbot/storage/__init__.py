"""Persistent state: one repository per record type over a small unit of work.

Each repository module (agents, prompts, projects, gates, events, outbox, audit, actions,
threads, qa_runs, tracks, tasks, runs, retention, nodes, routed, inbound, questions) holds
its SQL and a small Protocol that its consumers take, so a component depends on the
records it uses and nothing else. ``Storage`` bundles them over one ``Database``
(storage/db.py): SQLite (storage/sqlite.py, the default) or PostgreSQL
(storage/postgres.py, with ``[storage] url``); ``open_storage`` picks the configured one.
Every SQL statement in farmbot lives under this package.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from farmbot.storage.actions import ActionStore, SqlActionStore
from farmbot.storage.agents import AgentStore, SqlAgentStore
from farmbot.storage.audit import AuditLog, SqlAuditLog
from farmbot.storage.db import Database
from farmbot.storage.events import EventStore, SqlEventStore
from farmbot.storage.gates import GateStore, SqlGateStore
from farmbot.storage.inbound import InboundStore, SqlInboundStore
from farmbot.storage.migrate import Migration
from farmbot.storage.nodes import NodeStore, SqlNodeStore
from farmbot.storage.outbox import OutboxStore, SqlOutboxStore
from farmbot.storage.projects import ProjectStore, SqlProjectStore
from farmbot.storage.prompts import PromptStore, SqlPromptStore
from farmbot.storage.qa_runs import QaRunStore, SqlQaRunStore
from farmbot.storage.questions import QuestionStore, SqlQuestionStore
from farmbot.storage.retention import RetentionStore, SqlRetentionStore
from farmbot.storage.routed import RoutedCommandStore, SqlRoutedCommandStore
from farmbot.storage.runs import RunStore, SqlRunStore
from farmbot.storage.sqlite import SqliteDatabase
from farmbot.storage.tasks import SqlTaskStore, TaskStore
from farmbot.storage.threads import SqlThreadStore, ThreadStore
from farmbot.storage.tracks import SqlTrackStore, TrackStore

DB_FILE = "farmbot.db"  # SQLite's file in the state directory

__all__ = [
    "DB_FILE",
    "ActionStore",
    "AgentStore",
    "AuditLog",
    "Database",
    "EventStore",
    "GateStore",
    "InboundStore",
    "NodeStore",
    "OutboxStore",
    "ProjectStore",
    "PromptStore",
    "QaRunStore",
    "QuestionStore",
    "RetentionStore",
    "RoutedCommandStore",
    "RunStore",
    "Storage",
    "StorageSettings",
    "TaskStore",
    "ThreadStore",
    "TrackStore",
    "open_sqlite",
    "open_storage",
]


@dataclass(frozen=True, slots=True)
class Storage:
    """Every repository, over one database."""

    db: Database
    projects: ProjectStore
    agents: AgentStore
    prompts: PromptStore
    gates: GateStore
    events: EventStore
    outbox: OutboxStore
    audit: AuditLog
    actions: ActionStore
    threads: ThreadStore
    qa_runs: QaRunStore
    tracks: TrackStore
    tasks: TaskStore
    runs: RunStore
    retention: RetentionStore
    nodes: NodeStore
    routed: RoutedCommandStore
    inbound: InboundStore
    questions: QuestionStore

    @classmethod
    def over(cls, db: Database) -> Storage:
        """The repositories of ``db``."""
        return cls(
            db=db,
            projects=SqlProjectStore(db),
            agents=SqlAgentStore(db),
            prompts=SqlPromptStore(db),
            gates=SqlGateStore(db),
            events=SqlEventStore(db),
            outbox=SqlOutboxStore(db),
            audit=SqlAuditLog(db),
            actions=SqlActionStore(db),
            threads=SqlThreadStore(db),
            qa_runs=SqlQaRunStore(db),
            tracks=SqlTrackStore(db),
            tasks=SqlTaskStore(db),
            runs=SqlRunStore(db),
            retention=SqlRetentionStore(db),
            nodes=SqlNodeStore(db),
            routed=SqlRoutedCommandStore(db),
            inbound=SqlInboundStore(db),
            questions=SqlQuestionStore(db),
        )

    async def ready(self) -> str | None:
        """A readiness check: None while the database answers."""
        from farmbot.errors import StorageError

        try:
            await self.db.ping()
        except StorageError as exc:
            return str(exc)
        return None


@asynccontextmanager
async def open_sqlite(
    path: str | os.PathLike[str], migrations: list[Migration] | None = None
) -> AsyncIterator[Storage]:
    """Open (and migrate) the SQLite database at ``path``; close it afterwards."""
    async with SqliteDatabase(path, migrations) as db:
        yield Storage.over(db)


class StorageSettings(Protocol):
    """What ``open_storage`` reads: ``[storage]`` (``farmbot.config.storage.StorageConfig``)."""

    @property
    def url(self) -> str | None:
        """A PostgreSQL URL; None means SQLite in the state directory."""

    @property
    def password(self) -> str | None:
        """The password, when it is not in the URL."""

    @property
    def pool_min(self) -> int: ...

    @property
    def pool_max(self) -> int: ...


@asynccontextmanager
async def open_storage(settings: StorageSettings, state_dir: Path) -> AsyncIterator[Storage]:
    """Open (and migrate) the configured database; close it afterwards.

    A ``url`` selects PostgreSQL (its driver is imported only then); without one, SQLite
    at ``state_dir/farmbot.db``.
    """
    if settings.url is None:
        async with open_sqlite(state_dir / DB_FILE) as storage:
            yield storage
        return
    from farmbot.storage.postgres import PostgresDatabase

    database = PostgresDatabase(
        settings.url,
        password=settings.password,
        min_size=settings.pool_min,
        max_size=settings.pool_max,
    )
    async with database as db:
        yield Storage.over(db)
