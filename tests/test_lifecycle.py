"""`farmbot start/stop/restart/logs` as real processes against a temporary state directory."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from farmbot import build, cli, daemon, lifecycle, storage
from tests.daemon import free_port


def cli_run(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARMBOT_")}
    env["HOME"] = str(config.parent)
    return subprocess.run(
        [sys.executable, "-m", "farmbot", *args, "--config", str(config)],
        capture_output=True, text=True, env=env, timeout=timeout, check=False, cwd=config.parent,
    )  # fmt: skip


def healthy(port: int) -> bool:
    return lifecycle.healthy(f"http://127.0.0.1:{port}")


@pytest.fixture
def farm(tmp_path: Path, tmux_socket: str) -> Iterator[tuple[Path, int]]:
    """A config on a free port; whatever daemon the test leaves running is stopped."""
    port = free_port()
    config = tmp_path / "farmbot.toml"
    config.write_text(
        f'[server]\nport = {port}\nstate_dir = "state"\n[tmux]\nsocket = "{tmux_socket}"\n'
    )
    yield config, port
    state = lifecycle.lock_state(tmp_path / "state")
    if state.running and state.pid:
        os.kill(state.pid, signal.SIGKILL)


def test_the_pid_file_is_the_daemons_own_lock() -> None:
    assert lifecycle.LOCK_FILE == daemon.LOCK_FILE
    assert cli.DB_FILE == build.DB_FILE == storage.DB_FILE


def test_start_status_restart_logs_stop(farm: tuple[Path, int]) -> None:
    config, port = farm
    state = config.parent / "state"
    url = f"http://127.0.0.1:{port}"
    hint = f"farmbot --config {config}"

    started = cli_run(config, "start")
    assert started.returncode == 0, started.stderr
    first = _pid(started.stdout.splitlines()[0])
    key = (state / "local-key").read_text().strip()
    assert started.stdout.splitlines()[1:] == [
        f"  status page and console: {url}/#key={key}",
        f"  log: {state / 'farmbot.log'} (`{hint} logs -f`)",
        f"  stop it with `{hint} stop`; the agents keep running in tmux.",
    ]
    assert healthy(port)
    assert (state / "farmbot.lock").read_text() == str(first)
    assert lifecycle.lock_state(state) == lifecycle.LockState(True, first)
    assert stat.S_IMODE((state / "farmbot.log").stat().st_mode) == 0o600
    assert os.getsid(first) == first  # its own session: no terminal, no SIGHUP from ours

    again = cli_run(config, "start")
    assert (again.returncode, again.stdout) == (
        0,
        f"farmbot is already running (pid {first}) at {url}\n",
    )
    status = cli_run(config, "status")
    assert status.returncode == 0, status.stderr
    assert re.fullmatch(rf"farmbot \S+ — up \d+s, pid {first}", status.stdout.splitlines()[0])

    restarted = cli_run(config, "restart", "--log-format", "json")
    assert restarted.returncode == 0, restarted.stderr
    lines = restarted.stdout.splitlines()
    assert lines[0] == f"stopped farmbot (pid {first}); the agents keep running in tmux"
    second = _pid(lines[1])
    # The key was made by the first start: the link that holds it is not shown again.
    assert lines[2] == f"  status page and console: {url}/ (`{hint} login-link`)"
    assert key not in restarted.stdout and key not in (state / "farmbot.log").read_text()
    link = cli_run(config, "login-link")
    assert (link.returncode, link.stdout) == (0, f"{url}/#key={key}\n")
    assert second != first and healthy(port)

    stopped = cli_run(config, "stop")
    assert (stopped.returncode, stopped.stdout) == (
        0,
        f"stopped farmbot (pid {second}); the agents keep running in tmux\n",
    )
    assert not healthy(port)
    assert (state / "farmbot.lock").read_text() == ""  # no pid of a farmbot that is gone

    logs = cli_run(config, "logs", "-n", "3")
    assert logs.returncode == 0, logs.stderr
    *earlier, last = logs.stdout.splitlines()
    record = json.loads(last)  # the second daemon logged JSON lines
    assert set(record) == {"ts", "level", "logger", "message", "exc"}
    assert (record["level"], record["logger"]) == ("INFO", "farmbot.daemon")
    assert record["message"].startswith("stopping: ")
    assert any("INFO farmbot.daemon: stopping: " in line for line in earlier)  # the first: text

    not_running = cli_run(config, "stop")
    assert (not_running.returncode, not_running.stdout) == (
        0,
        f"farmbot is not running (state directory {state})\n",
    )
    status = cli_run(config, "status")
    assert (status.returncode, status.stdout) == (1, "")
    assert status.stderr.startswith(f"farmbot is not running at {url} (")
    assert status.stderr.endswith(f"; start it with `{hint} start`\n")


def test_start_reports_a_daemon_that_dies_with_the_end_of_its_log(
    farm: tuple[Path, int],
) -> None:
    config, port = farm
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = cli_run(config, "start")
    log = config.parent / "state" / "farmbot.log"
    assert done.returncode == 1
    first, *tail = done.stderr.splitlines()
    assert first == f"farmbot: farmbot exited with status 1 while starting; the end of {log}:"
    assert tail == [
        f"  farmbot: error while attempting to bind on address ('127.0.0.1', {port}): "
        "address already in use"
    ]
    assert not lifecycle.lock_state(config.parent / "state").running


def test_a_config_error_is_reported_before_detaching(farm: tuple[Path, int]) -> None:
    config, _ = farm
    config.write_text(config.read_text() + "[supervisor]\nmax_bilders = 2\n")
    done = cli_run(config, "start")
    assert (done.returncode, done.stderr) == (
        2,
        "config: supervisor.max_bilders: unknown key (did you mean 'max_builders'?)\n",
    )
    assert not (config.parent / "state" / "farmbot.log").exists()


def test_stop_clears_a_stale_pid_and_gives_up_on_a_daemon_that_will_not_stop(
    farm: tuple[Path, int],
) -> None:
    config, _ = farm
    state = config.parent / "state"
    state.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (state / "farmbot.lock").write_text(str(dead.pid))
    done = cli_run(config, "stop")
    assert (done.returncode, done.stdout) == (
        0,
        f"farmbot is not running (state directory {state}); cleared the pid {dead.pid} "
        "of a farmbot that is gone\n",
    )
    assert (state / "farmbot.lock").read_text() == ""

    stubborn = subprocess.Popen(
        [sys.executable, "-c", STUBBORN, str(state / "farmbot.lock")], stdout=subprocess.PIPE
    )
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline() == b"locked\n"
        started = cli_run(config, "start")
        assert started.stdout.startswith(f"farmbot is already running (pid {stubborn.pid}) at")
        done = cli_run(config, "stop", "--timeout", "1")
        assert (done.returncode, done.stderr) == (
            1,
            f"farmbot: farmbot (pid {stubborn.pid}) did not stop within 1s; "
            f"`kill -9 {stubborn.pid}` forces it (the agents keep running in tmux)\n",
        )
        assert stubborn.poll() is None
    finally:
        stubborn.kill()
        stubborn.communicate()


# Holds the lock like `farmbot serve` does, and ignores SIGTERM.
STUBBORN = """
import fcntl, os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, str(os.getpid()).encode())
print("locked", flush=True)
time.sleep(60)
"""


def test_follow_loses_no_line_written_right_after_the_last_ones(tmp_path: Path) -> None:
    log = tmp_path / "farmbot.log"
    log.write_text("one\ntwo\nthree\n")
    out = io.StringIO()
    calls = 0

    def keep_going() -> bool:  # runs once the last lines are out: a line lands right then
        nonlocal calls
        calls += 1
        if calls == 1:
            with log.open("a") as f:
                f.write("four\n")
        return calls < 4

    lifecycle.follow(log, out, last=2, poll=0.01, keep_going=keep_going)

    assert out.getvalue() == "two\nthree\nfour\n"


def _interruptible() -> None:
    """Ctrl-C as at a terminal: a suite run in the background (``cmd &``) ignores SIGINT,
    and its children would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_logs_follows_the_file_across_a_rotation(tmp_path: Path) -> None:
    config = tmp_path / "farmbot.toml"
    config.write_text('[server]\nstate_dir = "state"\n')
    missing = cli_run(config, "logs")
    log = tmp_path / "state" / "farmbot.log"
    assert (missing.returncode, missing.stderr) == (
        1,
        f"farmbot: no log at {log}: `farmbot --config {config} start` writes it "
        "(under systemd: journalctl --user -u farmbot)\n",
    )
    log.parent.mkdir()
    log.write_text("one\ntwo\nthree\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARMBOT_")}
    follower = subprocess.Popen(
        [sys.executable, "-m", "farmbot", "--config", str(config), "logs", "-f", "-n", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=_interruptible,
    )  # fmt: skip
    try:
        assert follower.stdout is not None
        assert [follower.stdout.readline() for _ in range(2)] == ["two\n", "three\n"]
        with log.open("a") as f:
            f.write("four\n")
        assert follower.stdout.readline() == "four\n"
        with log.open("a") as f:
            f.write("five, the last line before the rotation\n")
        os.replace(log, log.with_name("farmbot.log.1"))
        log.write_text("six, in the new file\n")
        assert follower.stdout.readline() == "five, the last line before the rotation\n"
        assert follower.stdout.readline() == "six, in the new file\n"
        time.sleep(0.3)
        follower.send_signal(signal.SIGINT)
        assert follower.wait(10) == 130
        assert follower.stderr is not None and follower.stderr.read() == ""  # no traceback
    finally:
        if follower.poll() is None:
            follower.kill()
        follower.communicate()


def test_start_that_times_out_says_the_daemon_may_still_be_starting(
    farm: tuple[Path, int],
) -> None:
    config, port = farm
    done = cli_run(config, "start", "--timeout", "0.01")
    first = done.stderr.splitlines()[0]
    found = re.fullmatch(
        r"farmbot: farmbot \(pid (\d+)\) did not answer (\S+) within 0.01s; (.*)", first
    )
    assert found is not None, done.stderr
    pid, hint = int(found[1]), f"farmbot --config {config}"
    assert done.returncode == 1
    assert found[2] == f"http://127.0.0.1:{port}/healthz"
    assert found[3] == (
        f"it may still be starting: `{hint} logs -f`, or `{hint} stop`; the end of "
        f"{config.parent / 'state' / 'farmbot.log'}:"
    )
    try:
        for _ in range(150):  # it does come up
            if healthy(port):
                break
            time.sleep(0.1)
        assert lifecycle.lock_state(config.parent / "state") == lifecycle.LockState(True, pid)
    finally:
        stopped = cli_run(config, "stop")
    assert stopped.stdout == f"stopped farmbot (pid {pid}); the agents keep running in tmux\n"


def _pid(line: str) -> int:
    """The pid in a line like ``farmbot started (pid 123).``"""
    found = re.fullmatch(r"farmbot started \(pid (\d+)\)\.", line)
    assert found is not None, line
    return int(found[1])
