"""Nodes: one row per machine running ``farmbot serve`` on the database, and its heartbeat.

Heartbeats are stamped with the database's clock (``db.now_sql``) and read back as how
long ago they were (``Node.quiet``), so the clocks of the machines never enter into it.
Whether a node went quiet is reported once: the leader sets ``down_since`` with a
compare-and-set, and whoever's update took effect raises the alert.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol

from farmbot.models import Node
from farmbot.storage.db import Database, Row, encode_json, now_sql


class NodeStore(Protocol):
    async def register_node(
        self, name: str, *, url: str, version: str, projects: Sequence[str]
    ) -> None:
        """Record a node starting: its row, a first heartbeat, not stopped."""

    async def heartbeat(
        self, name: str, *, url: str, projects: Sequence[str], leading: bool
    ) -> bool:
        """Stamp the node's heartbeat (False when it has no row)."""

    async def node_stopped(self, name: str) -> None:
        """Record a clean stop (its agents are then "node stopped", never alerted about)."""

    async def set_leader(self, name: str) -> None:
        """Mark ``name`` as the one leading node (every other row stops saying so)."""

    async def list_nodes(self) -> list[Node]:
        """Every node, by name, with how long ago each was heard from."""

    async def mark_node_down(self, name: str, heartbeat_at: float, now: float) -> bool:
        """Report a quiet node once: True for the caller whose update took effect."""

    async def mark_node_up(self, name: str) -> bool:
        """Clear a reported node that is heard from again: True when it was reported."""

    async def agents_by_node(self) -> dict[str, int]:
        """The live agents each node runs (running and neither dead nor stopped)."""


class SqlNodeStore(NodeStore):
    def __init__(self, db: Database) -> None:
        self._db = db
        self._now = now_sql(db.backend)

    async def register_node(
        self, name: str, *, url: str, version: str, projects: Sequence[str]
    ) -> None:
        now = self._now
        await self._db.execute(
            "INSERT INTO nodes (name, url, version, projects, leads, started_at, heartbeat_at)"
            f" VALUES (?, ?, ?, ?, ?, {now}, {now}) ON CONFLICT (name) DO UPDATE SET"
            " url = excluded.url, version = excluded.version, projects = excluded.projects,"
            " leads = excluded.leads, started_at = excluded.started_at,"
            " heartbeat_at = excluded.heartbeat_at, stopped_at = NULL",
            (name, url, version, encode_json(list(projects)), False),
        )

    async def heartbeat(
        self, name: str, *, url: str, projects: Sequence[str], leading: bool
    ) -> bool:
        changed = await self._db.execute(
            f"UPDATE nodes SET heartbeat_at = {self._now}, url = ?, projects = ?, leads = ?,"
            " stopped_at = NULL WHERE name = ?",
            (url, encode_json(list(projects)), leading, name),
        )
        return changed > 0

    async def node_stopped(self, name: str) -> None:
        await self._db.execute(
            f"UPDATE nodes SET stopped_at = {self._now}, leads = ? WHERE name = ?",
            (False, name),
        )

    async def set_leader(self, name: str) -> None:
        await self._db.execute(
            "UPDATE nodes SET leads = (name = ?) WHERE leads OR name = ?", (name, name)
        )

    async def list_nodes(self) -> list[Node]:
        rows = await self._db.fetchall(
            f"SELECT *, {self._now} - heartbeat_at AS quiet FROM nodes ORDER BY name"
        )
        return [_node(r) for r in rows]

    async def mark_node_down(self, name: str, heartbeat_at: float, now: float) -> bool:
        # Only if it has not been heard from since the caller looked.
        changed = await self._db.execute(
            "UPDATE nodes SET down_since = ? WHERE name = ? AND down_since IS NULL"
            " AND heartbeat_at = ? AND stopped_at IS NULL",
            (now, name, heartbeat_at),
        )
        return changed > 0

    async def mark_node_up(self, name: str) -> bool:
        changed = await self._db.execute(
            "UPDATE nodes SET down_since = NULL WHERE name = ? AND down_since IS NOT NULL",
            (name,),
        )
        return changed > 0

    async def agents_by_node(self) -> dict[str, int]:
        rows = await self._db.fetchall(
            "SELECT node, COUNT(*) AS n FROM agents WHERE desired = 'running'"
            " AND state NOT IN ('dead', 'stopped') GROUP BY node"
        )
        return {str(r["node"]): int(r["n"]) for r in rows}


def _node(r: Row) -> Node:
    return Node(
        name=str(r["name"]),
        url=str(r["url"]),
        version=str(r["version"]),
        projects=tuple(str(p) for p in json.loads(r["projects"])),
        leading=bool(r["leads"]),
        started_at=float(r["started_at"]),
        heartbeat_at=float(r["heartbeat_at"]),
        stopped_at=None if r["stopped_at"] is None else float(r["stopped_at"]),
        down_since=None if r["down_since"] is None else float(r["down_since"]),
        quiet=max(0.0, float(r["quiet"])),
    )
