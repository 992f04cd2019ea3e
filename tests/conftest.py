"""Shared fixtures: a private tmux server per test, reaped afterwards; the storage
backends, each test on a fresh database (SQLite file, or PostgreSQL database in a
throwaway cluster started once per session)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import libtmux
import pytest

from farmbot.models import AgentKind
from tests.backends import Backend, PostgresBackend, SqliteBackend
from tests.farm import Farm, farm_for, make_config
from tests.helpers import FakeClock
from tests.pgcluster import Cluster, find_bindir, start_cluster

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session", autouse=True)
def hermetic_shell() -> Iterator[str]:
    """``$SHELL`` (what a shell agent runs) is bash without the machine's rc files.

    A user's ``~/.bashrc`` is theirs to run, not the tests': one that hangs (pyenv's
    rehash waits a minute on a lock a killed shell left behind) or prints would make a
    shell agent's prompt arrive late or look different, and tests flaky on one machine.
    The wrapper is readable by everyone: an agent may run as another user (run_as).
    """
    bash = shutil.which("bash")
    if bash is None:
        pytest.fail("bash is not installed")
    home = Path(tempfile.mkdtemp(prefix="farmbot-shell-"))
    home.chmod(0o755)
    wrapper = home / "bash"
    wrapper.write_text(f'#!/bin/sh\nexec {bash} --norc --noprofile "$@"\n')
    wrapper.chmod(0o755)
    before = os.environ.get("SHELL")
    os.environ["SHELL"] = str(wrapper)
    yield str(wrapper)
    if before is None:
        os.environ.pop("SHELL", None)
    else:
        os.environ["SHELL"] = before
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def tmux_socket() -> Iterator[str]:
    """A fresh tmux socket name; whatever server runs on it is killed after the test."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (apt-get install tmux)")
    name = f"farmbot-test-{uuid.uuid4().hex[:10]}"
    yield name
    server = libtmux.Server(socket_name=name)
    if server.is_alive():
        server.kill()
    # tmux 3.3 leaves the socket file behind after kill-server.
    socket_dir = Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}"
    (socket_dir / name).unlink(missing_ok=True)


@pytest.fixture
def sockets() -> Iterator[dict[str, str]]:
    """A tmux socket per node of a two-node farm (tests/nodes.py); their servers are
    killed after the test."""
    names = {node: f"farmbot-test-{node}-{uuid.uuid4().hex[:8]}" for node in "ab"}
    yield names
    socket_dir = Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}"
    for name in names.values():
        server = libtmux.Server(socket_name=name)
        if server.is_alive():
            server.kill()
        (socket_dir / name).unlink(missing_ok=True)


@pytest.fixture
def tmux_server(tmux_socket: str) -> libtmux.Server:
    """A libtmux Server on the test's private socket."""
    return libtmux.Server(socket_name=tmux_socket)


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock starting now (stored times stay realistic)."""
    return FakeClock(start=time.time())


@pytest.fixture
async def architect(tmp_path: Path, tmux_socket: str, clock: FakeClock) -> AsyncIterator[Farm]:
    """A farm on the fake clock whose demo-agent architect is up and idle."""
    async with farm_for(make_config(tmp_path, tmux_socket), tmp_path, clock) as farm:
        await farm.supervisor.spawn(AgentKind.ARCHITECT, None, None, "alice")
        await farm.until_idle("architect")
        yield farm


# -- storage backends -----------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster for the whole session, deleted at its end.

    Without PostgreSQL binaries the PostgreSQL cases are skipped, except under CI=true,
    where they fail: CI installs PostgreSQL (.ci/run) and must test it.
    """
    bindir = find_bindir()
    if bindir is None:
        why = (
            "PostgreSQL binaries not found (apt-get install postgresql, or set"
            " FARMBOT_PG_BINDIR to the directory holding initdb and pg_ctl)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}; CI must run the PostgreSQL tests")
        pytest.skip(f"{why}; CI=true makes this a failure")
    cluster = start_cluster(bindir)
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_backend(pg_cluster: Cluster) -> Iterator[PostgresBackend]:
    """A fresh, empty PostgreSQL database, dropped after the test."""
    name = pg_cluster.create_database()
    yield PostgresBackend(pg_cluster.url(name), name)
    pg_cluster.drop_database(name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each storage backend in turn, on a fresh database (ids: sqlite, postgresql)."""
    if request.param == "sqlite":
        return SqliteBackend(tmp_path / "farmbot.db")
    found: PostgresBackend = request.getfixturevalue("pg_backend")
    return found
