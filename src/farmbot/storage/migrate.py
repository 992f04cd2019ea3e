"""Forward-only schema migrations.

A migration is a file ``NNNN_name.sql`` in ``migrations/<backend>/`` next to this module
(package data); each backend has its own numbered files, written in its dialect.

SQLite records the version it is at in ``PRAGMA user_version``; ``apply_migrations``
brings it up to the newest migration, each one in its own transaction together with its
version bump, so a migration that fails leaves the database exactly as it was before
that migration.

Migration files must not contain transaction control (``BEGIN``/``COMMIT``) or
``PRAGMA foreign_keys``: they run inside a transaction that this module owns, with
foreign keys off (SQLite's recommended setting for table rebuilds). Dangling foreign
keys are checked before each commit.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from farmbot.errors import SchemaTooNewError, StorageError

_FILENAME = re.compile(r"^(\d{4})_(\w+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema change."""

    version: int
    name: str
    sql: str


def load_migrations(backend: str = "sqlite", package: str = "farmbot.storage") -> list[Migration]:
    """Read a backend's ``NNNN_name.sql`` files, sorted by version."""
    found: list[Migration] = []
    for entry in (resources.files(package) / "migrations" / backend).iterdir():
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
    newest = ordered[-1].version if ordered else 0
    version = user_version(conn)
    if version > newest:
        raise SchemaTooNewError(
            f"{database_file(conn)}: database schema version {version} is newer than "
            f"this farmbot knows ({newest}); upgrade farmbot"
        )
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


def _check_versions(migrations: Sequence[Migration]) -> None:
    seen: set[int] = set()
    for migration in migrations:
        if migration.version < 1 or migration.version in seen:
            raise StorageError(
                f"migration {migration.version:04d}_{migration.name}: "
                "versions must be unique and start at 1"
            )
        seen.add(migration.version)
