"""The storage backends as the tests see them: one place (a SQLite file, a PostgreSQL
database) that a test opens, reopens, and looks into directly.

Tests that take the ``backend`` fixture (tests/conftest.py) run once per backend, with
ids ``sqlite`` and ``postgresql``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg

from farmbot.config.storage import StorageConfig
from farmbot.storage import Storage
from farmbot.storage.migrate import Migration, load_migrations
from farmbot.storage.postgres import PostgresDatabase
from farmbot.storage.sqlite import SqliteDatabase

AnyDatabase = SqliteDatabase | PostgresDatabase


class Backend:
    """A database place for one test; subclasses say how to reach and inspect it."""

    name: str

    @property
    def where(self) -> str:
        """How farmbot's messages name this database."""
        raise NotImplementedError

    def database(self, migrations: Sequence[Migration] | None = None) -> AnyDatabase:
        """A new, unopened ``Database`` on this place."""
        raise NotImplementedError

    @asynccontextmanager
    async def open(self, migrations: Sequence[Migration] | None = None) -> AsyncIterator[Storage]:
        """Open (and migrate) the database; every repository over it."""
        async with self.database(migrations) as db:
            yield Storage.over(db)

    def migrations(self) -> list[Migration]:
        """The packaged migrations of this backend."""
        return load_migrations(self.name)

    def storage_config(self) -> StorageConfig:
        """``[storage]`` for a graph on this place (the state_dir's file for SQLite)."""
        raise NotImplementedError

    # looking in directly, not through farmbot ------------------------------------------
    def tables(self) -> set[str]:
        raise NotImplementedError

    def version(self) -> int:
        raise NotImplementedError

    def run(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a script directly; the rows of its last statement."""
        raise NotImplementedError


class SqliteBackend(Backend):
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def where(self) -> str:
        return str(self.path)

    def database(self, migrations: Sequence[Migration] | None = None) -> SqliteDatabase:
        return SqliteDatabase(self.path, migrations)

    def storage_config(self) -> StorageConfig:
        return StorageConfig()

    def tables(self) -> set[str]:
        rows = self.run("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(name) for (name,) in rows} - {"sqlite_sequence"}

    def version(self) -> int:
        return int(self.run("PRAGMA user_version")[0][0])

    def run(self, sql: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            *script, last = [s for s in sql.split(";") if s.strip()]
            for statement in script:
                conn.execute(statement)
            return conn.execute(last).fetchall()
        finally:
            conn.close()


class PostgresBackend(Backend):
    name = "postgresql"

    def __init__(self, url: str, dbname: str) -> None:
        self.url = url
        self.dbname = dbname

    @property
    def where(self) -> str:
        return PostgresDatabase(self.url).where

    def database(self, migrations: Sequence[Migration] | None = None) -> PostgresDatabase:
        return PostgresDatabase(self.url, migrations=migrations, max_size=4)

    def storage_config(self) -> StorageConfig:
        return StorageConfig(url=self.url, pool_max=4)

    def tables(self) -> set[str]:
        rows = self.run(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        return {str(name) for (name,) in rows} - {"schema_migrations"}

    def version(self) -> int:
        if not self.run("SELECT to_regclass('schema_migrations') IS NOT NULL")[0][0]:
            return 0
        return int(self.run("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")[0][0])

    def run(self, sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(sql)  # no parameters: a script of several statements may run
            while cur.nextset():
                pass  # to the last statement's result
            rows: list[tuple[Any, ...]] = cur.fetchall() if cur.description else []
            return rows
