"""Forward-only schema migrations.

A migration is a file ``NNNN_name.sql`` in ``migrations/<backend>/`` next to this module
(package data); each backend has its own numbered files, written in its dialect, and the
same version means the same schema (same tables, columns and indexes) on both.

Each migration runs in its own transaction together with its version bump, so a
migration that fails leaves the database exactly as it was before that migration. A
database newer than every migration is refused (``SchemaTooNewError``) before anything
is written.

- SQLite records its version in ``PRAGMA user_version``; ``apply_migrations`` runs each
  migration inside ``BEGIN IMMEDIATE`` (which also keeps two processes from migrating
  at once), with foreign keys off (SQLite's recommended setting for table rebuilds) and
  dangling foreign keys checked before each commit.
- PostgreSQL records one row per applied migration in ``schema_migrations``;
  ``apply_postgres_migrations`` holds a session advisory lock while it reads the version
  and migrates, so nodes started at once migrate one after the other (the later ones
  find nothing left to do).

Migration files must not contain transaction control (``BEGIN``/``COMMIT``) or, for
SQLite, ``PRAGMA foreign_keys``: they run inside a transaction that this module owns.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farmbot.errors import SchemaTooNewError, StorageError

if TYPE_CHECKING:  # the driver is imported by storage/postgres.py, only when configured
    import psycopg

_FILENAME = re.compile(r"^(\d{4})_(\w+)\.sql$")
# PostgreSQL: the table of applied migrations, and the advisory lock held while migrating.
VERSION_TABLE = "schema_migrations"
MIGRATION_LOCK = 0x6661726D626F7401  # b"farmbot" + 1; storage/postgres.py lists the others
MIGRATIONS = Path(__file__).with_name("migrations")  # package data: a folder per backend


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema change."""

    version: int
    name: str
    sql: str


def load_migrations(backend: str = "sqlite") -> list[Migration]:
    """Read a backend's ``NNNN_name.sql`` files, sorted by version."""
    found: list[Migration] = []
    # The files next to this module, read as plain files: farmbot is installed unzipped,
    # and importlib.resources would import zipfile (its readers) on every start for it.
    for entry in (MIGRATIONS / backend).iterdir():
        match = _FILENAME.match(entry.name)
        if match is None or not entry.is_file():
            continue
        sql = entry.read_text(encoding="utf-8")
        found.append(Migration(int(match.group(1)), match.group(2), sql))
    found.sort(key=lambda m: m.version)
    _check_versions(found)
    return found


