"""``farmbot backup``: a consistent copy of the database while the daemon runs.

SQLite's online backup API copies every page within one read transaction: in WAL mode
that is a snapshot, and the daemon's writers are not blocked while it is taken. The copy
is switched out of WAL mode (one self-contained file), checked, then moved into place
atomically (temp file, fsync, rename, directory fsync) with mode 0600.

Restore: stop farmbot, copy the backup to ``state_dir/farmbot.db``, delete any
``farmbot.db-wal`` and ``farmbot.db-shm`` next to it, start farmbot.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from farmbot.errors import StorageError

BUSY_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Backup:
    path: Path
    bytes: int


def backup(database: Path, target: Path, *, force: bool = False) -> Backup:
    """Copy ``database`` to ``target`` (a file, or a directory to put a dated file in)."""
    if not database.is_file():
        raise StorageError(f"no database at {database} (has farmbot run with this state_dir?)")
    if target.is_dir():
        target = target / time.strftime("farmbot-%Y%m%d-%H%M%S.db")
    if target.exists() and not force:
        raise StorageError(f"{target} already exists; use --force to replace it")
    if target.exists() and target.resolve() == database.resolve():
        raise StorageError(f"{target} is the database itself")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        _copy(database, tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except OSError as exc:
        raise StorageError(f"cannot write {exc.filename or target}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return Backup(target, target.stat().st_size)


def _copy(database: Path, target: Path) -> None:
    source = dest = None
    try:
        source = sqlite3.connect(database, timeout=BUSY_TIMEOUT, isolation_level=None)
        dest = sqlite3.connect(target, isolation_level=None)
        source.backup(dest)  # all pages in one step: one snapshot of the source
        dest.execute("PRAGMA journal_mode = DELETE")  # the copy: one file, no -wal beside it
        (check,) = dest.execute("PRAGMA quick_check").fetchone()
        if check != "ok":
            raise StorageError(f"the copy of {database} failed its check: {check}")
    except sqlite3.Error as exc:
        raise StorageError(f"backup of {database} failed: {exc}") from None
    finally:
        for conn in (dest, source):
            if conn is not None:
                conn.close()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
