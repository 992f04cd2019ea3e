"""Dedicated PostgreSQL connections, outside the pool: the leader's lock, and LISTEN.

A pooled connection is handed back after each operation, so what must outlive one
statement gets a connection of its own: the chat leader's session advisory lock
(``LEADER_LOCK`` in farmbot.cluster.leadership), held for as long as the session lives,
and ``LISTEN``, whose notifications arrive on the connection that asked for them.

A session must notice quickly when the network or the server is gone, in both
directions. The client side checks the connection with a query under a timeout
(``check``); the server side is told to give up on a silent client after a few seconds
(TCP keepalives and ``tcp_user_timeout`` for this session), so that a leader cut off
from the database loses its lock to another node soon after it has stopped leading.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg

from farmbot.errors import StorageError

__all__ = ["PostgresSession", "connect_session"]

# The server drops a session whose client stopped answering after about this long
# (idle 2 s, then 3 probes 1 s apart; unacknowledged data after 5 s).
_SERVER_SIDE = (
    "SET tcp_keepalives_idle = 2",
    "SET tcp_keepalives_interval = 1",
    "SET tcp_keepalives_count = 3",
    "SET tcp_user_timeout = 5000",
)
_CLIENT_SIDE: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 2,
    "keepalives_interval": 1,
    "keepalives_count": 3,
}
CLOSE_WAIT = 2.0  # seconds a closing session may take (the network may be gone)


class PostgresSession:
    """One dedicated connection; implements ``farmbot.storage.db.Session``."""

    def __init__(
        self,
        conn: psycopg.AsyncConnection[Any],
        where: str,
        error: Callable[[BaseException, str], StorageError],
    ) -> None:
        self._conn = conn
        self._where = where
        self._error = error

    def __repr__(self) -> str:
        state = "closed" if self._conn.closed else "open"
        return f"<PostgresSession {self._where!r} {state}>"

    async def try_lock(self, key: int) -> bool:
        async with self._translated("cannot take the lock"):
            cur = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))
            row = await cur.fetchone()
        return bool(row and row[0])

    async def check(self, within: float) -> None:
        try:
            async with asyncio.timeout(within), self._translated("the session failed"):
                await self._conn.execute("SELECT 1")
        except TimeoutError:
            await self.aclose()
            raise StorageError(
                f"{self._where}: the session did not answer within {within:g} s"
            ) from None

    async def listen(self, *channels: str) -> None:
        async with self._translated("cannot listen"):
            for channel in channels:
                # A channel is an identifier, not a parameter; farmbot's names are constants.
                await self._conn.execute(f'LISTEN "{channel}"')

    async def notifications(self, idle: float) -> AsyncIterator[tuple[str, str]]:
        while True:
            async with self._translated("the listening session failed"):
                async for found in self._conn.notifies(timeout=idle):
                    yield found.channel, found.payload
            await self.check(idle)

    async def aclose(self) -> None:
        if self._conn.closed:
            return
        with contextlib.suppress(TimeoutError, psycopg.Error):
            async with asyncio.timeout(CLOSE_WAIT):
                await self._conn.close()

    @contextlib.asynccontextmanager
    async def _translated(self, doing: str) -> AsyncIterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            raise self._error(exc, doing) from exc


async def connect_session(
    url: str,
    kwargs: dict[str, Any],
    purpose: str,
    where: str,
    error: Callable[[BaseException, str], StorageError],
) -> PostgresSession:
    """Open a dedicated session for ``purpose`` (its ``application_name`` says it)."""
    options = {**kwargs, **_CLIENT_SIDE, "application_name": f"farmbot {purpose}"}
    try:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True, **options)
    except (psycopg.Error, UnicodeError) as exc:
        raise error(exc, f"cannot connect the {purpose} session") from exc
    try:
        for statement in _SERVER_SIDE:
            await conn.execute(statement)
    except psycopg.Error as exc:
        await conn.close()
        raise error(exc, f"cannot set up the {purpose} session") from exc
    return PostgresSession(conn, where, error)
