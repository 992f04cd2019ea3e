"""The statements of one unit of work on the store's connection.

``Transaction`` is what ``SqliteStore.transaction()`` yields; the store's SQL helpers
(storage/outbox.py) take one, so they run inside whichever transaction the caller holds.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiosqlite

from farmbot.errors import StorageError

encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class Transaction:
    """Statements run inside one ``store.transaction()``; all commit or none do."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> int:
        """Run one statement (``?`` or ``:name`` parameters); return the rows it changed."""
        cursor = await self._conn.execute(sql, params)
        return cursor.rowcount

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one ``INSERT``; return the new row's id."""
        cursor = await self._conn.execute(sql, params)
        if cursor.lastrowid is None:
            raise StorageError(f"statement inserted no row: {sql}")
        return cursor.lastrowid

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per parameter row."""
        await self._conn.executemany(sql, rows)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        """Run a query (or a statement with ``RETURNING``); return its first row."""
        rows = await self._conn.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run a query (or a statement with ``RETURNING``); return all its rows."""
        return list(await self._conn.execute_fetchall(sql, params))
