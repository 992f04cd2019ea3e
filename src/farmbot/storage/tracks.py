"""Agent tracks: what the state machine remembers about each agent between ticks.

Stored as one JSON object per agent, so a restart does not reset stuck detection
(since when an agent has been quiet, which errors were reported, how far it escalated).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from farmbot.storage.db import Database, encode_json


class TrackStore(Protocol):
    async def load_tracks(self) -> dict[str, dict[str, Any]]:
        """Every agent's stored track, by agent id."""

    async def save_tracks(self, tracks: Sequence[tuple[str, dict[str, Any]]], now: float) -> None:
        """Store (agent id, track) pairs in one transaction, replacing earlier ones."""

    async def drop_track(self, agent_id: str) -> None:
        """Forget an agent's track (it stopped, or died)."""


class SqlTrackStore(TrackStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def load_tracks(self) -> dict[str, dict[str, Any]]:
        found = await self._db.fetchall("SELECT agent_id, data FROM agent_tracks")
        return {str(r["agent_id"]): json.loads(r["data"]) for r in found}

    async def save_tracks(self, tracks: Sequence[tuple[str, dict[str, Any]]], now: float) -> None:
        if not tracks:
            return
        async with self._db.transaction() as tx:
            await tx.executemany(
                "INSERT INTO agent_tracks (agent_id, data, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (agent_id) DO UPDATE SET data = excluded.data,"
                " updated_at = excluded.updated_at",
                [(agent_id, encode_json(data), now) for agent_id, data in tracks],
            )

    async def drop_track(self, agent_id: str) -> None:
        await self._db.execute("DELETE FROM agent_tracks WHERE agent_id = ?", (agent_id,))
