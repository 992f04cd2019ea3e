"""The daemon seen from outside: ``farmbot start``, ``stop``, ``restart``, ``reload``,
``logs``.

The PID file is the daemon's own lock, ``state_dir/farmbot.lock``: ``farmbot serve``
flocks it and writes its pid into it (``daemon.StateLock``). A daemon runs exactly while
someone holds that lock; a pid left in the file by a daemon that is gone is stale,
whatever process now has that number. There is no second source of truth.

``start`` runs ``farmbot serve`` in a new session (``start_new_session``: no controlling
terminal, no SIGHUP when the shell goes), stdout to /dev/null and stderr and logging
into ``state_dir/farmbot.log``, and waits until ``/healthz`` answers while the child holds
the lock, or the child dies, or the timeout passes.

``reload`` sends the daemon SIGHUP and waits until it writes how the reload went into
``state_dir/last-reload.json`` (farmbot/reload.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from farmbot.errors import FarmbotError, StartFailed

LOCK_FILE = "farmbot.lock"  # app.LOCK_FILE (a test keeps them equal)
LOG_FILE = "farmbot.log"
RELOAD_FILE = "last-reload.json"  # reload.OUTCOME_FILE (a test keeps them equal)
# Variables that describe *this* process's supervisor, not the detached daemon's.
_NOT_INHERITED = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "LISTEN_FDS")


@dataclass(frozen=True, slots=True)
class LockState:
    """What ``farmbot.lock`` says: whether a daemon holds it, and the pid written in it."""

    running: bool
    pid: int | None  # the running daemon's pid; or, when not running, a stale one


@dataclass(frozen=True, slots=True)
class Started:
    pid: int | None  # None: one is starting this very moment and has not written its pid
    already: bool  # it was running before: nothing was started


@dataclass(frozen=True, slots=True)
class Stopped:
    pid: int | None  # the daemon that was stopped; None when none was running
    stale: int | None = None  # a stale pid cleared from the lock file


def log_path(state_dir: Path) -> Path:
    return state_dir / LOG_FILE


def lock_state(state_dir: Path) -> LockState:
    """Whether a farmbot holds ``state_dir``'s lock, and its pid."""
    try:
        fd = os.open(state_dir / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return LockState(False, None)
    except OSError as exc:
        raise FarmbotError(f"cannot read {state_dir / LOCK_FILE}: {exc.strerror}") from None
    try:
        pid = _pid(os.read(fd, 32))
        if pid is not None and not _alive(pid):
            return LockState(False, pid)  # no such process: stale, no need to probe the lock
        try:
            # A shared probe, released at once. A daemon starting in this very instant
            # would see the lock taken; `start` therefore only probes once its child
            # answers (and so holds the lock already).
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return LockState(True, pid)
        return LockState(False, pid)
    finally:
        os.close(fd)


def _pid(data: bytes) -> int | None:
    text = data.decode(errors="replace").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _clear_stale(state_dir: Path) -> bool:
    """Empty the lock file of a dead daemon's pid (under the lock: never a live one's)."""
    try:
        fd = os.open(state_dir / LOCK_FILE, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        return True
    except OSError:  # BlockingIOError: a daemon took it meanwhile
        return False
    finally:
        os.close(fd)


def healthy(url: str, timeout: float = 1.0) -> bool:
    """Whether ``url/healthz`` answers 200."""
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def serve_command(config: Path | None, serve_args: Sequence[str], log: Path) -> list[str]:
    """The ``farmbot serve`` command line ``start`` runs."""
    command = [sys.executable, "-m", "farmbot"]
    if config is not None:
        command += ["--config", str(config)]
    return [*command, "serve", "--log-file", str(log), *serve_args]


def start(
    state_dir: Path,
    url: str,
    command: Sequence[str],
    *,
    environ: Mapping[str, str],
    cwd: Path,
    timeout: float = 30.0,
    clock: Callable[[], float] = time.monotonic,
    farmbot: str = "farmbot",
) -> Started:
    """Run ``command`` (a ``farmbot serve``) detached; return once it answers at ``url``.

    ``farmbot`` is how the person types the command, for the hints in messages.
    """
    state = lock_state(state_dir)
    if state.running:
        return Started(state.pid, already=True)
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        log = log_path(state_dir)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as exc:
        raise FarmbotError(f"cannot write {exc.filename or state_dir}: {exc.strerror}") from None
    offset = os.fstat(fd).st_size
    env = {k: v for k, v in environ.items() if k not in _NOT_INHERITED}
    try:
        child = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=fd,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    finally:
        os.close(fd)
    deadline = clock() + timeout
    while True:
        code = child.poll()
        if code is not None:
            raise StartFailed(
                f"farmbot exited with status {code} while starting; the end of {log}:",
                tail(log, 20, offset=offset),
            )
        if healthy(url):
            state = lock_state(state_dir)
            if state.running and state.pid == child.pid:
                return Started(child.pid, already=False)
        if clock() >= deadline:
            raise StartFailed(
                f"farmbot (pid {child.pid}) did not answer {url}/healthz within {timeout:g}s; "
                f"it may still be starting: `{farmbot} logs -f`, or `{farmbot} stop`; the end "
                f"of {log}:",
                tail(log, 20, offset=offset),
            )
        time.sleep(0.1)


def stop(
    state_dir: Path, *, timeout: float = 30.0, clock: Callable[[], float] = time.monotonic
) -> Stopped:
    """SIGTERM the daemon holding ``state_dir``'s lock; wait until it lets go of it."""
    state = lock_state(state_dir)
    if not state.running:
        stale = state.pid if state.pid is not None and _clear_stale(state_dir) else None
        return Stopped(None, stale)
    deadline = clock() + timeout
    pid = state.pid
    while pid is None and clock() < deadline:  # it took the lock, its pid is coming
        time.sleep(0.05)
        state = lock_state(state_dir)
        if not state.running:
            return Stopped(None)
        pid = state.pid
    if pid is None:
        raise FarmbotError(f"a farmbot holds {state_dir / LOCK_FILE} but wrote no pid in it")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return Stopped(pid)
    except PermissionError:
        raise FarmbotError(f"cannot stop farmbot (pid {pid}): not your process") from None
    while lock_state(state_dir).running:
        if clock() >= deadline:
            raise FarmbotError(
                f"farmbot (pid {pid}) did not stop within {timeout:g}s; `kill -9 {pid}` "
                "forces it (the agents keep running in tmux)"
            )
        time.sleep(0.1)
    _clear_stale(state_dir)  # its pid, so that the file names no farmbot
    return Stopped(pid)


@dataclass(frozen=True, slots=True)
class Reloaded:
    pid: int  # the daemon that was sent SIGHUP
    outcome: dict[str, Any] | None  # what it wrote about the reload; None: nothing in time


def reload(
    state_dir: Path, *, timeout: float = 10.0, clock: Callable[[], float] = time.monotonic
) -> Reloaded:
    """SIGHUP the daemon holding ``state_dir``'s lock; wait for the outcome it writes."""
    state = lock_state(state_dir)
    deadline = clock() + timeout
    while state.running and state.pid is None and clock() < deadline:  # its pid is coming
        time.sleep(0.05)
        state = lock_state(state_dir)
    if not state.running:
        raise FarmbotError(
            f"farmbot is not running (state directory {state_dir}), so there is nothing to "
            "reload; `farmbot start` reads the configuration afresh"
        )
    pid = state.pid
    if pid is None:
        raise FarmbotError(f"a farmbot holds {state_dir / LOCK_FILE} but wrote no pid in it")
    before = _reload_outcome(state_dir)
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise FarmbotError(f"farmbot (pid {pid}) stopped just now; nothing to reload") from None
    except PermissionError:
        raise FarmbotError(f"cannot signal farmbot (pid {pid}): not your process") from None
    while clock() < deadline:
        now = _reload_outcome(state_dir)
        if now is not None and now != before and now.get("pid") == pid:
            return Reloaded(pid, now)
        time.sleep(0.05)
    return Reloaded(pid, None)


def _reload_outcome(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state_dir / RELOAD_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# -- the log file ---------------------------------------------------------------------


def tail(path: Path, n: int, *, offset: int = 0) -> list[str]:
    """The last ``n`` lines of ``path`` after byte ``offset`` (none if it is missing)."""
    if n <= 0:
        return []
    try:
        with path.open("rb") as f:
            return _last_lines(f, n, offset)
    except FileNotFoundError:
        return []


def _last_lines(f: BinaryIO, n: int, offset: int = 0) -> list[str]:
    """The last ``n`` lines of the open file after byte ``offset``; leaves it at its end."""
    end = f.seek(0, os.SEEK_END)
    start, data = end, b""
    while n > 0 and start > offset and data.count(b"\n") <= n:
        start = max(offset, start - 64 * 1024)
        f.seek(start)
        data = f.read(end - start)
    f.seek(end)
    return data.decode(errors="replace").splitlines()[-n:] if n > 0 else []


def follow(
    path: Path,
    out: TextIO,
    *,
    last: int = 0,
    poll: float = 0.2,
    keep_going: Callable[[], bool] = lambda: True,
) -> None:
    """Write the ``last`` lines of ``path`` to ``out``, then what is appended to it, across
    rotations, until told to stop. Both come from one open file: no line written between
    the two is lost."""
    f: BinaryIO | None = None
    with contextlib.suppress(FileNotFoundError):
        f = path.open("rb")
        for line in _last_lines(f, last):
            out.write(line + "\n")
        out.flush()
    try:
        while keep_going():
            if f is None:  # no file yet, or it was rotated away: read the new one from its start
                with contextlib.suppress(FileNotFoundError):
                    f = path.open("rb")
            data = f.read() if f is not None else b""
            if data:
                out.write(data.decode(errors="replace"))
                out.flush()
                continue
            if f is not None and _rotated(path, f):
                f.close()  # its end was read just now
                f = None
                continue
            time.sleep(poll)
    finally:
        if f is not None:
            f.close()


def _rotated(path: Path, f: BinaryIO) -> bool:
    """Whether ``path`` is now another file than ``f`` (rotated); rewinds a truncated one."""
    try:
        now = path.stat()
    except FileNotFoundError:
        return True
    mine = os.fstat(f.fileno())
    if (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
        return True
    if mine.st_size < f.tell():
        f.seek(0)
    return False
