"""The embedded backend: one aiosqlite connection to a SQLite file in WAL mode.

One connection means one writer. An ``asyncio.Lock`` serializes operations on it, so a
transaction opened by one coroutine never swallows another's statements. The connection
runs in autocommit mode; single statements commit on their own and ``transaction()``
wraps several in ``BEGIN IMMEDIATE`` ... ``COMMIT``.

Every ``sqlite3``/``aiosqlite`` error is translated here into ``StorageError``. The file
and its WAL are created with mode 0600. Requires SQLite 3.35 or newer (``RETURNING``).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import aiosqlite

from farmbot.errors import StorageError
from farmbot.storage.db import Row
from farmbot.storage.migrate import (
    Migration,
    apply_migrations,
    load_migrations,
    refuse_newer,
    user_version,
)

__all__ = ["SqliteDatabase"]

BUSY_TIMEOUT_MS = 5000
SIDE = ("-wal", "-shm", "-journal")  # the files SQLite keeps next to a database


def _owner_only(path: Path) -> None:
    """chmod 0600 unless it is already (a missing file is fine)."""
    try:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    except FileNotFoundError:
        pass


class SqliteTx:
    """Statements on the store's connection (inside a transaction, or autocommit)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = await self._conn.execute(sql, params)
        return cursor.rowcount

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        rows = await self._conn.execute_fetchall(sql, params)
        row = next(iter(rows), None)
        if row is None:
            raise StorageError(f"statement inserted no row: {sql}")
        return int(row[0])

    async def insert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[int]:
        if not rows:
            return []
        await self._conn.executemany(sql, rows)
        # Consecutive ids: inside BEGIN IMMEDIATE no other writer takes ids in between.
        found = await self._conn.execute_fetchall("SELECT last_insert_rowid()")
        last = int(next(iter(found))[0])
        return list(range(last - len(rows) + 1, last + 1))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, rows)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = await self._conn.execute_fetchall(sql, params)
        return cast("Row | None", next(iter(rows), None))  # sqlite3.Row reads by name

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return cast("list[Row]", list(await self._conn.execute_fetchall(sql, params)))


class SqliteDatabase:
    """farmbot's state in a SQLite file; implements ``farmbot.storage.db.Database``.

    ``async with SqliteDatabase(path) as db:`` (or ``await db.open()`` and
    ``await db.aclose()``). Opening creates the parent directory, applies the migrations
    (``None`` means the packaged ones) and switches the file to WAL.
    """

    backend = "sqlite"

    def __init__(
        self, path: str | os.PathLike[str], migrations: Sequence[Migration] | None = None
    ) -> None:
        self.path = Path(path)
        self._migrations = migrations
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._tx_owner: asyncio.Task[Any] | None = None

    def __repr__(self) -> str:
        state = "open" if self._conn is not None else "closed"
        return f"<SqliteDatabase {str(self.path)!r} {state}>"

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
        """Migrate the database and connect to it."""
        if self._conn is not None:
            raise RuntimeError(f"{self!r} is already open")
        await asyncio.to_thread(self._migrate)
        conn = aiosqlite.connect(self.path, isolation_level=None)
        try:
            await conn
            conn.row_factory = sqlite3.Row
            await conn.executescript(  # one trip to the connection's thread, not three
                "PRAGMA foreign_keys = ON;"
                f" PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d};"
                " PRAGMA synchronous = NORMAL;"
            )
        except sqlite3.Error as exc:
            await conn.close()
            raise self._error(exc) from exc
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def aclose(self) -> None:
        """Close the connection once the operation in progress ends (no-op when closed)."""
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is None:
                return
            try:
                await conn.close()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def _migrate(self) -> None:
        # Runs in a worker thread (it reads package files and the disk) on a short-lived
        # connection of its own, before the store's connection exists. The version is
        # checked before anything is written, so a database from a newer farmbot is left
        # untouched.
        migrations = load_migrations() if self._migrations is None else self._migrations
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # The database holds prompts, audit rows and chat ids: owner-only, like its WAL
            # and shared-memory files, which SQLite creates with the database's mode. Files
            # an older farmbot made with the umask's mode (0644) are tightened.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            for file in (self.path, *(self.path.with_name(self.path.name + s) for s in SIDE)):
                _owner_only(file)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot create the database: {exc}") from exc
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
            refuse_newer(str(self.path), user_version(conn), migrations)  # before any write
            # WAL before migrating, and synchronous NORMAL as on the store's connection:
            # each migration's commit appends to the WAL instead of writing, syncing and
            # deleting a rollback journal (a fresh database's migrations took 3x as long).
            # A crash may lose the last commits, never half of one: a lost migration is
            # applied again at the next start, its version bump lost with it.
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StorageError(f"{self.path}: cannot switch to WAL (journal mode {mode})")
            conn.execute("PRAGMA synchronous = NORMAL")
            apply_migrations(conn, migrations)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        finally:
            conn.close()

    def _error(self, exc: sqlite3.Error | UnicodeError) -> StorageError:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
            return StorageError(f"{self.path}: not a SQLite database")
        return StorageError(f"{self.path}: {exc}")

    # statements -----------------------------------------------------------------------
    @asynccontextmanager
    async def _locked(self) -> AsyncIterator[aiosqlite.Connection]:
        """Hold the connection exclusively; translate database errors."""
        if self._tx_owner is not None and self._tx_owner is asyncio.current_task():
            raise RuntimeError("a statement outside the transaction inside it; use tx")
        async with self._lock:
            conn = self._conn
            if conn is None:
                raise StorageError(f"{self.path}: store is not open")
            try:
                yield conn
            except (sqlite3.Error, UnicodeError) as exc:
                # UnicodeError: text no database can hold, such as a lone surrogate.
                raise self._error(exc) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteTx]:
        """Run several statements atomically: ``async with db.transaction() as tx:``.

        The block holds the only connection, so keep it short and run SQL only through
        ``tx``; a statement through the database itself inside it raises RuntimeError.
        """
        async with self._locked() as conn:
            self._tx_owner = asyncio.current_task()
            try:
                await conn.execute("BEGIN IMMEDIATE")
                yield SqliteTx(conn)
                await conn.execute("COMMIT")
            except BaseException:
                # Queued behind the failed statement, so it runs before anyone's next one.
                await conn.rollback()
                raise
            finally:
                self._tx_owner = None

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._locked() as conn:
            return await SqliteTx(conn).execute(sql, params)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async with self._locked() as conn:
            return await SqliteTx(conn).fetchone(sql, params)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self._locked() as conn:
            return await SqliteTx(conn).fetchall(sql, params)

    async def ping(self) -> None:
        await self.fetchone("SELECT 1")

    async def schema_version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        assert row is not None
        return int(row["user_version"])
