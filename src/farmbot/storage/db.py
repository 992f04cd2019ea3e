"""The unit of work every repository runs its SQL through.

A ``Database`` is one backend (SQLite today, PostgreSQL for several machines): it owns
the connection(s), the migrations and the translation of driver errors into
``StorageError``. Repositories (one module per record type) hold the SQL and take a
``Database``; the SQL is written once for both backends, with ``?`` parameters and
columns read by name.

- ``db.fetchone/fetchall/execute`` run one statement, which commits on its own.
- ``async with db.transaction() as tx:`` runs several statements atomically; leaving the
  block commits, an exception rolls back and propagates.
- ``now_sql(db.backend)`` is the database's own clock in SQL, for times several machines
  compare (heartbeats, leases), so that clock skew between them does not matter.
- A backend that ``OpensSessions`` (PostgreSQL) also gives dedicated connections outside
  the pool, for what must outlive one statement: a session advisory lock (the leader's)
  and ``LISTEN``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable

Row = Mapping[str, Any]  # a result row, read by column name

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_SURROGATE = re.compile("[\ud800-\udfff]")


def encode_json(value: Any) -> str:
    """Compact JSON text for a column; a lone surrogate (which no database stores, and an
    agent's hook event may well carry) becomes U+FFFD instead of failing the write."""
    text = _encode(value)
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


class Tx(Protocol):
    """The statements of one transaction (or one autocommit statement)."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one ``INSERT ... RETURNING id``; return the new row's id."""

    async def insert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[int]:
        """Run one ``INSERT`` (without RETURNING) per row; return the new ids in order."""

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per parameter row."""

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """Run a query (or a statement with ``RETURNING``); return its first row."""

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a query (or a statement with ``RETURNING``); return all its rows."""


class Database(Protocol):
    """One storage backend: connections, migrations, transactions, errors."""

    backend: str  # "sqlite" or "postgresql"

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """Run several statements atomically; the block holds a connection, keep it short."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement on its own; return the number of rows it changed."""

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """Run one query on its own; return its first row."""

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one query on its own; return all its rows."""

    async def ping(self) -> None:
        """Answer a trivial query; raise ``StorageError`` when the database does not."""

    async def schema_version(self) -> int:
        """The schema version the database is at."""

    async def aclose(self) -> None:
        """Close the connection(s) once the operation in progress ends."""


def now_sql(backend: str) -> str:
    """The database's clock, as UTC seconds since the epoch, in the backend's SQL."""
    if backend == "postgresql":
        return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
    return "((julianday('now') - 2440587.5) * 86400.0)"


class Session(Protocol):
    """A dedicated connection of its own, outside the pool; ``StorageError`` when it fails."""

    async def try_lock(self, key: int) -> bool:
        """Take a session advisory lock if it is free; it is held until the session ends."""

    async def check(self, within: float) -> None:
        """Answer a trivial query within ``within`` seconds, else fail (and close)."""

    async def listen(self, *channels: str) -> None:
        """Subscribe to ``NOTIFY`` on ``channels``."""

    def notifications(self, idle: float) -> AsyncIterator[tuple[str, str]]:
        """(channel, payload) as they arrive; the connection is checked every ``idle``
        seconds without one."""

    async def aclose(self) -> None:
        """End the session (which releases its locks)."""


@runtime_checkable
class OpensSessions(Protocol):
    """A backend that can open a ``Session`` (PostgreSQL)."""

    async def session(self, purpose: str) -> Session:
        """Connect a dedicated session; ``purpose`` names it to the server."""
