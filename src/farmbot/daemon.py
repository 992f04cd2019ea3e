"""The daemon: owns every lifetime, in one TaskGroup.

``farmbot serve`` is ``serve(config)``. ``async with Daemon(config) as daemon:`` takes the
state directory's lock (one daemon per state directory: a second one would poll the same
chat twice), builds the graph (farmbot.build), reconciles with tmux, starts the web
server and then, if this node leads, the chat interfaces. ``daemon.run(stop)`` runs the
time-driven work -- the supervision tick, prompt delivery, QA, the hook spool's replay,
systemd's watchdog, and what only the leader runs: alert delivery, the chat interfaces
and their hearing, cron jobs, the autopilot, retention (farmbot.cluster.leadership) --
until ``stop`` is set, then stops taking input and flushes what was taken. SIGTERM/SIGINT
set ``stop``; the agents keep running in tmux and the next start re-adopts them. SIGHUP
(``farmbot reload``) reloads the configuration (farmbot/reload.py): the graph takes the new
one, cron jobs and the QA cycle are rescheduled, and agents, chat connections and queued
work carry on.

With SQLite this node always leads. On a shared PostgreSQL database it leads while it
holds the leader's lock, and also runs the cluster's loops (heartbeat, routed commands,
listening for them): farmbot.cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import gc
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TextIO

from farmbot import __version__, localkey, statedir, systemd
from farmbot.adapters.hooks import hook_token, replay_spool
from farmbot.build import Farm, build, runs_as
from farmbot.cluster import LeaderDuties
from farmbot.cluster.leadership import Loop
from farmbot.config import load_config
from farmbot.config.schema import Config
from farmbot.errors import AlreadyRunning, FarmbotError, StorageError, TmuxError
from farmbot.messages import Incoming, Reply
from farmbot.reload import Outcome, Reloader
from farmbot.schedules import Delays, Schedule, Schedules, cron_delays, every

log = logging.getLogger(__name__)

LOCK_FILE = "farmbot.lock"


class StateLock:
    """One daemon per state directory: a second one would poll the same chat twice."""

    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise AlreadyRunning(
                f"another farmbot (pid {holder}) already runs with state directory "
                f"{self._path.parent}; stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class Daemon:
    """farmbot running: the graph, its servers and interfaces, and its loops."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        load: Callable[[], Config] | None = None,
        cron: Callable[[str], Callable[[], Delays]] = cron_delays,
    ) -> None:
        """``load`` reads the configuration again for a reload (the CLI's loader, with its
        overrides); by default ``config.source`` from the directory farmbot started in.
        ``cron`` gives the times of a job's crontab expression (a test's come faster)."""
        self.config = config
        self._clock = clock
        self._stack = AsyncExitStack()
        self._lock = StateLock(config.server.state_dir)
        self._changed = asyncio.Event()  # tmux saw a pane die: tick now
        cwd = Path.cwd()
        self._load = load or (lambda: load_config(config.source, os.environ, cwd))
        self._schedules = Schedules()
        self._cron = cron
        self._tasks: asyncio.TaskGroup | None = None  # run()'s, while it runs
        self.farm: Farm
        self.reloader: Reloader
        self._duties: LeaderDuties

    async def __aenter__(self) -> Self:
        if shutil.which("tmux") is None:
            raise FarmbotError("tmux is not installed; install it (apt-get install tmux) and retry")
        state_dir = self.config.server.state_dir
        await asyncio.to_thread(statedir.prepare, state_dir, traversable=runs_as(self.config))
        self._lock.acquire()
        self._stack.callback(self._lock.release)
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        farm = await self._stack.enter_async_context(build(self.config, clock=self._clock))
        self.farm = farm
        self.reloader = Reloader(
            load=lambda: asyncio.to_thread(self._load),  # reads files, maybe runs git
            current=lambda: self.config,
            apply=self._apply,
            bus=farm.bus,
            clock=self._clock,
        )
        await farm.monitor.reconcile(startup=True)
        await farm.web.start(farm.cluster.handle)
        farm.supervisor.update_agent_env(FARMBOT_URL=self.url)  # the port is known now
        farm.cluster.url = self.url
        self._stack.push_async_callback(farm.web.stop)
        self._stack.push_async_callback(farm.cluster.stopped)
        tick = farm.config.supervisor.tick_seconds
        loops: list[tuple[str, Loop]] = [
            ("hearing", farm.ears.run),
            ("autopilot", functools.partial(farm.autopilot.run, tick)),
            ("retention", farm.retention.run),
            *farm.cluster.leader_loops(),
        ]
        self._duties = LeaderDuties(farm.chats, farm.cluster.handle, farm.alerts, loops)
        self._stack.push_async_callback(farm.cluster.leader.resign, self._duties)
        if await farm.cluster.leader.acquire():  # after the site: a webhook must be reachable
            await self._duties.begin()

    @property
    def url(self) -> str:
        return f"http://{_host_for_url(self.config.server.host)}:{self.farm.web.port}"

    async def run(self, stop: asyncio.Event, reload: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set; then stop taking input and flush what was taken.

        Each time ``reload`` is set (SIGHUP), the configuration is reloaded.
        """
        farm = self.farm
        leader = farm.cluster.leader
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            leading = tasks.create_task(leader.run(self._duties), name="leadership")
            workers = [
                tasks.create_task(self._supervise(), name="supervise"),
                tasks.create_task(self._watch_tmux(), name="tmux-hooks"),
                tasks.create_task(farm.delivery.run(), name="delivery"),
                tasks.create_task(farm.qa.run(), name="qa"),
                tasks.create_task(self._replay_spool(), name="spool-replay"),
            ]
            workers += [tasks.create_task(loop(), name=name) for name, loop in farm.cluster.loops()]
            self._schedules.apply(tasks, self._scheduled(self.config))
            if reload is not None:
                workers.append(tasks.create_task(self._reloads(reload), name="reload"))
            interval = systemd.watchdog_interval()
            if interval:
                workers.append(tasks.create_task(_watchdog(interval, stop), name="watchdog"))
            await stop.wait()
            if released := farm.monitor.let_go():  # a held hook would keep the web open
                log.info("let go of %d held permission request(s): their dialogs show", released)
            await farm.web.stop()  # no new commands or hook events
            for worker in workers:
                worker.cancel()
            self._schedules.cancel()
            self._tasks = None
            # The notifier finishes an in-flight send rather than repeat it later; then
            # the chat interfaces stop and the leader's lock is released.
            await leader.resign(self._duties)
            leading.cancel()

    async def tick(self) -> None:
        """One supervision round: reconcile with tmux, read the panes, decide."""
        try:
            await self.farm.monitor.round()
        except (TmuxError, StorageError) as exc:
            log.warning("supervisor tick failed: %s", exc)

    async def _supervise(self) -> None:
        """A tick every ``tick_seconds``, and at once when tmux says a pane died."""
        period = self.config.supervisor.tick_seconds
        while True:
            self._changed.clear()
            try:
                await self.tick()
            except Exception:  # this loop's one boundary: log, and keep supervising
                log.exception("supervisor tick failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(period):
                    await self._changed.wait()

    async def _watch_tmux(self) -> None:
        """Turn tmux's pane-died and session-closed hooks into an immediate tick."""
        while True:
            try:
                await self.farm.tmux.changed()
            except TmuxError:  # no tmux server yet (no agent has been started)
                await asyncio.sleep(self.config.supervisor.tick_seconds)
                continue
            self._changed.set()

    def _scheduled(self, config: Config) -> dict[str, Schedule]:
        """The cron jobs and the QA cycle a configuration asks for, by task name."""
        wanted = {
            f"cron-{job.name}": Schedule(job, self._cron(job.cron), self._cron_work(job.name))
            for job in config.cron
        }
        if config.qa.interval_minutes > 0:
            seconds = config.qa.interval_minutes * 60
            wanted["qa-cycle"] = Schedule(("qa", seconds), every(seconds), self.farm.qa.run_cycle)
        return wanted

    def _cron_work(self, name: str) -> Callable[[], Awaitable[None]]:
        async def work() -> None:
            if self.farm.cluster.leader.leading:  # every node keeps time; the leader runs it
                await self.run_cron(name)

        return work

    async def reload(self) -> Outcome:
        """Reload the configuration: apply it, or refuse it and keep the one in force."""
        return await self.reloader.reload()

    async def _apply(self, config: Config) -> None:
        await self.farm.reconfigure(config)
        self.config = config
        if self._tasks is not None:  # running: reschedule what changed
            self._schedules.apply(self._tasks, self._scheduled(config))

    async def _reloads(self, requested: asyncio.Event) -> None:
        while True:
            await requested.wait()
            requested.clear()
            systemd.notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
            try:
                await self.reload()
            except Exception:  # this loop's one boundary: the daemon keeps running
                log.exception("config reload failed; parts of it may be in force")
            finally:
                systemd.notify("READY=1")

    async def run_cron(self, name: str) -> Reply:
        """Run a configured cron job's command as its configured user (audited as such)."""
        job = next(j for j in self.config.cron if j.name == name)
        reply = await self.farm.cluster.handle(
            Incoming(platform="scheduler", user_id=job.user, chat=f"cron:{name}", text=job.command)
        )
        level = logging.INFO if reply.ok else logging.WARNING
        log.log(level, "cron %s: %s -> %s", name, job.command, reply.text)
        return reply

    async def _replay_spool(self) -> None:
        """Ingest the hook events `farmbot hook` spooled while the daemon was down."""
        monitor = self.farm.monitor

        async def replay(agent: str, event: dict[str, Any]) -> None:
            await monitor.on_hook(agent, event, hold=False)  # no CLI waits for its answer

        key = self.farm.key
        replayed = await replay_spool(
            self.farm.state_dir / "spool", replay, lambda agent: hook_token(key, agent)
        )
        if replayed:
            log.info("replayed %d spooled hook events", replayed)


async def _watchdog(interval: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        systemd.notify("WATCHDOG=1")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


def _host_for_url(host: str) -> str:
    if host in ("0.0.0.0", "", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _program() -> str:
    """How to type the farmbot command here: ``farmbot`` if PATH finds this one."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "farmbot"
    if os.path.basename(argv0) != "farmbot":
        return "farmbot"  # python -m farmbot, or a test harness
    found = shutil.which("farmbot")
    if found and os.path.realpath(found) == os.path.realpath(argv0):
        return "farmbot"
    return argv0


def announce(daemon: Daemon, out: TextIO) -> None:
    """Tell a first-time user where to go, without them reading anything else."""
    config = daemon.config
    farmbot = _program()
    key_file = localkey.path(config.server.state_dir)
    projects = ", ".join(f"{p.name} ({p.path})" for p in config.projects) or (
        "none — run farmbot inside a git repository or add [[projects]] to the config"
    )
    source = (
        str(config.source)
        if config.source
        else f"none (embedded defaults; `{farmbot} init` writes one)"
    )
    if daemon.farm.key_created:  # once: every start's output ends up in the journal
        login = (
            f"  status page and console: {localkey.login_link(daemon.url, daemon.farm.key)}\n"
            f"    (that link logs the browser in; it is shown this once: the key is in\n"
            f"    {key_file}, and `{farmbot} login-link` prints the link again)\n"
        )
    else:
        login = (
            f"  status page and console: {daemon.url}/\n"
            f"    (`{farmbot} login-link` prints the link that logs a browser in)\n"
        )
    print(
        f"farmbot {__version__} is running.\n"
        f"{login}"
        f"  config: {source}\n"
        f"  projects: {projects}\n"
        f"  agents: default profile '{config.supervisor.default_agent}'; "
        f"watch them with `{farmbot} attach <agent>` or `tmux -L {config.tmux.socket} ls`\n"
        f'  try: {farmbot} cmd "/spawn builder 42"\n'
        f"  Ctrl-C stops farmbot; the agents keep running in tmux.",
        file=out,
        flush=True,
    )


async def serve(
    config: Config,
    *,
    stop: asyncio.Event | None = None,
    out: TextIO = sys.stdout,
    load: Callable[[], Config] | None = None,
) -> None:
    """Run the daemon until SIGTERM/SIGINT (or ``stop``); SIGHUP reloads (with ``load``)."""
    stop = stop or asyncio.Event()
    reload = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # From the start: SIGHUP's default action would end the daemon. One that arrives while
    # it starts is taken up once it runs.
    loop.add_signal_handler(signal.SIGHUP, reload.set)
    # What is loaded by now (the modules, the config) lives as long as the process, and
    # the cyclic garbage collector's full passes walk all of it to find next to nothing:
    # one that fell in the start cost 20-35 ms here. Frozen, it is left out of every
    # collection, at the start and later. Unfrozen at the end, for a caller that goes on.
    gc.freeze()
    try:
        async with Daemon(config, load=load) as daemon:
            announce(daemon, out)
            systemd.notify("READY=1")
            await daemon.run(stop, reload)
            systemd.notify("STOPPING=1")
            log.info("stopping: interfaces stop, agents keep running in tmux")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        gc.unfreeze()
