"""The CLI's local commands, and systemd's notify protocol over a real socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from farmbot import systemd


def farmbot(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HOME=str(home))
    env.pop("FARMBOT_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "farmbot", *args], capture_output=True, text=True, env=env,
        timeout=30, check=False,
    )  # fmt: skip


def test_init_writes_a_commented_config_and_never_overwrites(tmp_path: Path) -> None:
    done = farmbot("init", home=tmp_path)

    written = tmp_path / ".config/farmbot/farmbot.toml"
    assert done.returncode == 0, done.stderr
    assert str(written) in done.stdout
    assert written.read_text().count("\n# ") > 50  # commented throughout
    tomllib.loads(written.read_text())
    again = farmbot("init", home=tmp_path)
    assert again.returncode == 2
    assert again.stderr.strip().endswith("already exists; use --force to overwrite")
    assert len(again.stderr.strip().splitlines()) == 1
    assert farmbot("init", "--force", home=tmp_path).returncode == 0


def test_attach_to_an_unknown_agent_says_so(tmp_path: Path, tmux_socket: str) -> None:
    config = tmp_path / "farmbot.toml"
    config.write_text(f'[tmux]\nsocket = "{tmux_socket}"\n[server]\nstate_dir = "state"\n')

    done = farmbot("--config", str(config), "attach", "builder-9", home=tmp_path)

    assert done.returncode == 1
    assert (
        done.stderr.strip() == "farmbot: no agent session 'builder-9' (see `farmbot cmd /agents`)"
    )


def test_systemd_ready_and_watchdog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not systemd.notify("READY=1")  # not run by systemd: nothing to do
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert systemd.notify("READY=1")
        assert listener.recv(64) == b"READY=1"
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert systemd.watchdog_interval() is None


def test_a_client_command_against_another_program_says_so(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    try:
        (tmp_path / "state").mkdir()
        (tmp_path / "state/local-key").write_text("k" * 32)
        config = tmp_path / "farmbot.toml"
        config.write_text(f'[server]\nport = {port}\nstate_dir = "state"\n')
        for _ in range(100):
            done = farmbot("--config", str(config), "status", home=tmp_path)
            if "not running" not in done.stderr:
                break
        assert done.returncode == 1
        assert done.stderr.strip().endswith(
            "does not answer like farmbot: is another program there? (HTTP 404)"
        )
    finally:
        server.kill()
        server.wait()