def apply_migrations(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> int:
    """Bring the database up to the newest migration; return the version it is then at.

    ``conn`` must be in autocommit mode (``isolation_level=None``) with no open
    transaction. Raises ``SchemaTooNewError`` without writing anything when the database
    is newer than every migration, and ``StorageError`` when a migration fails (that
    migration is rolled back; earlier ones stay applied).
    """
    ordered = sorted(migrations, key=lambda m: m.version)
    _check_versions(ordered)
    if conn.in_transaction:
        raise StorageError(f"{database_file(conn)}: cannot migrate inside an open transaction")
    version = user_version(conn)
    refuse_newer(database_file(conn), version, ordered)
    for migration in ordered:
        if migration.version > version:
            version = _apply_one(conn, migration)
    return version


def user_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database header."""
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def database_file(conn: sqlite3.Connection) -> str:
    """The file name of the connection's main database (``:memory:`` when it has none)."""
    for _seq, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return str(file) or ":memory:"
    return ":memory:"


def split_statements(sql: str) -> list[str]:
    """Split a script into single statements (honours quotes, comments and triggers)."""
    statements: list[str] = []
    start = 0
    for index, char in enumerate(sql):
        if char == ";" and sqlite3.complete_statement(sql[start : index + 1]):
            statements.append(sql[start : index + 1].strip())
            start = index + 1
    rest = sql[start:].strip()
    if rest:
        statements.append(rest)  # no final semicolon, or only a trailing comment
    return statements


def _apply_one(conn: sqlite3.Connection, migration: Migration) -> int:
    # executescript() would COMMIT the open transaction first, so the statements are
    # executed one by one inside a transaction this function owns.
    label = f"{migration.version:04d}_{migration.name}"
    try:
        conn.execute("BEGIN IMMEDIATE")
        # Another process may have migrated while we waited for the write lock.
        current = user_version(conn)
        if current >= migration.version:
            conn.execute("ROLLBACK")
            return current
        for statement in split_statements(migration.sql):
            conn.execute(statement)
        dangling = conn.execute("PRAGMA foreign_key_check").fetchone()
        if dangling is not None:
            raise StorageError(
                f"{database_file(conn)}: migration {label} left a dangling foreign key "
                f"in table {dangling[0]!r}"
            )
        conn.execute(f"PRAGMA user_version = {migration.version:d}")
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        conn.rollback()
        raise StorageError(f"{database_file(conn)}: migration {label} failed: {exc}") from exc
    except BaseException:
        conn.rollback()
        raise
    return migration.version


def refuse_newer(where: str, version: int, migrations: Sequence[Migration]) -> None:
    """Raise ``SchemaTooNewError`` when ``version`` is newer than every migration."""
    newest = max((m.version for m in migrations), default=0)
    if version > newest:
        raise SchemaTooNewError(
            f"{where}: database schema version {version} is newer than "
            f"this farmbot knows ({newest}); upgrade farmbot"
        )


async def apply_postgres_migrations(
    conn: psycopg.AsyncConnection[Any], migrations: Sequence[Migration], where: str
) -> int:
    """Bring a PostgreSQL database up to the newest migration; return its version then.

    ``conn`` must be in autocommit mode. The advisory lock ``MIGRATION_LOCK`` is held from
    before the version is read until the last migration commits; the version table is
    created by the first migration's transaction. Driver errors propagate (the caller
    translates them); a failed migration is rolled back, earlier ones stay applied.
    """
    ordered = sorted(migrations, key=lambda m: m.version)
    _check_versions(ordered)
    await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        version = await postgres_version(conn)
        refuse_newer(where, version, ordered)
        for migration in ordered:
            if migration.version <= version:
                continue
            label = f"{migration.version:04d}_{migration.name}"
            try:
                async with conn.transaction():
                    await conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} ("
                        " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                        " applied_at DOUBLE PRECISION NOT NULL)"
                    )
                    await conn.execute(migration.sql)  # no parameters: one script
                    await conn.execute(
                        f"INSERT INTO {VERSION_TABLE} (version, name, applied_at)"
                        " VALUES (%s, %s, %s)",
                        (migration.version, migration.name, time.time()),
                    )
            except Exception as exc:
                # Named here because only here is the migration known; the caller adds
                # the driver's message when it translates the cause.
                raise MigrationFailed(label) from exc
            version = migration.version
    finally:
        if not conn.closed and not conn.broken:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return version


class MigrationFailed(Exception):
    """A PostgreSQL migration failed; ``__cause__`` is the driver's error.

    Never leaves storage/: storage/postgres.py translates it into ``StorageError``.
    """

    def __init__(self, label: str) -> None:
        super().__init__(f"migration {label} failed")
        self.label = label


async def postgres_version(conn: psycopg.AsyncConnection[Any]) -> int:
    """The newest migration applied to a PostgreSQL database (0 for an empty one)."""
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (VERSION_TABLE,))
    found = await cur.fetchone()
    if found is None or not found[0]:
        return 0
    cur = await conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {VERSION_TABLE}")
    row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


def _check_versions(migrations: Sequence[Migration]) -> None:
    seen: set[int] = set()
    for migration in migrations:
        if migration.version < 1 or migration.version in seen:
            raise StorageError(
                f"migration {migration.version:04d}_{migration.name}: "
                "versions must be unique and start at 1"
            )
        seen.add(migration.version)
