"""The CLI's local commands, and systemd's notify protocol over a real socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from farmbot import __version__ as farmbot_version
from farmbot import systemd

EXAMPLE = Path(__file__).parent.parent / "src" / "farmbot" / "config" / "farmbot.example.toml"


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


def test_attach_suggests_the_agent_meant_and_needs_a_terminal(
    tmp_path: Path, tmux_socket: str
) -> None:
    config = tmp_path / "farmbot.toml"
    config.write_text(f'[tmux]\nsocket = "{tmux_socket}"\n[server]\nstate_dir = "state"\n')
    hint = f"farmbot --config {config}"

    done = farmbot("--config", str(config), "attach", "builder-9", home=tmp_path)
    assert (done.returncode, done.stderr) == (
        1,
        f"farmbot: no agent session 'builder-9' (see `{hint} cmd /agents`)\n",
    )
    subprocess.run(
        ["tmux", "-L", tmux_socket, "new-session", "-d", "-s", "builder-44", "sleep 60"],
        check=True,
    )
    done = farmbot("attach", "buidler-44", "--config", str(config), home=tmp_path)
    assert (done.returncode, done.stderr) == (
        1,
        "farmbot: no agent session 'buidler-44'; did you mean 'builder-44'?\n",
    )
    done = farmbot("--config", str(config), "attach", "builder-44", home=tmp_path)  # no tty
    assert (done.returncode, done.stderr) == (
        1,
        "farmbot: attach needs a terminal, and this is not one; from a script, read the "
        f'screen with `{hint} cmd "/tail builder-44"`\n',
    )


def test_config_goes_before_or_after_the_command(tmp_path: Path) -> None:
    config = tmp_path / "farmbot.toml"
    config.write_text('[server]\nstate_dir = "state"\nport = 1\n')
    for args in (["--config", str(config), "status"], ["status", "--config", str(config)]):
        done = farmbot(*args, home=tmp_path)
        assert (done.returncode, done.stdout) == (1, "")
        assert done.stderr == (
            f"farmbot is not running (no local key at {tmp_path / 'state/local-key'}; "
            f"start it with `farmbot --config {config} start`)\n"
        )
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nprot = 1\n")
    done = farmbot("serve", "--config", str(bad), home=tmp_path)
    assert (done.returncode, done.stderr) == (
        2,
        "config: server.prot: unknown key (did you mean 'port'?)\n",
    )
    done = farmbot("hooks", "install", str(tmp_path), "--config", str(config), home=tmp_path)
    assert done.stderr == (
        f"farmbot: no local key at {tmp_path / 'state/local-key'}; "
        f"run `farmbot --config {config} start` once to create it\n"
    )


def test_version() -> None:
    done = farmbot("--version", home=Path("/nonexistent"))
    assert (done.returncode, done.stdout) == (0, f"farmbot {farmbot_version}\n")


def test_init_into_a_directory_and_into_an_unwritable_path(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    done = farmbot("init", str(tmp_path / "conf"), home=tmp_path)
    written = tmp_path / "conf" / "farmbot.toml"
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {written}; edit it, then run: farmbot --config {written}")
    assert written.read_bytes() == EXAMPLE.read_bytes()
    (tmp_path / "file").write_text("")
    done = farmbot("init", str(tmp_path / "file" / "farmbot.toml"), home=tmp_path)
    assert (done.returncode, done.stderr) == (
        2,
        f"config: {tmp_path / 'file'}: cannot write: Not a directory\n",
    )


def test_the_example_config_declares_no_project(tmp_path: Path) -> None:
    """Its project used to be at "." with `verify = "make test"`: every builder failed QA."""
    from farmbot.config import load_config

    assert farmbot("init", str(tmp_path), home=tmp_path).returncode == 0
    assert load_config(tmp_path / "farmbot.toml", {}, tmp_path).projects == ()


def test_output_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    config = tmp_path / "farmbot.toml"
    config.write_text('[server]\nstate_dir = "state"\n')
    env = dict(os.environ, HOME=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "farmbot", "--config", str(config), "secret", "list"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `| head -1` gone before farmbot writes
    err = proc.stderr.read()
    proc.stderr.close()
    assert (proc.wait(10), err) == (141, b"")


def test_status_shows_durations_like_agents_does(capsys: pytest.CaptureFixture[str]) -> None:
    from farmbot.cli import _print_status

    now = 1_700_000_000.0
    agent = {"id": "builder-4", "state": "busy", "state_since": now - 4000, "project": "web"}
    _print_status(
        {"version": "0.1.0", "now": now, "started_at": now - 222,
         "agents": [{**agent, "state_reason": "working"}]},
        pid=4242,
    )  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "farmbot 0.1.0 — up 3m, pid 4242"
    assert out[2].split() == ["builder-4", "busy", "66m", "web", "working"]


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
