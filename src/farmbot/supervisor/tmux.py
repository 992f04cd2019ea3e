"""Every tmux call farmbot makes, through libtmux, off the event loop.

farmbot runs its own tmux server on a private socket (``tmux -L farmbot``) started with
no user configuration, so option values and pane output are predictable. One agent is
one session named after the agent, whose single pane runs the agent's command. Panes
stay after their process exits (``remain-on-exit``) so farmbot can tell a dead agent,
with its exit status and last output, from one that was never there.

Session targets always use tmux's exact-match form ``=name:`` -- a plain ``builder-4``
would also match ``builder-42``.

**Environments are built, never inherited.** A tmux server keeps the environment of the
client that started it, and gives it to every pane. libtmux runs its clients with the
daemon's own environment (and its secrets), so the two calls that can start a server or a
pane run ``tmux`` directly with an environment built on purpose (``_clean``): the server
is started with the allowlist only (``environment.server_environment``); a session is
created by a client whose environment is the agent's, copied into the new session through
``update-environment`` (so no value is ever on a command line, which every local user can
read in ``/proc``) and then removed from the session's own environment, except for the
agent's identity. The pane's process keeps what it was started with.

**Typing leaves a mark in the pane.** ``paste`` and ``send_keys`` can set the pane option
``@farmbot-typing`` in the same tmux command as the keys themselves. tmux runs one
command list at once or stops at its first error, so the mark says exactly what reached
the pane -- a crash of farmbot between two calls cannot leave it wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import libtmux
from libtmux import exc as tmux_exc

from farmbot.errors import TmuxError
from farmbot.supervisor.environment import IDENTITY, server_environment

log = logging.getLogger(__name__)

HISTORY_LIMIT = 50_000
CHANGED = "farmbot-changed"  # a wait-for channel tmux signals when a pane dies or a session goes
PANE_WIDTH = 200
PANE_HEIGHT = 50
ENV_PREFIX = "FARMBOT_"
TYPING = "@farmbot-typing"  # pane option: "<prompt id> pasted|sent" (see the docstring)
CLEAN_TIMEOUT = 30.0  # seconds for a tmux call made outside libtmux

_PANE_FIELDS = (
    "session_name",
    "pane_pid",
    "pane_dead",
    "pane_dead_status",
    "pane_dead_signal",
    "pane_current_command",
    "session_created",
    "window_activity",
)
_SEP = "\x1f"
_PANE_FORMAT = _SEP.join(f"#{{{f}}}" for f in _PANE_FIELDS)
_PANE_TAG = "farmbot-pane" + _SEP  # tells take_over()'s pane lines from environment lines


@dataclass(frozen=True, slots=True)
class PaneInfo:
    """What tmux says about an agent session's pane."""

    session: str
    pid: int | None
    dead: bool
    exit_status: int | None  # None while alive, or when a signal killed it
    exit_signal: int | None  # the signal that killed it (tmux 3.3 leaves the status empty)
    current_command: str
    created: float
    activity: int  # when the pane last printed anything (tmux's clock, whole seconds)


