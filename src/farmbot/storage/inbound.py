"""Inbound positions: where a chat interface stands in its platform's stream of updates.

Telegram forgets an update once farmbot asks for a later one (``getUpdates`` with a
higher offset). So an update is written here before that happens: ``take_updates``
records a batch and the next position in one transaction, and the interface handles
each update afterwards, marking it ``handling`` (by whom) and then ``done``. Whichever
node leads next reads the position from here and finds what was taken but not handled
(``unfinished``): updates still ``new`` are handled as usual, updates left ``handling``
by someone else were interrupted, so no update is lost or handled twice unnoticed.

``MemoryInboundStore`` keeps the same in memory, for an interface built without a
database (a test of one interface alone).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from farmbot.models import InboundUpdate
from farmbot.storage.db import Database, encode_json

DONE_KEPT = 86400.0  # seconds handled updates are kept (enough to recognize a repeat)


class InboundStore(Protocol):
    async def position(self, interface: str, key: str) -> int | None:
        """The next update to ask for, or None when nothing was taken yet."""

    async def take_updates(
        self,
        interface: str,
        key: str,
        updates: Sequence[tuple[int, dict[str, Any]]],
        position: int,
        now: float,
    ) -> list[int]:
        """Record updates (id, body) and the next position; the ids not recorded before."""

    async def unfinished(self, interface: str, key: str) -> list[InboundUpdate]:
        """Updates taken but not done, oldest first."""

    async def begin_update(
        self, interface: str, key: str, update_id: int, handler: str
    ) -> InboundUpdate | None:
        """Mark an update being handled by ``handler`` and return it as it was before
        (``status`` ``handling`` means someone else had begun it); None when it is done or
        ``handler`` has it already."""

    async def finish_update(
        self, interface: str, key: str, update_id: int, handler: str, now: float
    ) -> None:
        """Mark an update ``handler`` handled as done (and forget old done ones)."""


class SqlInboundStore(InboundStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def position(self, interface: str, key: str) -> int | None:
        row = await self._db.fetchone(
            "SELECT position FROM chat_positions WHERE interface = ? AND key = ?",
            (interface, key),
        )
        return None if row is None else int(row["position"])

    async def take_updates(
        self,
        interface: str,
        key: str,
        updates: Sequence[tuple[int, dict[str, Any]]],
        position: int,
        now: float,
    ) -> list[int]:
        fresh: list[int] = []
        async with self._db.transaction() as tx:
            for update_id, body in updates:
                row = await tx.fetchone(
                    "INSERT INTO inbound_updates (interface, key, update_id, body, status,"
                    " created_at) VALUES (?, ?, ?, ?, 'new', ?)"
                    " ON CONFLICT (interface, key, update_id) DO NOTHING RETURNING update_id",
                    (interface, key, update_id, encode_json(body), now),
                )
                if row is not None:
                    fresh.append(update_id)
            # Never backwards: a late batch of an earlier leader must not undo a later one.
            await tx.execute(
                "INSERT INTO chat_positions (interface, key, position, updated_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (interface, key) DO UPDATE SET"
                " position = CASE WHEN excluded.position > chat_positions.position"
                " THEN excluded.position ELSE chat_positions.position END,"
                " updated_at = excluded.updated_at",
                (interface, key, position, now),
            )
        return fresh

    async def unfinished(self, interface: str, key: str) -> list[InboundUpdate]:
        rows = await self._db.fetchall(
            "SELECT update_id, body, status, handler FROM inbound_updates"
            " WHERE interface = ? AND key = ? AND status != 'done' ORDER BY update_id",
            (interface, key),
        )
        return [
            InboundUpdate(
                int(r["update_id"]),
                json.loads(r["body"]),
                str(r["status"]),
                None if r["handler"] is None else str(r["handler"]),
            )
            for r in rows
        ]

    async def begin_update(
        self, interface: str, key: str, update_id: int, handler: str
    ) -> InboundUpdate | None:
        async with self._db.transaction() as tx:
            row = await tx.fetchone(
                "SELECT update_id, body, status, handler FROM inbound_updates"
                " WHERE interface = ? AND key = ? AND update_id = ?",
                (interface, key, update_id),
            )
            if row is None or row["status"] == "done" or row["handler"] == handler:
                return None
            await tx.execute(
                "UPDATE inbound_updates SET status = 'handling', handler = ?"
                " WHERE interface = ? AND key = ? AND update_id = ?",
                (handler, interface, key, update_id),
            )
        return InboundUpdate(
            update_id,
            json.loads(row["body"]),
            str(row["status"]),
            None if row["handler"] is None else str(row["handler"]),
        )

    async def finish_update(
        self, interface: str, key: str, update_id: int, handler: str, now: float
    ) -> None:
        async with self._db.transaction() as tx:
            done = await tx.execute(
                "UPDATE inbound_updates SET status = 'done', done_at = ?"
                " WHERE interface = ? AND key = ? AND update_id = ? AND handler = ?",
                (now, interface, key, update_id, handler),
            )
            if done:
                await tx.execute(
                    "DELETE FROM inbound_updates WHERE interface = ? AND key = ?"
                    " AND status = 'done' AND done_at < ?",
                    (interface, key, now - DONE_KEPT),
                )


class MemoryInboundStore(InboundStore):
    """The same, in memory: for an interface built without a database."""

    def __init__(self) -> None:
        self._positions: dict[tuple[str, str], int] = {}
        self._updates: dict[tuple[str, str, int], InboundUpdate] = {}

    async def position(self, interface: str, key: str) -> int | None:
        return self._positions.get((interface, key))

    async def take_updates(
        self,
        interface: str,
        key: str,
        updates: Sequence[tuple[int, dict[str, Any]]],
        position: int,
        now: float,
    ) -> list[int]:
        fresh = []
        for update_id, body in updates:
            if (interface, key, update_id) not in self._updates:
                self._updates[interface, key, update_id] = InboundUpdate(
                    update_id, body, "new", None
                )
                fresh.append(update_id)
        old = self._positions.get((interface, key), position)
        self._positions[interface, key] = max(old, position)
        return fresh

    async def unfinished(self, interface: str, key: str) -> list[InboundUpdate]:
        return sorted(
            (u for (i, k, _), u in self._updates.items() if (i, k) == (interface, key)),
            key=lambda u: u.update_id,
        )

    async def begin_update(
        self, interface: str, key: str, update_id: int, handler: str
    ) -> InboundUpdate | None:
        found = self._updates.get((interface, key, update_id))
        if found is None or found.handler == handler:
            return None
        self._updates[interface, key, update_id] = InboundUpdate(
            update_id, found.body, "handling", handler
        )
        return found

    async def finish_update(
        self, interface: str, key: str, update_id: int, handler: str, now: float
    ) -> None:
        found = self._updates.get((interface, key, update_id))
        if found is not None and found.handler == handler:
            del self._updates[interface, key, update_id]  # done ones need not be kept here
