"""Stored button actions: a command too long for a platform's button payload."""

from __future__ import annotations

from typing import Protocol

from farmbot.storage.db import Database


class ActionStore(Protocol):
    async def put_action(self, command: str, now: float) -> int:
        """Store a button's command; the same command always gets the same id."""

    async def get_action(self, action_id: int) -> str | None:
        """The command behind a button, or None."""


class SqlActionStore(ActionStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put_action(self, command: str, now: float) -> int:
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO actions (command, created_at) VALUES (?, ?)"
                " ON CONFLICT (command) DO NOTHING",
                (command, now),
            )
            row = await tx.fetchone("SELECT id FROM actions WHERE command = ?", (command,))
        assert row is not None
        return int(row["id"])

    async def get_action(self, action_id: int) -> str | None:
        row = await self._db.fetchone("SELECT command FROM actions WHERE id = ?", (action_id,))
        return None if row is None else str(row["command"])