class Tmux:
    """The private tmux server farmbot's agents live on.

    Calls that observe (the process table, screens) run on a thread of their own, so a
    burst of spawns or typing -- on the default executor -- never delays the monitor.
    """

    def __init__(self, socket: str, environ: Mapping[str, str] | None = None) -> None:
        self.socket = socket
        self._server = libtmux.Server(socket_name=socket, config_file="/dev/null")
        # What the server is started with (the daemon's environment when none is given).
        self._base = server_environment(os.environ if environ is None else environ)
        self._binary = shutil.which("tmux", path=self._base.get("PATH")) or "tmux"
        self._observer = ThreadPoolExecutor(1, thread_name_prefix=f"tmux-{socket}")
        self._waiter = ThreadPoolExecutor(1, thread_name_prefix=f"tmux-{socket}-wait")
        self._closed = False

    def __repr__(self) -> str:
        return f"<Tmux socket={self.socket!r}>"

    def close(self) -> None:
        """Stop the threads (the tmux server and its agents keep running)."""
        self._closed = True
        with contextlib.suppress(TmuxError):  # wakes a ``changed()`` blocked in wait-for
            self._cmd("wait-for", "-S", CHANGED)
        self._observer.shutdown(wait=False, cancel_futures=True)
        self._waiter.shutdown(wait=False, cancel_futures=True)

    async def changed(self) -> None:
        """Return when a pane dies or a session closes (tmux's own hooks signal it).

        Raises ``TmuxError`` when there is no server to wait on (none runs yet).
        """
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._waiter, functools.partial(self._cmd, "wait-for", CHANGED))
        if self._closed:
            raise TmuxError("tmux is closed")

    async def _run(self, *args: str) -> list[str]:
        return await asyncio.to_thread(self._cmd, *args)

    async def _observe(self, *args: str) -> list[str]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._observer, functools.partial(self._cmd, *args))

    async def _observe_partly(self, *args: str) -> tuple[list[str], TmuxError | None]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._observer, functools.partial(self._call, *args))

    def _cmd(self, *args: str) -> list[str]:
        out, err = self._call(*args)
        if err is not None:
            raise err
        return out

    def _call(self, *args: str) -> tuple[list[str], TmuxError | None]:
        """What the command (list) printed, and its error if it failed (tmux prints the
        output of the commands before the failing one)."""
        try:
            result = self._server.cmd(*args)
        except (tmux_exc.LibTmuxException, OSError) as exc:
            raise TmuxError(f"tmux {args[0]}: {exc}") from exc
        if result.stderr:
            return list(result.stdout), TmuxError(
                f"tmux {args[0]}: {' '.join(result.stderr).strip()}"
            )
        return list(result.stdout), None

    def _clean(self, args: list[str], env: Mapping[str, str]) -> list[str]:
        """Run one tmux client with exactly ``env`` (libtmux would pass the daemon's own),
        except where the server's socket is: where libtmux's clients look for it too."""
        argv = [self._binary, "-L", self.socket, "-f", "/dev/null", *args]
        client = {k: v for k, v in env.items() if k != "TMUX_TMPDIR"}
        if os.environ.get("TMUX_TMPDIR"):
            client["TMUX_TMPDIR"] = os.environ["TMUX_TMPDIR"]
        try:
            done = subprocess.run(
                argv,
                env=client,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=CLEAN_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TmuxError(f"tmux {args[0]}: {exc}") from exc
        err = done.stderr.decode("utf-8", "replace").strip()
        if done.returncode != 0 or err:
            raise TmuxError(f"tmux {args[0]}: {err or f'exit status {done.returncode}'}")
        return done.stdout.decode("utf-8", "replace").splitlines()

    def _start_server(self) -> None:
        """Start the server with the allowlisted environment, unless one runs already.

        It stays up (``exit-empty off``) until ``new_session`` has made a session.
        """
        try:
            self._cmd("list-sessions", "-F", "#{session_name}")
            return
        except TmuxError as exc:
            if not _no_server(exc):
                raise
        self._clean(["start-server", ";", "set-option", "-g", "exit-empty", "off"], self._base)

    def _global_env(self) -> dict[str, str]:
        """The server's global environment (without the names tmux marks as removed)."""
        return _environment(self._cmd("show-environment", "-g"))

    async def take_over(self) -> tuple[list[str], dict[str, PaneInfo]]:
        """At start, in one tmux call: make the server signal ``changed()`` (one started
        by an older farmbot may not), read its global environment and every pane.

        Returns the names removed from the global environment because they are not
        allowlisted -- a server started by an older farmbot holds the daemon's whole
        environment (new panes would inherit it; the server process keeps it until it is
        restarted) -- and every session's pane, by name, as ``panes()`` gives them. No
        server running is fine: nothing to remove, no panes.
        """
        args: list[str] = []
        for hook in ("pane-died", "session-closed"):
            args += ["set-hook", "-g", hook, f"wait-for -S {CHANGED}", ";"]
        args += ["show-environment", "-g", ";", "list-panes", "-a", "-F", _PANE_TAG + _PANE_FORMAT]
        out, err = await self._observe_partly(*args)
        # No server, or one without sessions (list-panes fails; what came before printed).
        if err is not None and not _no_server(err):
            raise err
        env = _environment(line for line in out if not line.startswith(_PANE_TAG))
        panes = _pane_table(line[len(_PANE_TAG) :] for line in out if line.startswith(_PANE_TAG))
        extra = sorted(name for name in env if name not in self._base)
        unset: list[str] = []
        for name in extra:
            unset += [*([";"] if unset else []), "set-environment", "-g", "-u", name]
        if unset:
            await self._run(*unset)
        if _unreaped(panes):
            panes = await self.panes()
        return extra, panes

    async def ping(self) -> None:
        """Raise TmuxError unless tmux answers. No server running yet is fine."""
        try:
            await self._run("list-sessions", "-F", "#{session_name}")
        except TmuxError as exc:
            if _no_server(exc):
                return
            raise

    async def ready(self) -> str | None:
        """A readiness check: None while tmux answers."""
        try:
            await self.ping()
        except TmuxError as exc:
            return str(exc)
        return None

    async def new_session(
        self, name: str, command: str, cwd: Path, env: Mapping[str, str]
    ) -> PaneInfo:
        """Start session ``name`` running ``command`` in ``cwd``.

        The pane's process gets the server's allowlisted environment plus ``env`` and
        nothing else; the session's own environment keeps only the ``IDENTITY`` names.
        """
        await asyncio.to_thread(self._new_session, name, command, cwd, env)
        info = await self.pane(name)
        if info is None:
            raise TmuxError(f"tmux session {name!r} vanished right after it was created")
        return info

    def _new_session(self, name: str, command: str, cwd: Path, env: Mapping[str, str]) -> None:
        self._start_server()
        pane_env = {**self._base, **env}
        # Every name the pane could inherit is copied from this client (or, when the
        # client has no such variable, removed): the pane gets exactly ``pane_env``.
        names = sorted(set(pane_env) | set(self._global_env()))
        # One tmux invocation: the options are in force before the pane exists, so a
        # command that exits at once still leaves its pane (and exit status) behind.
        args = ["set-option", "-g", "remain-on-exit", "on"]
        args += [";", "set-option", "-g", "history-limit", str(HISTORY_LIMIT)]
        args += [";", "set-option", "-g", "status", "off"]
        for hook in ("pane-died", "session-closed"):  # wake the monitor at once
            args += [";", "set-hook", "-g", hook, f"wait-for -S {CHANGED}"]
        args += [";", "set-option", "-g", "update-environment", " ".join(names)]
        args += [";", "new-session", "-d", "-s", name, "-c", str(cwd)]
        args += ["-x", str(PANE_WIDTH), "-y", str(PANE_HEIGHT)]
        for key in IDENTITY:
            if key in env:
                args += ["-e", f"{key}={env[key]}"]
        args.append(command)
        for key in names:
            if key not in IDENTITY:
                args += [";", "set-environment", "-t", f"={name}", "-u", key]
        args += [";", "set-option", "-gu", "update-environment"]
        args += [";", "set-option", "-gu", "exit-empty"]
        self._clean(args, pane_env)

    async def panes(self) -> dict[str, PaneInfo]:
        """Every session on the server, by name, with its (first) pane."""
        panes = await self._list_panes()
        if _unreaped(panes):
            # tmux built with libutempter sometimes leaves an exited pane's process
            # unreaped (tmux#311): dead, but no exit status. A SIGCHLD makes it reap.
            await self._nudge()
            await asyncio.sleep(0.05)
            panes = await self._list_panes()
        return panes

    async def _nudge(self) -> None:
        try:
            [pid] = await self._run("display-message", "-p", "#{pid}")
            os.kill(int(pid), signal.SIGCHLD)
        except (TmuxError, ValueError, OSError) as exc:
            log.debug("could not nudge the tmux server: %s", exc)

    async def _list_panes(self, *target: str) -> dict[str, PaneInfo]:
        try:
            lines = await self._observe("list-panes", *(target or ("-a",)), "-F", _PANE_FORMAT)
        except TmuxError as exc:
            if _no_server(exc) or (target and "can't find" in str(exc)):
                return {}
            raise
        return _pane_table(lines)

    async def pane(self, name: str) -> PaneInfo | None:
        """One session's pane (a call about that session only)."""
        panes = await self._list_panes("-s", "-t", f"={name}")
        if _unreaped(panes):
            await self._nudge()
            await asyncio.sleep(0.05)
            panes = await self._list_panes("-s", "-t", f"={name}")
        return panes.get(name)

    async def session_env(self, name: str) -> dict[str, str]:
        """The ``FARMBOT_*`` variables of a session's environment."""
        lines = await self._run("show-environment", "-t", f"={name}")
        env: dict[str, str] = {}
        for line in lines:
            key, sep, value = line.partition("=")
            if sep and key.startswith(ENV_PREFIX):
                env[key] = value
        return env

    async def kill_session(self, name: str) -> bool:
        """Kill a session; False when there was none."""
        try:
            await self._run("kill-session", "-t", f"={name}")
        except TmuxError as exc:
            if "can't find session" in str(exc) or _no_server(exc):
                return False
            raise
        return True

    async def capture(self, name: str, lines: int) -> list[str]:
        """The last ``lines`` lines of the pane (scrollback included), trailing blanks cut."""
        start = str(-max(lines, 1) - PANE_HEIGHT)
        out = await self._observe("capture-pane", "-p", "-J", "-t", f"={name}:", "-S", start)
        while out and (not out[-1].strip() or out[-1].startswith("Pane is dead (")):
            out.pop()  # blank rows, and the notice tmux prints under an exited program
        return out[-lines:]

    async def paste(self, name: str, text: str, *, mark: str | None = None) -> None:
        """Paste ``text`` literally (bracketed paste when the program asked for it).

        ``mark``: set the pane's ``@farmbot-typing`` to it in the same tmux command, so
        it is set if and only if the paste happened.
        """
        await asyncio.to_thread(self._paste, name, text, mark)

    def _paste(self, name: str, text: str, mark: str | None) -> None:
        buffer = f"farmbot-{name}-{os.getpid()}"
        fd, path = tempfile.mkstemp(prefix="farmbot-paste-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            target = f"={name}:"
            args = ["load-buffer", "-b", buffer, path]
            args += [";", "paste-buffer", "-p", "-r", "-d", "-b", buffer, "-t", target]
            self._cmd(*args, *_marking(target, mark))
        finally:
            os.unlink(path)

    async def send_keys(self, name: str, *keys: str, mark: str | None = None) -> None:
        """Send tmux key names (``Enter``, ``Escape``, ``1``) to the pane.

        ``mark``: set the pane's ``@farmbot-typing`` to it in the same tmux command.
        """
        target = f"={name}:"
        await self._run("send-keys", "-t", target, *keys, *_marking(target, mark))

    async def typing_mark(self, name: str) -> str:
        """The pane's ``@farmbot-typing`` ("" when never set)."""
        lines = await self._run("show-options", "-p", "-q", "-v", "-t", f"={name}:", TYPING)
        return lines[0].strip() if lines else ""

    async def kill_server(self) -> None:
        """Stop the whole tmux server (tests only)."""
        await asyncio.to_thread(self._kill_server)

    def _kill_server(self) -> None:
        if self._server.is_alive():
            self._server.kill()


def _marking(target: str, mark: str | None) -> list[str]:
    return [] if mark is None else [";", "set-option", "-p", "-t", target, TYPING, mark]


def _environment(lines: Iterable[str]) -> dict[str, str]:
    """``show-environment`` output as a mapping (without the names marked as removed)."""
    env: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            env[key] = value
    return env


def _pane_table(lines: Iterable[str]) -> dict[str, PaneInfo]:
    """``list-panes`` output (``_PANE_FORMAT``): each session's first pane, by name."""
    result: dict[str, PaneInfo] = {}
    for line in lines:
        info = _pane_info(line)
        if info is not None and info.session not in result:
            result[info.session] = info
    return result


def _unreaped(panes: Mapping[str, PaneInfo]) -> bool:
    """A pane is dead without an exit status: tmux has not reaped its process (tmux#311)."""
    return any(p.dead and p.exit_status is None and p.exit_signal is None for p in panes.values())


def _pane_info(line: str) -> PaneInfo | None:
    parts = line.split(_SEP)
    if len(parts) != len(_PANE_FIELDS):
        return None
    name, pid, dead, status, signal_, current, created, activity = parts
    return PaneInfo(
        session=name,
        pid=int(pid) if pid.isdigit() else None,
        dead=dead == "1",
        exit_status=int(status) if status.lstrip("-").isdigit() else None,
        exit_signal=int(signal_) if signal_.isdigit() and dead == "1" else None,
        current_command=current,
        created=float(created) if created.isdigit() else 0.0,
        activity=int(activity) if activity.isdigit() else 0,
    )


def _no_server(exc: TmuxError) -> bool:
    """tmux has no server on the socket (yet, or any more: it exits with its last session)."""
    text = str(exc)
    return any(
        sign in text
        for sign in ("no server running", "error connecting", "no current target", "server exited")
    )
