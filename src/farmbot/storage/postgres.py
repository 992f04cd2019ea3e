"""The server backend: PostgreSQL through a psycopg 3 connection pool.

Several farmbot nodes can share one database; each node's ``PostgresDatabase`` holds a
pool of connections (``psycopg_pool.AsyncConnectionPool``), so reads never wait for a
writer. It implements ``farmbot.storage.db.Database`` with the SQLite backend's semantics:

- The repositories write ``?`` placeholders; ``pyformat`` rewrites them to psycopg's
  ``%s`` and doubles a literal ``%`` (psycopg reads ``%`` anywhere in a statement that
  has parameters), leaving a ``?`` in a quoted string, quoted name or comment alone.
- Rows read by column name (dicts). Single statements run in autocommit on a pooled
  connection.
- ``transaction()`` holds one connection for the block, at READ COMMITTED, and starts by
  taking farmbot's write lock (``WRITE_LOCK``, a transaction-level advisory lock), so
  transactions run one after another, on every node, as SQLite's ``BEGIN IMMEDIATE``
  makes them. That keeps ids committed in the order they are taken (an outbox id is its
  place in its channel's queue) and makes the event batch's dedupe fold, a read then a
  write, safe from a concurrent writer; READ COMMITTED gives each statement a snapshot
  taken after the lock. Compare-and-set updates (``... WHERE status = 'pending'``) need
  no lock: PostgreSQL re-checks the condition on the newest row version.
- Every psycopg error, and a ``UnicodeError`` for text no database can hold (a lone
  surrogate), is translated into ``StorageError``: one line, naming the database as
  ``postgresql://user@host:port/dbname``, never showing a password.
- Opening migrates first (storage/migrate.py), on a connection of its own that holds
  ``MIGRATION_LOCK`` while it does, then fills the pool.

- ``session(purpose)`` opens a dedicated connection outside the pool
  (storage/pgsession.py): the chat leader's lock and ``LISTEN`` need one.

Advisory lock keys farmbot uses (64-bit, ``b"farmbot"`` then a number): 1 migrating
(``migrate.MIGRATION_LOCK``), 2 the write lock, 3 the chat leader
(``cluster.leadership.LEADER_LOCK``, a session lock held by the leader's dedicated connection).
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

import psycopg
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from farmbot.errors import StorageError
from farmbot.redact import url_secrets
from farmbot.storage.db import Row
from farmbot.storage.migrate import (
    Migration,
    MigrationFailed,
    apply_postgres_migrations,
    load_migrations,
    postgres_version,
)
from farmbot.storage.pgsession import PostgresSession, connect_session

__all__ = ["WRITE_LOCK", "PostgresDatabase", "pyformat"]

WRITE_LOCK = 0x6661726D626F7402
CONNECT_TIMEOUT = 10  # seconds, unless the URL sets connect_timeout
POOL_TIMEOUT = 10.0  # seconds an operation waits for a connection (the server may be down)
MIGRATION_WAIT = 60  # seconds to wait for another node's migration (or a table lock)
HIDDEN = "***"

# A quoted string, a quoted name, a comment, or a character that means something to psycopg.
_TOKENS = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|[?%]""", re.DOTALL)


@functools.lru_cache(maxsize=1024)
def pyformat(sql: str) -> str:
    """A statement with ``?`` placeholders, in psycopg's ``%s`` style.

    Standard SQL quoting only: ``E'...'`` escapes and dollar quotes are not recognized
    (no repository statement uses them).
    """

    def swap(found: re.Match[str]) -> str:
        token = found.group(0)
        return "%s" if token == "?" else token.replace("%", "%%")

    return _TOKENS.sub(swap, sql)


