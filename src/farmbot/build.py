"""The one builder of farmbot's object graph: ``async with build(config) as farm:``.

Everything farmbot runs is wired here, once, from a ``Config`` -- storage, the event bus,
alerts, the supervisor and its monitor, the router, the web interface and every
configured chat interface -- and the daemon and the tests use the same graph. Building
opens storage and the event bus and takes up what was tracked before a restart; it
starts no server, no chat connection and no loop (``farmbot.daemon`` does, and owns
their lifetimes).

``Farm.reconfigure(config)`` hands a reloaded config to every component that reads one
(farmbot/reload.py decides whether it may); the graph itself stays as it is.

Interfaces are registered in ``INTERFACES``: a line each, naming the config sections that
configure it and the class to build from each, imported only when configured (so the
daemon loads no chat library it does not use).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from farmbot import __version__, localkey, statedir
from farmbot.adapters.hooks import HookEndpoint, hook_token
from farmbot.adapters.metrics import MetricsEndpoint, Sources
from farmbot.adapters.shared import InterfaceDeps
from farmbot.adapters.web import WebInterface
from farmbot.alerts import Alerts, Ears
from farmbot.alerts.edits import alert_gate, decided_note
from farmbot.bot.authz import People
from farmbot.bot.commands import SPECS, Commands, Context, menu
from farmbot.bot.limits import RateLimiter
from farmbot.bot.router import Router
from farmbot.bus import EventBus
from farmbot.cluster import (
    Cluster,
    NodeDirectory,
    Replies,
    RoutedBuilders,
    StepRunner,
    life_of,
)
from farmbot.config.schema import Config
from farmbot.messages import HasStatistics, Hears, Interface, ReportsReadiness, ServesRoutes
from farmbot.models import Agent, Alert, Gate, GateStatus
from farmbot.storage import Storage, open_storage
from farmbot.storage.db import OpensSessions
from farmbot.storage.retention import Retention, horizon
from farmbot.supervisor.agents import Supervisor, probe_projects
from farmbot.supervisor.autopilot import MILESTONE, Autopilot, Control, Milestones
from farmbot.supervisor.autopilot.builders import Builders, LocalBuilders
from farmbot.supervisor.delivery import Delivery
from farmbot.supervisor.gates import Gates
from farmbot.supervisor.keyboard import Keyboard
from farmbot.supervisor.monitor import PERMISSION, Monitor
from farmbot.supervisor.qa import QaRunner
from farmbot.supervisor.state import Rules
from farmbot.supervisor.tmux import Tmux

DB_FILE = "farmbot.db"
RECENT_EVENTS = 40


@dataclass(frozen=True, slots=True)
class Registration:
    """An interface: the config sections that configure it, and ``module:Class`` to build."""

    sections: Callable[[Config], Sequence[Any]]
    factory: str  # the class takes (section config, InterfaceDeps)

    def build(self, config: Config, deps: InterfaceDeps) -> list[Interface]:
        sections = self.sections(config)
        if not sections:
            return []
        module, _, name = self.factory.partition(":")
        cls = getattr(importlib.import_module(module), name)
        return [cls(section, deps) for section in sections]


def _chat(name: str) -> Callable[[Config], Sequence[object]]:
    """The section of the chat platform ``name`` (config.chats), if it is configured."""

    def sections(config: Config) -> Sequence[object]:
        section = config.chats.get(name)
        return [section] if section is not None else []

    return sections


INTERFACES: tuple[Registration, ...] = (
    Registration(lambda c: c.webhooks, "farmbot.adapters.webhook:WebhookInterface"),
    Registration(_chat("telegram"), "farmbot.adapters.telegram:TelegramInterface"),
    Registration(_chat("slack"), "farmbot.adapters.slack:SlackInterface"),
    Registration(_chat("discord"), "farmbot.adapters.discord:DiscordInterface"),
)


@dataclass
class Farm:
    """The whole object graph of one farmbot."""

    config: Config
    clock: Callable[[], float]
    key: str
    storage: Storage
    tmux: Tmux
    bus: EventBus
    alerts: Alerts
    ears: Ears  # whether each chat interface still hears
    gates: Gates
    keyboard: Keyboard
    monitor: Monitor
    delivery: Delivery
    supervisor: Supervisor
    qa: QaRunner
    builders: Builders  # where the autopilot's builders run: here, or routed to their nodes
    workshop: LocalBuilders  # what carries out the autopilot's steps on this node
    autopilot: Autopilot
    control: Control
    router: Router
    limits: RateLimiter
    retention: Retention
    cluster: Cluster
    hooks: HookEndpoint
    metrics: MetricsEndpoint
    web: WebInterface
    interfaces: dict[str, Interface]  # by name: the web console, chats, webhooks
    started_at: float = field(default=0.0)
    key_created: bool = False  # this start made the local key (a first start)

    @property
    def state_dir(self) -> Path:
        return self.config.server.state_dir

    @property
    def chats(self) -> list[Interface]:
        """The interfaces other than the web console."""
        return [i for name, i in self.interfaces.items() if name != "web"]

    def components(self) -> dict[str, object]:
        """Every long-lived part, by name (health checks and statistics iterate over it)."""
        return {
            "database": self.storage,
            "tmux": self.tmux,
            "bus": self.bus,
            "alerts": self.alerts,
            "ears": self.ears,
            "monitor": self.monitor,
            "delivery": self.delivery,
            "supervisor": self.supervisor,
            "qa": self.qa,
            "builders": self.builders,
            "autopilot": self.autopilot,
            "router": self.router,
            "limits": self.limits,
            "retention": self.retention,
            "cluster": self.cluster,
            "hooks": self.hooks,
            "metrics": self.metrics,
            **self.interfaces,
        }

    async def reconfigure(self, config: Config) -> None:
        """Hand a reloaded config to every component that reads one, from now on.

        What only a restart changes (listening address, storage, tmux, chat interfaces)
        is refused before this by farmbot.reload, so the graph itself stays as it is.
        """
        self.config = config
        self.bus.reconfigure(dedupe_window=config.alerts.dedupe_window)
        self.alerts.reconfigure(config.alerts)
        self.monitor.reconfigure(config)
        self.delivery.reconfigure(config.supervisor)
        self.qa.reconfigure(config)
        self.workshop.reconfigure(config)
        self.autopilot.reconfigure(config)
        self.router.reconfigure(People(config.users))
        self.limits.reconfigure(config.limits)
        events, audit = _horizons(config)
        self.retention.reconfigure(keep_events=events, keep_audit=audit)
        self.metrics.reconfigure(config.server.metrics_token)
        await self.supervisor.reconfigure(config)  # registers projects that are new

    async def problems(self) -> dict[str, str]:
        """What keeps a component from working, by name (empty when all is well)."""
        found: dict[str, str] = {}
        # Chat interfaces run on the leader only: on another node they are idle, not deaf.
        idle = set() if self.cluster.leader.leading else {n for n in self.interfaces if n != "web"}
        for name, component in self.components().items():
            if name in idle:
                continue
            if name != "web" and isinstance(component, ReportsReadiness):
                problem = await component.ready()
                if problem is not None:
                    found[name] = problem
            if name not in found and isinstance(component, Hears):  # deaf is not ready
                hearing = component.hearing()
                if not hearing.ok:
                    found[name] = f"not hearing: {hearing.detail}"
        return found

    def readiness_checks(self) -> list[str]:
        return [
            name
            for name, c in self.components().items()
            if name != "web" and isinstance(c, ReportsReadiness | Hears)
        ]

    def statistics(self) -> dict[str, str]:
        stats: dict[str, str] = {}
        for name, component in self.components().items():
            if isinstance(component, HasStatistics):
                counters = component.statistics()
                stats[name] = " ".join(f"{k}={v}" for k, v in counters.items())
            else:
                stats[name] = repr(component)
        return stats

    async def status(self) -> dict[str, Any]:
        """What the status page and ``farmbot status`` show."""
        storage = self.storage
        agents = await self.supervisor.list_agents()
        cluster = self.cluster
        nodes = await cluster.directory.states() if cluster.shared else []
        pending = await self.gates.pending()
        alerts = await storage.outbox.recent_alerts(20)
        return {
            "version": __version__,
            "now": self.clock(),
            "started_at": self.started_at,
            "node": cluster.node,
            "nodes": [n.to_json() for n in nodes],
            "leader": next((n.name for n in nodes if n.leader), None),
            "projects": [asdict(p) for p in await self.supervisor.projects()],
            "agents": [a.to_json() for a in agents],
            "gates": [g.to_json() for g in pending],
            "decided_gates": await self._decided(alerts, pending),
            "events": [e.to_json() for e in await storage.events.recent_events(RECENT_EVENTS)],
            "alerts": [a.to_json() for a in alerts],
            "outbox": await storage.outbox.outbox_summary(),
            "dead_letters": [d.to_json() for d in await storage.outbox.dead_letters(20)],
            "qa_runs": [asdict(r) for r in await storage.qa_runs.recent_qa_runs(10)],
            "autopilot": await self.autopilot_status(),
            "hearing": self.ears.status(),
            "problems": await self.problems(),
            "stats": self.statistics(),
        }

    async def _decided(self, alerts: list[Alert], pending: list[Gate]) -> dict[str, str]:
        """Who decided each gate these alerts asked about, and when (by gate id)."""
        open_ = {g.id for g in pending}
        notes: dict[str, str] = {}
        asked = {alert_gate(a.dedupe_key) for a in alerts}
        for gate_id in sorted(g for g in asked if g is not None and g not in open_):
            gate = await self.storage.gates.get_gate(gate_id)
            note = decided_note(gate) if gate is not None else None
            if note is not None:
                notes[str(gate_id)] = note
        return notes

    async def autopilot_status(self) -> dict[str, Any]:
        """Modes, runs with their waves and tasks, open tasks, milestone gates waiting."""
        projects, runs = [], []
        for run, tasks in await self.control.runs(None):
            runs.append({**run.to_json(), "tasks": [t.to_json() for t in tasks]})
        for pc in self.config.projects:
            mode, source = await self.autopilot.mode(pc.name)
            projects.append({"project": pc.name, "mode": mode.value, "set_by": source})
        storage = self.storage
        open_tasks = await storage.tasks.open_tasks()
        closed = await storage.tasks.recent_closed(20)
        gates = await storage.gates.list_gates(GateStatus.PENDING)
        return {
            "projects": projects,
            "runs": runs,
            "tasks": [t.to_json() for t in [*open_tasks, *closed]],
            "milestones": [g.to_json() for g in gates if g.kind == MILESTONE],
        }


def _failed_logins(interfaces: Mapping[str, Interface]) -> int:
    """The web server's count of requests refused for the key (0 before it exists)."""
    web = interfaces.get("web")
    return web.failed_logins.count if isinstance(web, WebInterface) else 0


