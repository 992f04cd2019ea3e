"""A throwaway PostgreSQL cluster for the tests and the benchmarks: initdb + pg_ctl.

The cluster lives in a fresh directory under the system's temp directory, listens on
127.0.0.1 on a free port (and on a socket in its directory), and has one superuser,
``farmbot``, who logs in with a password (scram-sha-256), so the tests go through
password authentication as a deployment does. Its databases sort text by ICU's en-US
collation where PostgreSQL has ICU, as servers set up with a locale do. ``stop()`` shuts
it down and deletes it.

PostgreSQL refuses to run as root. As root (CI runs so), the cluster's directory belongs
to an unprivileged user, ``postgres`` (which Debian's postgresql package creates) or else
``nobody``, and initdb/pg_ctl run as that user through ``runuser``.

Binaries: ``$FARMBOT_PG_BINDIR``, else initdb on ``$PATH``, else the newest
``/usr/lib/postgresql/*/bin`` (Debian puts them there, off ``$PATH``).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg

SUPERUSER = "farmbot"
RUN_AS = ("postgres", "nobody")  # who owns the cluster when we are root
FAST = ("-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off")
ICU = ("--locale=C", "--locale-provider=icu", "--icu-locale=en-US")  # PostgreSQL 15+


def find_bindir() -> Path | None:
    """Where initdb and pg_ctl are, or None."""
    configured = os.environ.get("FARMBOT_PG_BINDIR")
    if configured:
        return Path(configured)
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """A running cluster; ``url(dbname)`` connects as its superuser."""

    root: Path
    bindir: Path
    port: int
    password: str
    owner: str | None  # the user it runs as, when we are root

    def url(self, dbname: str = "postgres", *, password: bool = True) -> str:
        secret = f":{self.password}" if password else ""
        return f"postgresql://{SUPERUSER}{secret}@127.0.0.1:{self.port}/{dbname}"

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url(dbname), autocommit=True)

    def create_database(self) -> str:
        """A new, empty database; returns its name."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Shut the server down and delete the cluster."""
        try:
            self.stop_server()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def stop_server(self) -> None:
        """Shut the server down, keeping its data (``start_server`` brings it back)."""
        _run(self.owner, [self.bindir / "pg_ctl", "-D", self.root / "data", "-m", "fast",
                          "-w", "stop"])  # fmt: skip

    def start_server(self, settings: tuple[str, ...] = FAST) -> None:
        _start(self.owner, self.bindir, self.root, self.port, settings, check=True)


def start_cluster(bindir: Path, *, settings: tuple[str, ...] = FAST) -> Cluster:
    """initdb a cluster in a new temp directory and start it; ``settings`` are postgres
    ``-c`` options (the default trades durability for speed: a test cluster is thrown
    away)."""
    owner = _owner() if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="farmbot-pg-"))
    password = secrets.token_urlsafe(16)
    try:
        (root / "sock").mkdir()
        pwfile = root / "pw"
        pwfile.write_text(password + "\n")
        if owner is not None:
            for path in (root, root / "sock", pwfile):
                shutil.chown(path, owner, _group(owner))
        data = root / "data"
        initdb: list[str | Path] = [bindir / "initdb", "-D", data, "-U", SUPERUSER]
        initdb += [f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"]
        # A linguistic collation, as servers usually have, so that a query sorting text
        # differently from SQLite's byte order shows; plain C where there is no ICU.
        if _run(owner, [*initdb, *ICU], check=False).returncode != 0:
            shutil.rmtree(data, ignore_errors=True)
            _run(owner, [*initdb, "--no-locale"])
        pwfile.unlink()
        for _attempt in range(3):  # another process may take the free port first
            port = free_port()
            started = _start(owner, bindir, root, port, settings, check=False)
            if started.returncode == 0:
                return Cluster(root, bindir, port, password, owner)
        log = (root / "log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"PostgreSQL did not start in {root}:\n{started.stderr}\n{log}")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _start(
    owner: str | None,
    bindir: Path,
    root: Path,
    port: int,
    settings: tuple[str, ...],
    *,
    check: bool,
) -> subprocess.CompletedProcess[str]:
    options = " ".join(
        [f"-p {port}", f"-k {root / 'sock'}", "-c listen_addresses=127.0.0.1", *settings]
    )
    command: list[str | Path] = [bindir / "pg_ctl", "-D", root / "data", "-l", root / "log"]
    command += ["-w", "-t", "60", "-o", options, "start"]
    return _run(owner, command, check=check)


def _owner() -> str:
    for name in RUN_AS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError(f"running as root and none of the users {RUN_AS} exists to run PostgreSQL")


def _group(user: str) -> int:
    return pwd.getpwnam(user).pw_gid


def _run(
    owner: str | None, command: list[str | Path], *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    argv = [str(part) for part in command]
    if owner is not None:
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        argv = [runuser, "-u", owner, "--", *argv]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
        cwd="/",  # the owner may not be allowed into our working directory
        timeout=120,
        check=False,
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return done
