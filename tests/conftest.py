"""Shared fixtures: a private tmux server per test, reaped afterwards."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import libtmux
import pytest


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


@pytest.fixture
def tmux_server(tmux_socket: str) -> libtmux.Server:
    """A libtmux Server on the test's private socket."""
    return libtmux.Server(socket_name=tmux_socket)