def _horizons(config: Config) -> tuple[float | None, float | None]:
    """Retention's horizons in seconds, events and audit; never inside the dedupe window
    (a delivered alert's row is what its repeats fold into)."""
    keep = horizon(config.storage.keep_events_days)
    events = None if keep is None else max(keep, config.alerts.dedupe_window)
    return events, horizon(config.storage.keep_audit_days)


def runs_as(config: Config) -> bool:
    """Whether some agent profile runs as another Unix user (README: "Security")."""
    return any(profile.run_as for profile in config.agents.values())


@asynccontextmanager
async def build(
    config: Config,
    *,
    clock: Callable[[], float] = time.time,
    interfaces: Sequence[Interface | Callable[[InterfaceDeps], Interface]] = (),
    registry: Sequence[Registration] = INTERFACES,
    rand: Callable[[], float] = random.random,
    environ: Mapping[str, str] | None = None,
) -> AsyncIterator[Farm]:
    """Build the graph from ``config``.

    ``interfaces`` are added to the configured ones (an interface, or a function that
    builds one from the deps every interface gets); ``rand`` is the alert notifier's
    jitter (tests make it a constant); ``environ`` is farmbot's own environment (default
    ``os.environ``), of which agents and the tmux server get only the allowlisted part.
    """
    environ = dict(os.environ if environ is None else environ)
    state_dir = config.server.state_dir
    await asyncio.to_thread(statedir.prepare, state_dir, traversable=runs_as(config))
    async with AsyncExitStack() as stack:
        key, key_created = localkey.ensure_new(state_dir)
        repos = asyncio.create_task(probe_projects(config))  # git runs while storage opens
        stack.callback(repos.cancel)  # (a no-op once it is done; the build may fail before)
        storage = await stack.enter_async_context(open_storage(config.storage, state_dir))
        tmux = Tmux(config.tmux.socket, environ)
        stack.callback(tmux.close)
        found: dict[str, Interface] = {}
        alerts = Alerts(config.alerts, storage.outbox, found, clock, rand=rand)
        bus = await stack.enter_async_context(
            EventBus(
                storage.events,
                clock,
                rules=alerts.drafts_for,
                dedupe_window=config.alerts.dedupe_window,
            )
        )
        bus.subscribe(alerts.on_event)
        ears = Ears(found, bus.publish, config.alerts.deaf_after_of, clock)
        rules = {name: Rules.of(profile) for name, profile in config.agents.items()}
        gates = Gates(storage.gates, bus, clock, config.gates)
        keyboard = Keyboard(tmux, lambda agent: rules.get(agent.profile))
        qa = QaRunner(config, agents=storage.agents, runs=storage.qa_runs, bus=bus, clock=clock)
        busy: set[str] = set()
        monitor = Monitor(
            config,
            agents=storage.agents,
            prompts=storage.prompts,
            tracks=storage.tracks,
            tmux=tmux,
            gates=gates,
            bus=bus,
            keyboard=keyboard,
            rules=rules,
            busy=lambda agent_id: agent_id in busy,
            on_qa=lambda agent, trigger: on_qa(agent, trigger),
            audit=storage.audit,
            clock=clock,
        )
        gates.register(PERMISSION, monitor)
        delivery = Delivery(
            config.supervisor,
            agents=storage.agents,
            prompts=storage.prompts,
            keyboard=keyboard,
            monitor=monitor,
            bus=bus,
            clock=clock,
            node=config.node.name,
        )
        supervisor = Supervisor(
            config,
            projects=storage.projects,
            agents=storage.agents,
            prompts=storage.prompts,
            tmux=tmux,
            bus=bus,
            monitor=monitor,
            delivery=delivery,
            clock=clock,
            agent_env={"FARMBOT_URL": config.server.url},
            hook_token=lambda agent_id: hook_token(key, agent_id),
            busy=busy,
            environ=environ,
        )
        directory = NodeDirectory(config.node, storage.nodes)
        shared = isinstance(storage.db, OpensSessions)  # several nodes may share it
        instance = life_of(config.node.name)
        replies = Replies(storage)
        workshop = LocalBuilders(
            config,
            supervisor=supervisor,
            agents=storage.agents,
            tasks=storage.tasks,
            qa=qa,
            adopt=lambda agent_id: autopilot.adopt(agent_id),
        )
        builders: Builders = workshop
        if shared:  # the autopilot (on the leader) has each step done on its node
            builders = RoutedBuilders(
                config.node, workshop, storage, directory, replies, instance, clock
            )
        autopilot = Autopilot(
            config,
            tasks=storage.tasks,
            runs=storage.runs,
            agents=storage.agents,
            prompts=storage.prompts,
            qa_runs=storage.qa_runs,
            supervisor=supervisor,
            builders=builders,
            gates=gates,
            bus=bus,
            wake_delivery=delivery.wake,
            leading=lambda: cluster.leader.leading,
            clock=clock,
        )
        gates.register(MILESTONE, Milestones(autopilot))
        control = Control(autopilot)

        def on_qa(agent: Agent, trigger: str) -> None:  # the autopilot verifies its own
            if not autopilot.owns(agent.id):
                qa.request(agent, trigger)

        limits = RateLimiter(config.limits, clock)
        context = Context(
            supervisor,
            gates,
            storage.outbox,
            alerts.notifier,
            clock=clock,
            specs=SPECS,
            autopilot=control,
            hearing=ears.readings,
            max_file_bytes=config.supervisor.max_file_bytes,
            nodes=directory if shared else None,
        )
        router = Router(
            Commands(context), People(config.users), storage.audit, clock, limits=limits
        )
        cluster = Cluster(
            config,
            storage,
            router,
            bus,
            directory,
            clock,
            instance=instance,
            replies=replies,
            steps=StepRunner(config.node.name, workshop, storage, clock),
        )
        hooks = HookEndpoint(monitor.on_hook, key, task_done=control.agent_done)
        keep_events, keep_audit = _horizons(config)
        retention = Retention(
            storage.retention, keep_events=keep_events, keep_audit=keep_audit, clock=clock
        )
        metrics = MetricsEndpoint(
            Sources(
                agents=storage.agents,
                gates=storage.gates,
                outbox=storage.outbox,
                monitor=monitor,
                notifier=alerts.notifier,
                commands=lambda: router.outcomes,
                limited=lambda: limits.refused,
                pruned=lambda: retention.pruned,
                interfaces=lambda: {n: i for n, i in found.items() if n != "web"},
                failed_logins=lambda: _failed_logins(found),
                clock=clock,
            ),
            key,
            config.server.metrics_token,
        )
        farm = Farm(
            config=config,
            clock=clock,
            key=key,
            storage=storage,
            tmux=tmux,
            bus=bus,
            alerts=alerts,
            ears=ears,
            gates=gates,
            keyboard=keyboard,
            monitor=monitor,
            delivery=delivery,
            supervisor=supervisor,
            qa=qa,
            builders=builders,
            workshop=workshop,
            autopilot=autopilot,
            control=control,
            router=router,
            limits=limits,
            retention=retention,
            cluster=cluster,
            hooks=hooks,
            metrics=metrics,
            web=None,  # type: ignore[arg-type]  # set just below: it serves the farm
            interfaces=found,
            started_at=clock(),
            key_created=key_created,
        )
        web = WebInterface(
            config.server.host,
            config.server.port,
            key,
            status=farm.status,
            problems=farm.problems,
            checks=farm.readiness_checks,
        )
        farm.web = web
        found["web"] = web
        bus.subscribe(web.on_event)  # the page's live updates
        deps = InterfaceDeps(
            actions=storage.actions,
            threads=storage.threads,
            menu=menu(),
            clock=clock,
            inbound=storage.inbound,
            instance=cluster.instance,
            questions=storage.questions,
        )
        extra = [i(deps) if callable(i) else i for i in interfaces]
        for interface in [*(i for r in registry for i in r.build(config, deps)), *extra]:
            found[interface.name] = interface
        for component in [hooks, metrics, *found.values()]:
            if isinstance(component, ServesRoutes):  # webhook / HTTP modes, hook events
                for route in component.routes():
                    web.add_route(*route)
        await supervisor.sync_projects(await repos)
        await cluster.start()
        await monitor.load()
        await autopilot.load()
        yield farm
