"""The daemon: owns every lifetime, in one TaskGroup.

``farmbot serve`` is ``serve(config)``. ``async with Daemon(config) as daemon:`` takes the
state directory's lock (one daemon per state directory: a second one would poll the same
chat twice), builds the graph (farmbot.build), reconciles with tmux, starts the web
server and then the chat interfaces. ``daemon.run(stop)`` runs the time-driven work --
the supervision tick, prompt delivery, alert delivery, QA, the autopilot, cron jobs,
the hook spool's replay, systemd's watchdog -- until ``stop`` is set, then stops taking
input and flushes what was taken. SIGTERM/SIGINT set ``stop``; the agents keep running
in tmux and the next start re-adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
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
from farmbot.config.schema import Config, CronJob
from farmbot.errors import AlreadyRunning, FarmbotError, StorageError, TmuxError
from farmbot.messages import Incoming, Reply

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

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._stack = AsyncExitStack()
        self._lock = StateLock(config.server.state_dir)
        self._changed = asyncio.Event()  # tmux saw a pane die: tick now
        self.farm: Farm

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
        await farm.monitor.reconcile(startup=True)
        await farm.web.start(farm.router.handle)
        farm.supervisor.update_agent_env(FARMBOT_URL=self.url)  # the port is known now
        self._stack.push_async_callback(farm.web.stop)
        for chat in farm.chats:  # after the site: a webhook must be reachable when set
            await chat.start(farm.router.handle)
            self._stack.push_async_callback(chat.stop)

    @property
    def url(self) -> str:
        return f"http://{_host_for_url(self.config.server.host)}:{self.farm.web.port}"

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; then stop taking input and flush what was taken."""
        farm = self.farm
        async with asyncio.TaskGroup() as tasks:
            alerts = tasks.create_task(farm.alerts.run(), name="alerts")
            workers = [
                tasks.create_task(self._supervise(), name="supervise"),
                tasks.create_task(self._watch_tmux(), name="tmux-hooks"),
                tasks.create_task(farm.delivery.run(), name="delivery"),
                tasks.create_task(farm.qa.run(), name="qa"),
                tasks.create_task(farm.autopilot.run(farm.config.supervisor.tick_seconds),
                                  name="autopilot"),
                tasks.create_task(self._replay_spool(), name="spool-replay"),
            ]  # fmt: skip
            if farm.config.qa.interval_minutes > 0:
                every = farm.config.qa.interval_minutes * 60
                workers.append(tasks.create_task(self._every(every, farm.qa.run_cycle, late=True)))
            for job in farm.config.cron:
                workers.append(tasks.create_task(self._cron(job), name=f"cron-{job.name}"))
            interval = systemd.watchdog_interval()
            if interval:
                workers.append(tasks.create_task(_watchdog(interval, stop), name="watchdog"))
            await stop.wait()
            await farm.web.stop()  # no new commands or hook events
            for worker in workers:
                worker.cancel()
            farm.alerts.close()  # finish an in-flight send rather than repeat it later
            await alerts
            for chat in farm.chats:
                await chat.stop()

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

    async def _every(
        self, seconds: float, work: Callable[[], Awaitable[None]], *, late: bool = False
    ) -> None:
        """Run ``work`` every ``seconds`` (first after one period when ``late``)."""
        if late:
            await asyncio.sleep(seconds)
        while True:
            try:
                await work()
            except Exception:  # this loop's one boundary: log, and keep supervising
                log.exception("%s failed; it runs again in %.0f s", work, seconds)
            await asyncio.sleep(seconds)

    async def _cron(self, job: CronJob) -> None:
        from apscheduler.triggers.cron import CronTrigger

        trigger = CronTrigger.from_crontab(job.cron, timezone="UTC")
        previous = None
        while True:
            now = dt.datetime.now(dt.UTC)
            when = trigger.get_next_fire_time(previous, now)
            if when is None:
                return
            await asyncio.sleep(max(0.0, (when - now).total_seconds()))
            previous = when
            await self.run_cron(job.name)

    async def run_cron(self, name: str) -> Reply:
        """Run a configured cron job's command as its configured user (audited as such)."""
        job = next(j for j in self.config.cron if j.name == name)
        reply = await self.farm.router.handle(
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
    config: Config, *, stop: asyncio.Event | None = None, out: TextIO = sys.stdout
) -> None:
    """Run the daemon until SIGTERM/SIGINT (or ``stop``)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Daemon(config) as daemon:
            announce(daemon, out)
            systemd.notify("READY=1")
            await daemon.run(stop)
            systemd.notify("STOPPING=1")
            log.info("stopping: interfaces stop, agents keep running in tmux")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
