"""Gate records: questions only a human may answer, decided once (compare-and-set)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Protocol

from farmbot.models import Gate, GateStatus
from farmbot.storage.db import Database, Row, encode_json


class GateStore(Protocol):
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

    async def get_gate(self, gate_id: int) -> Gate | None:
        """The gate with that id, or None."""

    async def list_gates(self, status: GateStatus | None = GateStatus.PENDING) -> list[Gate]:
        """Gates with that status (all when None), oldest first."""

    async def session_gates(self, agent_id: str) -> list[Gate]:
        """The agent's gates approved for the rest of its session, oldest first."""

    async def decide_gate(
        self,
        gate_id: int,
        status: GateStatus,
        by: str | None,
        reason: str,
        now: float,
        *,
        scope: str = "",
    ) -> Gate | None:
        """Move a *pending* gate to ``status`` atomically (compare-and-set).

        Returns the updated gate, or None when the gate was not pending (already decided,
        stale, or missing) -- so two people pressing Approve at once decide it once.
        """


class SqlGateStore(GateStore):
    def __init__(self, db: Database) -> None:
        self._db = db

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
        row = await self._db.fetchone(
            "INSERT INTO gates (kind, agent_id, project, title, detail, status, created_at,"
            " payload) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?) RETURNING *",
            (kind, agent_id, project, title, detail, now, encode_json(payload)),
        )
        assert row is not None
        return gate_of(row)

    async def get_gate(self, gate_id: int) -> Gate | None:
        row = await self._db.fetchone("SELECT * FROM gates WHERE id = ?", (gate_id,))
        return None if row is None else gate_of(row)

    async def list_gates(self, status: GateStatus | None = GateStatus.PENDING) -> list[Gate]:
        # Two statements, not "? IS NULL OR status = ?", which no index can serve.
        if status is None:
            found = await self._db.fetchall("SELECT * FROM gates ORDER BY id")
        else:
            found = await self._db.fetchall(
                "SELECT * FROM gates WHERE status = ? ORDER BY id", (status.value,)
            )
        return [gate_of(r) for r in found]

    async def session_gates(self, agent_id: str) -> list[Gate]:
        # Read once per agent and daemon (supervisor/approvals.py keeps them): no index.
        found = await self._db.fetchall(
            "SELECT * FROM gates WHERE agent_id = ? AND status = 'approved'"
            " AND scope = 'session' ORDER BY id",
            (agent_id,),
        )
        return [gate_of(r) for r in found]

    async def decide_gate(
        self,
        gate_id: int,
        status: GateStatus,
        by: str | None,
        reason: str,
        now: float,
        *,
        scope: str = "",
    ) -> Gate | None:
        if status is GateStatus.PENDING:
            raise ValueError("decide_gate moves a gate out of pending")
        row = await self._db.fetchone(
            "UPDATE gates SET status = ?, decided_by = ?, decided_at = ?, reason = ?, scope = ?"
            " WHERE id = ? AND status = 'pending' RETURNING *",
            (status.value, by, now, reason, scope, gate_id),
        )
        return None if row is None else gate_of(row)


_COLUMNS = tuple(f.name for f in dataclasses.fields(Gate))


def gate_of(r: Row) -> Gate:
    """A gate from its columns; a join's other columns are left out (and a column an
    older schema lacks takes its default)."""
    values = {name: r[name] for name in _COLUMNS if name in r.keys()}
    return Gate(
        **{**values, "status": GateStatus(r["status"]), "payload": json.loads(r["payload"])}
    )
