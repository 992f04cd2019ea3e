"""Shared fixtures: a private tmux server per test, reaped afterwards."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import libtmux
import pytest

from farmbot.models import AgentKind
from tests.farm import Farm, farm_for, make_config
from tests.helpers import FakeClock


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