class PostgresTx:
    """Statements on one pooled connection (inside a transaction, or autocommit)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._conn.cursor() as cur:
            await cur.execute(pyformat(sql), tuple(params))
            return cur.rowcount

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._conn.cursor() as cur:
            await cur.execute(pyformat(sql), tuple(params))
            row = await cur.fetchone()
        if row is None:
            raise StorageError(f"statement inserted no row: {sql}")
        return int(row[0])

    async def insert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[int]:
        if not rows:
            return []
        ids: list[int] = []
        async with self._conn.cursor() as cur:
            # One round trip for the lot (pipeline mode); one result set per row, in order.
            await cur.executemany(pyformat(f"{sql} RETURNING id"), rows, returning=True)
            while True:
                row = await cur.fetchone()
                if row is None:
                    raise StorageError(f"statement inserted no row: {sql}")
                ids.append(int(row[0]))
                if not cur.nextset():
                    break
        return ids

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self._conn.cursor() as cur:
            await cur.executemany(pyformat(sql), list(rows))

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async with self._conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(pyformat(sql), tuple(params))
            return None if cur.description is None else await cur.fetchone()

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self._conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(pyformat(sql), tuple(params))
            return [] if cur.description is None else list(await cur.fetchall())


class PostgresDatabase:
    """farmbot's state in a PostgreSQL database; implements ``farmbot.storage.db.Database``.

    ``async with PostgresDatabase(url) as db:`` (or ``await db.open()`` and
    ``await db.aclose()``). ``url`` is a libpq URL (``postgresql://user@host/dbname``,
    TLS and other options as query parameters); ``password`` is given apart from it
    when it comes from the vault. ``min_size``/``max_size`` bound the pool;
    ``migrations=None`` means the packaged ones.
    """

    backend = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        password: str | None = None,
        min_size: int = 1,
        max_size: int = 5,
        timeout: float = POOL_TIMEOUT,
        migrations: Sequence[Migration] | None = None,
    ) -> None:
        self._url = url
        # What no message may show; longest first, so that no secret is left half-masked.
        given = [password] if password else []
        self._secrets = sorted({*url_secrets(url), *given}, key=len, reverse=True)
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise StorageError(
                f"not a usable PostgreSQL URL: {self._hide(_describe(exc))}"
            ) from None
        self.where = _where(params)
        self._kwargs: dict[str, Any] = {}
        if password:
            self._kwargs["password"] = password
        if "application_name" not in params:
            self._kwargs["application_name"] = "farmbot"
        if "connect_timeout" not in params:
            self._kwargs["connect_timeout"] = CONNECT_TIMEOUT
        self._min_size = min_size
        self._max_size = max_size
        self._timeout = timeout
        self._migrations = migrations
        self._pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._tx_owners: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        if self._pool is None:
            return f"<PostgresDatabase {self.where!r} closed>"
        stats = self._pool.get_stats()
        return (
            f"<PostgresDatabase {self.where!r} open pool_size={stats.get('pool_size', 0)}"
            f" available={stats.get('pool_available', 0)} max={self._max_size}>"
        )

    # lifecycle ------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Migrate the database, then fill the pool (at least ``min_size`` connections)."""
        if self._pool is not None:
            raise RuntimeError(f"{self!r} is already open")
        await self._migrate()
        pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]]
        pool = psycopg_pool.AsyncConnectionPool(
            self._url,
            kwargs={"autocommit": True, **self._kwargs},
            min_size=self._min_size,
            max_size=self._max_size,
            timeout=self._timeout,
            open=False,
            name="farmbot",
            # A round trip per checkout (~0.05 ms locally) so that a connection the server
            # or the network cut (failover, idle timeout) fails no operation.
            check=psycopg_pool.AsyncConnectionPool.check_connection,
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT * 2)
        except psycopg.Error as exc:
            await pool.close()
            raise self._error(exc, "cannot fill the connection pool") from exc
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def aclose(self) -> None:
        """Close the pool; connections in use close as their operations end (no-op when
        closed)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _migrate(self) -> None:
        migrations = load_migrations("postgresql") if self._migrations is None else self._migrations
        try:
            conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True, **self._kwargs)
        except (psycopg.Error, UnicodeError) as exc:
            raise self._error(exc, "cannot connect") from exc
        try:
            async with conn:  # closed afterwards, which also drops the session's locks
                await conn.execute(f"SET lock_timeout = '{MIGRATION_WAIT:d}s'")
                await apply_postgres_migrations(conn, migrations, self.where)
        except MigrationFailed as exc:
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            raise self._error(cause, f"migration {exc.label} failed") from cause
        except psycopg.errors.LockNotAvailable as exc:
            raise StorageError(
                f"{self.where}: another farmbot has been migrating this database for"
                f" {MIGRATION_WAIT} s; try again once it has started"
            ) from exc
        except (psycopg.Error, UnicodeError) as exc:
            raise self._error(exc, "cannot migrate") from exc

    # errors ---------------------------------------------------------------------------
    def _hide(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, HIDDEN)
        return text

    def _error(self, exc: BaseException, doing: str = "") -> StorageError:
        what = f"{doing}: " if doing else ""
        return StorageError(f"{self.where}: {what}{self._hide(_describe(exc))}")

    # statements -----------------------------------------------------------------------
    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection for one operation; translate database errors."""
        if asyncio.current_task() in self._tx_owners:
            # Not a deadlock as with SQLite's one connection, but as wrong: the statement
            # would run outside the transaction, on another connection.
            raise RuntimeError("a statement outside the transaction inside it; use tx")
        pool = self._pool
        if pool is None:
            raise StorageError(f"{self.where}: store is not open")
        try:
            async with pool.connection() as conn:
                yield conn
        except (psycopg.Error, UnicodeError) as exc:
            # UnicodeError: text no database can hold, such as a lone surrogate.
            raise self._error(exc) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTx]:
        """Run several statements atomically: ``async with db.transaction() as tx:``.

        The block holds a connection and farmbot's write lock, so keep it short and run
        SQL only through ``tx``; a statement through the database itself inside it
        raises RuntimeError.
        """
        async with self._connection() as conn:
            task = asyncio.current_task()
            if task is not None:
                self._tx_owners.add(task)
            try:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                    yield PostgresTx(conn)
            finally:
                if task is not None:
                    self._tx_owners.discard(task)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._connection() as conn:
            return await PostgresTx(conn).execute(sql, params)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async with self._connection() as conn:
            return await PostgresTx(conn).fetchone(sql, params)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self._connection() as conn:
            return await PostgresTx(conn).fetchall(sql, params)

    async def ping(self) -> None:
        await self.fetchone("SELECT 1")

    async def schema_version(self) -> int:
        async with self._connection() as conn:
            return await postgres_version(conn)

    async def session(self, purpose: str) -> PostgresSession:
        """A dedicated connection outside the pool (``OpensSessions``); close it after."""
        if self._pool is None:
            raise StorageError(f"{self.where}: store is not open")
        return await connect_session(self._url, self._kwargs, purpose, self.where, self._error)


def _describe(exc: BaseException) -> str:
    """The driver's message on one line: the server's primary message when there is one
    (its DETAIL may quote row values), else everything libpq said."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None)
    text = primary or str(exc) or type(exc).__name__
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _where(params: dict[str, Any]) -> str:
    """How messages name the database: ``postgresql://user@host:port/dbname`` (several
    hosts as ``host1:port1,host2:port2``; a socket directory as ``?host=``)."""
    user = f"{params['user']}@" if params.get("user") else ""
    hosts = str(params.get("host", "")).split(",")
    ports = str(params.get("port", "")).split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)  # one port for every host, as libpq reads it
    dbname = params.get("dbname", "")
    if len(hosts) == 1 and hosts[0].startswith("/"):
        port = f":{ports[0]}" if ports[0] else ""
        return f"postgresql://{user}{port}/{dbname}?host={hosts[0]}"
    pairs = ",".join(f"{h}:{p}" if p else h for h, p in zip(hosts, ports, strict=False))
    return f"postgresql://{user}{pairs}/{dbname}"
