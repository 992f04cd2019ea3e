"""`farmbot backup`: a consistent copy of a WAL database that is being written to."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from farmbot.errors import StorageError
from farmbot.storage.backup import backup

# Every transaction adds one row to each table: a consistent copy has as many in both.
WRITER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode = WAL")
db.execute("CREATE TABLE IF NOT EXISTS a (n INTEGER, pad TEXT)")
db.execute("CREATE TABLE IF NOT EXISTS b (n INTEGER, pad TEXT)")
print("ready", flush=True)
n = 0
while True:
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO a VALUES (?, ?)", (n, "x" * 300))
    db.execute("INSERT INTO b VALUES (?, ?)", (n, "y" * 300))
    db.execute("COMMIT")
    n += 1
"""


def farmbot_backup(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARMBOT_")}
    return subprocess.run(
        [sys.executable, "-m", "farmbot", "--config", str(config), "backup", *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


def counts(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as db:
        (a,) = db.execute("SELECT count(*) FROM a").fetchone()
        (b,) = db.execute("SELECT count(*) FROM b").fetchone()
    return a, b


def test_backups_of_a_database_under_concurrent_writes_are_consistent(tmp_path: Path) -> None:
    config = tmp_path / "farmbot.toml"
    config.write_text('[server]\nstate_dir = "state"\n')
    (tmp_path / "state").mkdir()
    db = tmp_path / "state" / "farmbot.db"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == b"ready\n"
        seen = []
        for i in range(4):
            time.sleep(0.2)
            target = tmp_path / "backups" / f"copy-{i}.db"
            target.parent.mkdir(exist_ok=True)
            done = farmbot_backup(config, str(target))
            assert done.returncode == 0, done.stderr
            assert done.stdout.startswith(f"wrote {target} (")
            assert stat.S_IMODE(target.stat().st_mode) == 0o600
            assert not target.with_name(target.name + "-wal").exists()  # one self-contained file
            with sqlite3.connect(target) as copy:
                assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
                assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
            a, b = counts(target)
            assert a == b > 0, "the copy holds half a transaction"
            seen.append(a)
        assert writer.poll() is None, "the writer was stopped by a backup"
        assert seen == sorted(seen) and seen[-1] > seen[0], seen
        assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == [
            f"copy-{i}.db" for i in range(4)
        ]  # no temp file left behind
    finally:
        writer.kill()
        writer.communicate()


def test_backup_refuses_to_overwrite_and_names_a_missing_database(tmp_path: Path) -> None:
    config = tmp_path / "farmbot.toml"
    config.write_text('[server]\nstate_dir = "state"\n')
    db = tmp_path / "state" / "farmbot.db"
    done = farmbot_backup(config, str(tmp_path / "x.db"))
    assert (done.returncode, done.stderr) == (
        1,
        f"farmbot: no database at {db} (has farmbot run with this state_dir?)\n",
    )
    db.parent.mkdir()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE a (n INTEGER)")
        conn.execute("CREATE TABLE b (n INTEGER)")
    (tmp_path / "x.db").write_text("mine")
    done = farmbot_backup(config, str(tmp_path / "x.db"))
    assert (done.returncode, done.stderr) == (
        1,
        f"farmbot: {tmp_path / 'x.db'} already exists; use --force to replace it\n",
    )
    assert farmbot_backup(config, str(tmp_path / "x.db"), "--force").returncode == 0
    assert counts(tmp_path / "x.db") == (0, 0)
    (tmp_path / "dir").mkdir()
    assert farmbot_backup(config, str(tmp_path / "dir")).returncode == 0
    [dated] = (tmp_path / "dir").iterdir()
    assert dated.name.startswith("farmbot-") and dated.suffix == ".db"
    with pytest.raises(StorageError, match="is the database itself"):
        backup(db, db, force=True)
    done = farmbot_backup(config, str(tmp_path / "x.db" / "nested.db"))
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr


def test_backup_says_to_use_pg_dump_when_the_state_is_in_postgresql(tmp_path: Path) -> None:
    config = tmp_path / "farmbot.toml"
    config.write_text('[server]\nstate_dir = "state"\n[storage]\nurl = "vault:pg"\n')
    (tmp_path / "state").mkdir()  # a farmbot.db left from before the move is not the state
    sqlite3.connect(tmp_path / "state" / "farmbot.db").close()
    done = farmbot_backup(config, str(tmp_path / "x.db"))
    assert done.returncode == 1 and "pg_dump" in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1 and not (tmp_path / "x.db").exists()
