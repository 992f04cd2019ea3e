"""QA runs: each run of a project's verify command in an agent's worktree."""

from __future__ import annotations

from typing import Protocol

from farmbot.errors import StorageError
from farmbot.models import QaRun
from farmbot.storage.db import Database, Row


class QaRunStore(Protocol):
    async def start_qa_run(
        self, agent_id: str, project: str, trigger: str, command: str, now: float
    ) -> QaRun:
        """Record a QA run that has just started."""

    async def finish_qa_run(
        self,
        run_id: int,
        *,
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


class SqlQaRunStore(QaRunStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def start_qa_run(
        self, agent_id: str, project: str, trigger: str, command: str, now: float
    ) -> QaRun:
        row = await self._db.fetchone(
            "INSERT INTO qa_runs (agent_id, project, trigger, command, started_at)"
            " VALUES (?, ?, ?, ?, ?) RETURNING *",
            (agent_id, project, trigger, command, now),
        )
        assert row is not None
        return _qa_run(row)

    async def finish_qa_run(
        self,
        run_id: int,
        *,
        exit_code: int | None,
        passed: bool,
        timed_out: bool,
        output_tail: str,
        now: float,
    ) -> QaRun:
        row = await self._db.fetchone(
            "UPDATE qa_runs SET finished_at = ?, exit_code = ?, passed = ?, timed_out = ?,"
            " output_tail = ? WHERE id = ? RETURNING *",
            (now, exit_code, passed, timed_out, output_tail, run_id),
        )
        if row is None:
            raise StorageError(f"no QA run {run_id}")
        return _qa_run(row)

    async def recent_qa_runs(self, limit: int = 20, agent_id: str | None = None) -> list[QaRun]:
        # Two statements, so the agent's runs are read through the qa_runs_agent index.
        if agent_id is None:
            found = await self._db.fetchall(
                "SELECT * FROM qa_runs ORDER BY id DESC LIMIT ?", (limit,)
            )
        else:
            found = await self._db.fetchall(
                "SELECT * FROM qa_runs WHERE agent_id = ? ORDER BY id DESC LIMIT ?",
                (agent_id, limit),
            )
        return [_qa_run(r) for r in found]

    async def last_qa_run(self, agent_id: str) -> QaRun | None:
        found = await self.recent_qa_runs(1, agent_id)
        return found[0] if found else None


def _qa_run(r: Row) -> QaRun:
    passed = r["passed"]
    return QaRun(
        **{
            **dict(r),
            "passed": None if passed is None else bool(passed),
            "timed_out": bool(r["timed_out"]),
        }
    )
