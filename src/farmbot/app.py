"""The composition root: builds config, storage, supervisor and interfaces, and runs them.

``farmbot serve`` is ``serve(config)``: one process, one event loop, one TaskGroup.
SIGTERM/SIGINT stop the interfaces, the scheduler and the database cleanly; the agents
keep running in tmux and the next start re-adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from farmbot import __version__, localkey, systemd
from farmbot.adapters.hooks import HookEndpoint, hook_token, replay_spool
from farmbot.adapters.slack import SlackInterface
from farmbot.adapters.telegram import TelegramInterface
from farmbot.adapters.web import ReadinessCheck, WebInterface
from farmbot.adapters.webhook import WebhookInterface
from farmbot.bot.authz import People
from farmbot.bot.handlers import Handlers
from farmbot.bot.router import Router
from farmbot.config.schema import Config
from farmbot.errors import AlreadyRunning, FarmbotError, StorageError, TmuxError
from farmbot.messages import Incoming, Interface
from farmbot.storage.sqlite import SqliteStore
from farmbot.supervisor.agents import Supervisor
from farmbot.supervisor.alerts import AlertRules
from farmbot.supervisor.events import EventLog
from farmbot.supervisor.gates import Gates
from farmbot.supervisor.ingest import EventWriter
from farmbot.supervisor.monitor import Monitor
from farmbot.supervisor.notifier import Notifier
from farmbot.supervisor.qa import QaRunner
from farmbot.supervisor.tmux import Tmux

log = logging.getLogger(__name__)

DB_FILE = "farmbot.db"
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


class App:
    """Everything farmbot runs, built from one Config. An async context manager."""

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.state_dir = config.server.state_dir
        self.started_at = clock()
        self._stack = contextlib.AsyncExitStack()
        self._lock = StateLock(self.state_dir)
        self._scheduler: AsyncIOScheduler | None = None

    async def __aenter__(self) -> App:
        if shutil.which("tmux") is None:
            raise FarmbotError("tmux is not installed; install it (apt-get install tmux) and retry")
        await asyncio.to_thread(self.state_dir.mkdir, mode=0o700, parents=True, exist_ok=True)
        self._lock.acquire()
        self._stack.callback(self._lock.release)
        try:
            await self._build()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _build(self) -> None:
        config, clock = self.config, self.clock
        self.key = localkey.ensure(self.state_dir)
        self.store = await self._stack.enter_async_context(SqliteStore(self.state_dir / DB_FILE))
        self.tmux = Tmux(config.tmux.socket)
        self.interfaces: dict[str, Interface] = {}
        self.notifier = Notifier(self.store, self.interfaces, config.alerts, clock=clock)
        self.events = EventLog(
            self.store, clock, AlertRules(config.alerts), on_alerts=self.notifier.notify_new
        )
        self.supervisor = Supervisor(
            config,
            self.store,
            self.tmux,
            self.events,
            clock=clock,
            agent_env={"FARMBOT_URL": config.server.url, "FARMBOT_STATE_DIR": str(self.state_dir)},
            hook_token=lambda agent_id: hook_token(self.key, agent_id),
        )
        self.gates = Gates(self.store, self.events, clock)
        self.qa = QaRunner(config, self.store, self.events, clock=clock)
        self.writer = EventWriter(self.store, clock)
        self.monitor = Monitor(
            config,
            self.store,
            self.tmux,
            self.supervisor,
            self.gates,
            self.events,
            write_event=self.writer.write,
            on_idle=lambda agent: self.qa.request(agent, "idle"),
            clock=clock,
        )
        self.hooks = HookEndpoint(self.monitor.on_hook, self.key)
        self.slack = SlackInterface(config.slack, self.store, clock=clock) if config.slack else None
        self.telegram = (
            TelegramInterface(config.telegram, self.store, clock=clock) if config.telegram else None
        )
        self.router = Router(
            Handlers(self.supervisor, self.gates, clock, store=self.store, notifier=self.notifier),
            People(config.users),
            self.store,
            clock,
        )
        self.web = WebInterface(
            config.server.host,
            config.server.port,
            self.key,
            status=self.status,
            readiness=self._readiness(),
        )
        for route in self.hooks.routes():
            self.web.add_route(*route)
        self.interfaces["web"] = self.web
        for chat in self._chats():
            for route in chat.routes():  # webhook / HTTP modes: before the site starts
                self.web.add_route(*route)
            self.interfaces[chat.name] = chat
        for hook in config.webhooks:
            webhook = WebhookInterface(hook)
            self.interfaces[hook.name] = webhook
            self._stack.push_async_callback(webhook.stop)
        await self.supervisor.sync_projects()
        await self.supervisor.reconcile(startup=True)
        await self.web.start(self.router.handle)
        self.supervisor.update_agent_env(FARMBOT_URL=self.url)  # the port is known now
        self._stack.push_async_callback(self.web.stop)
        for chat in self._chats():  # after the site: a webhook must be reachable when set
            await chat.start(self.router.handle)
            self._stack.push_async_callback(chat.stop)
        self._start_scheduler()

    def _start_scheduler(self) -> None:
        scheduler = AsyncIOScheduler(timezone="UTC")
        every = {"max_instances": 1, "coalesce": True}
        scheduler.add_job(
            self._tick,
            "interval",
            seconds=self.config.supervisor.tick_seconds,
            id="supervisor-tick",
            **every,
        )
        if self.config.qa.interval_minutes > 0:
            scheduler.add_job(
                self.qa.run_cycle,
                "interval",
                minutes=self.config.qa.interval_minutes,
                id="qa-cycle",
                **every,
            )
        for job in self.config.cron:
            scheduler.add_job(
                self._run_cron,
                CronTrigger.from_crontab(job.cron, timezone="UTC"),
                args=[job.name],
                id=f"cron-{job.name}",
                **every,
            )
        scheduler.start()
        self._scheduler = scheduler
        self._stack.callback(scheduler.shutdown, wait=False)

    async def _tick(self) -> None:
        """One supervision round: reconcile with tmux, read the panes, deliver prompts."""
        try:
            await self.monitor.round()
        except (TmuxError, StorageError) as exc:
            log.warning("supervisor tick failed: %s", exc)

    async def _run_cron(self, name: str) -> None:
        """Run a configured cron job's command as its configured user (audited as such)."""
        job = next(j for j in self.config.cron if j.name == name)
        reply = await self.router.handle(
            Incoming(platform="scheduler", user_id=job.user, chat=f"cron:{name}", text=job.command)
        )
        level = logging.INFO if reply.ok else logging.WARNING
        log.log(level, "cron %s: %s -> %s", name, job.command, reply.text)

    def _readiness(self) -> dict[str, ReadinessCheck]:
        checks: dict[str, ReadinessCheck] = {
            "database": self._database_ready,
            "tmux": self._tmux_ready,
        }
        for chat in self._chats():
            checks[chat.name] = chat.ready
        return checks

    def _chats(self) -> list[SlackInterface | TelegramInterface]:
        """The chat interfaces that are configured."""
        return [chat for chat in (self.telegram, self.slack) if chat is not None]

    async def _database_ready(self) -> str | None:
        try:
            await self.store.ping()
        except StorageError as exc:
            return str(exc)
        return None

    async def _tmux_ready(self) -> str | None:
        try:
            await self.tmux.ping()
        except TmuxError as exc:
            return str(exc)
        return None

    @property
    def url(self) -> str:
        return f"http://{_host_for_url(self.config.server.host)}:{self.web.port}"

    async def status(self) -> dict[str, Any]:
        """What the status page and ``farmbot status`` show."""
        now = self.clock()
        agents = await self.supervisor.list_agents()
        return {
            "version": __version__,
            "now": now,
            "started_at": self.started_at,
            "projects": [asdict(p) for p in await self.supervisor.projects()],
            "agents": [a.to_json() for a in agents],
            "gates": [g.to_json() for g in await self.gates.pending()],
            "events": [e.to_json() for e in await self.store.recent_events(40)],
            "alerts": [a.to_json() for a in await self.store.recent_alerts(20)],
            "outbox": await self.store.outbox_summary(),
            "dead_letters": [d.to_json() for d in await self.store.dead_letters(20)],
            "qa_runs": [asdict(r) for r in await self.store.recent_qa_runs(10)],
            "problems": {
                name: problem
                for name, interface in self.interfaces.items()
                if (problem := getattr(interface, "problem", None))
            },
            "stats": {
                "supervisor": repr(self.supervisor),
                "router": repr(self.router),
                "web": repr(self.web),
                "events": repr(self.events),
                "monitor": repr(self.monitor),
                "hooks": repr(self.hooks),
                "writer": repr(self.writer),
                "qa": repr(self.qa),
                "notifier": repr(self.notifier),
                **{chat.name: repr(chat) for chat in self._chats()},
            },
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; then stop taking input and flush what was taken."""
        async with asyncio.TaskGroup() as tasks:
            writer = tasks.create_task(self.writer.run(), name="event-writer")
            notifier = tasks.create_task(self.notifier.run(), name="notifier")
            workers = [
                tasks.create_task(self.qa.run(), name="qa"),
                tasks.create_task(self._replay_spool(), name="spool-replay"),
            ]
            interval = systemd.watchdog_interval()
            if interval:
                workers.append(tasks.create_task(_watchdog(interval, stop), name="watchdog"))
            await stop.wait()
            await self.web.stop()  # no new commands or hook events
            await self.writer.close()  # flush every event already acknowledged
            await writer
            self.notifier.close()  # finish an in-flight send rather than repeat it later
            await notifier
            for chat in self._chats():
                await chat.stop()
            for worker in workers:
                worker.cancel()

    async def _replay_spool(self) -> None:
        """Ingest the hook events `farmbot hook` spooled while the daemon was down."""
        replayed = await replay_spool(self.state_dir / "spool", self.monitor.on_hook)
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


def announce(app: App, out: TextIO) -> None:
    """Tell a first-time user where to go, without them reading anything else."""
    config = app.config
    farmbot = _program()
    projects = ", ".join(f"{p.name} ({p.path})" for p in config.projects) or (
        "none — run farmbot inside a git repository or add [[projects]] to the config"
    )
    source = (
        str(config.source)
        if config.source
        else f"none (embedded defaults; `{farmbot} init` writes one)"
    )
    print(
        f"farmbot {__version__} is running.\n"
        f"  status page and console: {app.url}/#key={app.key}\n"
        f"    (that link logs the browser in; the key is in {localkey.path(app.state_dir)})\n"
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
        async with App(config) as app:
            announce(app, out)
            systemd.notify("READY=1")
            await app.run(stop)
            systemd.notify("STOPPING=1")
            log.info("stopping: interfaces and scheduler stop, agents keep running in tmux")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
