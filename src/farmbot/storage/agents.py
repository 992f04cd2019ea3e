"""Agents: one row per agent, what a human asked for (desired) and what is observed."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Protocol

from farmbot.models import Agent, AgentKind, AgentState, DesiredState
from farmbot.storage.db import Database, Row

# The agents table has exactly the columns of the Agent record.
_COLUMNS = [f.name for f in fields(Agent)]
_SAVE = (
    f"INSERT INTO agents ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
    " ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "id")
)


class AgentStore(Protocol):
    async def save_agent(self, agent: Agent) -> None:
        """Insert or replace the whole agent row."""

    async def claim_agent(self, agent: Agent) -> bool:
        """Insert or replace the row unless another node runs an agent of that id (its row
        names another node and is neither dead nor stopped); False then. Atomic, so two
        nodes spawning one id at once cannot both have it."""

    async def get_agent(self, agent_id: str) -> Agent | None:
        """The agent with that id, or None."""

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
    ) -> Agent | None:
        """Record what a human asked for; return the updated agent, or None."""

    async def set_agent_paused(
        self, agent_id: str, until: float | None, now: float
    ) -> Agent | None:
        """Record a usage-limit pause until ``until`` (None lifts it); the updated agent."""

    async def claim_agents(self, node: str, *, every: bool) -> int:
        """Make ``node`` the node of the agents that have none (rows from before nodes),
        or of every agent (``every``: the only node, as with SQLite); how many changed."""


class SqlAgentStore(AgentStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def save_agent(self, agent: Agent) -> None:
        # An upsert, not INSERT OR REPLACE: REPLACE deletes the row its prompts point at.
        values = asdict(agent)
        await self._db.execute(_SAVE, [values[c] for c in _COLUMNS])

    async def claim_agent(self, agent: Agent) -> bool:
        values = asdict(agent)
        changed = await self._db.execute(
            _SAVE + " WHERE agents.node = excluded.node OR agents.node = ''"
            " OR agents.state IN ('dead', 'stopped')",
            [values[c] for c in _COLUMNS],
        )
        return changed > 0

    async def get_agent(self, agent_id: str) -> Agent | None:
        row = await self._db.fetchone("SELECT * FROM agents WHERE id = ?", (agent_id,))
        return None if row is None else _agent(row)

    async def list_agents(self, project: str | None = None) -> list[Agent]:
        if project is None:
            found = await self._db.fetchall("SELECT * FROM agents ORDER BY created_at, id")
        else:
            found = await self._db.fetchall(
                "SELECT * FROM agents WHERE project = ? ORDER BY created_at, id", (project,)
            )
        return [_agent(r) for r in found]

    async def set_agent_state(
        self, agent_id: str, state: AgentState, reason: str, now: float
    ) -> Agent | None:
        # The right-hand sides of SET see the row as it was before the update.
        row = await self._db.fetchone(
            "UPDATE agents SET state = ?, state_reason = ?, updated_at = ?,"
            " state_since = CASE WHEN state = ? THEN state_since ELSE ? END"
            " WHERE id = ? RETURNING *",
            (state.value, reason, now, state.value, now, agent_id),
        )
        return None if row is None else _agent(row)

    async def set_agent_desired(
        self, agent_id: str, desired: DesiredState, now: float
    ) -> Agent | None:
        row = await self._db.fetchone(
            "UPDATE agents SET desired = ?, updated_at = ? WHERE id = ? RETURNING *",
            (desired.value, now, agent_id),
        )
        return None if row is None else _agent(row)

    async def set_agent_paused(
        self, agent_id: str, until: float | None, now: float
    ) -> Agent | None:
        row = await self._db.fetchone(
            "UPDATE agents SET paused_until = ?, updated_at = ? WHERE id = ? RETURNING *",
            (until, now, agent_id),
        )
        return None if row is None else _agent(row)

    async def claim_agents(self, node: str, *, every: bool) -> int:
        if every:
            return await self._db.execute(
                "UPDATE agents SET node = ? WHERE node != ?", (node, node)
            )
        return await self._db.execute("UPDATE agents SET node = ? WHERE node = ''", (node,))


def _agent(r: Row) -> Agent:
    return Agent(
        **{
            **dict(r),
            "kind": AgentKind(r["kind"]),
            "desired": DesiredState(r["desired"]),
            "state": AgentState(r["state"]),
        }
    )
