"""``GET /metrics``: farmbot in Prometheus's text format, with the official client library.

Everything is read at scrape time and nothing is kept between scrapes: each scrape reads
storage (agents, pending gates, the outbox) and the components' live counters into a
``Snapshot``, and renders it through a fresh ``CollectorRegistry`` holding one collector,
so no state lives in prometheus_client's global registry (two farms in one process, as
in the tests, never see each other's numbers).

The route checks its own credentials: ``Authorization: Bearer <token>`` with
``[server] metrics_token`` (a secret: ``env:NAME`` or ``vault:NAME``) or the local key.

Metrics (all prefixed ``farmbot_``): ``info``, ``agents{state}``, ``gates_pending{kind}``,
``gates_oldest_pending_age_seconds{kind}``, ``outbox_items{status}``,
``alert_delivery_latency_seconds`` (histogram), ``alerts_delivered_total``,
``alert_retries_total``, ``alert_dead_letters_total``, ``hook_events_total``,
``ticks_total``, ``tick_duration_seconds`` (histogram), ``commands_total{outcome}``,
``rate_limited_total{kind}``, ``interface_up{interface}``,
``interface_hearing{interface}``, ``interface_last_heard_timestamp_seconds{interface}``,
``retention_pruned_rows_total{table}``, ``web_failed_logins_total`` (requests the web
server refused for a missing or wrong local key: ``failed_logins`` on the status page;
``/metrics``' own refusals are not among them).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from farmbot import __version__
from farmbot.adapters.http import Request, Response, json_response
from farmbot.durations import Durations
from farmbot.errors import StorageError
from farmbot.messages import Hears, ReportsReadiness, WebRoute
from farmbot.models import AgentState, GateStatus
from farmbot.storage.agents import AgentStore
from farmbot.storage.gates import GateStore
from farmbot.storage.outbox import OutboxStore

if TYPE_CHECKING:  # prometheus_client is imported at the first scrape, not at start
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = ["PATH", "MetricsEndpoint", "Snapshot", "Sources", "render"]

log = logging.getLogger(__name__)

PATH = "/metrics"
OUTCOMES = ("ok", "denied", "usage", "not_found", "conflict", "failed", "error", "limited")
LIMITED_KINDS = ("spawn", "send", "command")
GATE_KINDS = ("permission", "milestone")


class Ticks(Protocol):
    """The monitor's counters."""

    @property
    def hook_events(self) -> int: ...
    @property
    def ticks(self) -> int: ...
    @property
    def tick_durations(self) -> Durations: ...


class Deliveries(Protocol):
    """The notifier's counters."""

    @property
    def delivered(self) -> int: ...
    @property
    def retried(self) -> int: ...
    @property
    def dead(self) -> int: ...
    @property
    def latency(self) -> Durations: ...


@dataclass(frozen=True, slots=True)
class Sources:
    """Where a scrape reads from (the builder wires the farm's parts in)."""

    agents: AgentStore
    gates: GateStore
    outbox: OutboxStore
    monitor: Ticks
    notifier: Deliveries
    commands: Callable[[], Mapping[str, int]]  # outcome -> commands (the router's audit)
    limited: Callable[[], Mapping[str, int]]  # kind -> commands refused by a rate limit
    pruned: Callable[[], Mapping[str, int]]  # table -> rows retention deleted
    interfaces: Callable[[], Mapping[str, object]]  # the chat interfaces, by name
    failed_logins: Callable[[], int] = lambda: 0  # the web server's refusals of the key
    clock: Callable[[], float] = time.time


@dataclass(frozen=True, slots=True)
class InterfaceState:
    up: bool
    hearing: bool | None  # None: it cannot tell
    last_heard: float | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every value one scrape shows."""

    agents: Mapping[str, int]  # state -> agents
    gates: Mapping[str, int]  # kind -> pending gates
    gate_age: Mapping[str, float]  # kind -> seconds the oldest pending one has waited
    outbox: Mapping[str, int]  # status -> items
    delivered: int
    retried: int
    dead: int
    latency: Durations
    hook_events: int
    ticks: int
    tick_durations: Durations
    commands: Mapping[str, int]
    limited: Mapping[str, int]
    pruned: Mapping[str, int]
    interfaces: Mapping[str, InterfaceState] = field(default_factory=dict)
    failed_logins: int = 0


async def gather(sources: Sources) -> Snapshot:
    """Read everything a scrape shows (raises StorageError when the database fails)."""
    now = sources.clock()
    agents = dict.fromkeys((s.value for s in AgentState), 0)
    for agent in await sources.agents.list_agents():
        agents[agent.state.value] = agents.get(agent.state.value, 0) + 1
    gates = dict.fromkeys(GATE_KINDS, 0)
    oldest: dict[str, float] = {}
    for gate in await sources.gates.list_gates(GateStatus.PENDING):
        gates[gate.kind] = gates.get(gate.kind, 0) + 1
        oldest[gate.kind] = min(oldest.get(gate.kind, gate.created_at), gate.created_at)
    interfaces: dict[str, InterfaceState] = {}
    for name, interface in sources.interfaces().items():
        problem = await interface.ready() if isinstance(interface, ReportsReadiness) else None
        hearing = interface.hearing() if isinstance(interface, Hears) else None
        interfaces[name] = InterfaceState(
            up=problem is None,
            hearing=None if hearing is None else hearing.ok,
            last_heard=None if hearing is None else hearing.last_heard,
        )
    monitor, notifier = sources.monitor, sources.notifier
    return Snapshot(
        agents=agents,
        gates=gates,
        gate_age={kind: max(0.0, now - oldest[kind]) if kind in oldest else 0.0 for kind in gates},
        outbox=await sources.outbox.outbox_summary(),
        delivered=notifier.delivered,
        retried=notifier.retried,
        dead=notifier.dead,
        latency=notifier.latency,
        hook_events=monitor.hook_events,
        ticks=monitor.ticks,
        tick_durations=monitor.tick_durations,
        commands={**dict.fromkeys(OUTCOMES, 0), **sources.commands()},
        limited={**dict.fromkeys(LIMITED_KINDS, 0), **sources.limited()},
        pruned=dict(sources.pruned()),
        interfaces=interfaces,
        failed_logins=sources.failed_logins(),
    )


class _Collector:
    """One scrape's metric families, from its snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._s = snapshot

    def collect(self) -> Iterable[Metric]:
        from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

        s = self._s
        info = GaugeMetricFamily("farmbot_info", "farmbot's version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield _labelled(GaugeMetricFamily, "farmbot_agents", "Agents by state", "state", s.agents)
        yield _labelled(
            GaugeMetricFamily, "farmbot_gates_pending", "Gates waiting for a decision", "kind",
            s.gates,
        )  # fmt: skip
        yield _labelled(
            GaugeMetricFamily,
            "farmbot_gates_oldest_pending_age_seconds",
            "How long the oldest pending gate of a kind has waited (0: none waits)",
            "kind",
            s.gate_age,
        )
        yield _labelled(
            GaugeMetricFamily, "farmbot_outbox_items", "Alert deliveries by status", "status",
            s.outbox,
        )  # fmt: skip
        yield _histogram(
            "farmbot_alert_delivery_latency_seconds",
            "From when an alert message was due to its delivery",
            s.latency,
        )
        yield CounterMetricFamily(
            "farmbot_alerts_delivered", "Alert messages delivered", value=s.delivered
        )
        yield CounterMetricFamily(
            "farmbot_alert_retries", "Alert deliveries that failed and wait to be retried",
            value=s.retried,
        )  # fmt: skip
        yield CounterMetricFamily(
            "farmbot_alert_dead_letters", "Alert deliveries given up on", value=s.dead
        )
        yield CounterMetricFamily(
            "farmbot_hook_events", "Agent hook events ingested", value=s.hook_events
        )
        yield CounterMetricFamily("farmbot_ticks", "Supervision ticks", value=s.ticks)
        yield _histogram(
            "farmbot_tick_duration_seconds", "How long a supervision tick took", s.tick_durations
        )
        yield _labelled(
            CounterMetricFamily, "farmbot_commands", "Commands by outcome", "outcome", s.commands
        )
        yield _labelled(
            CounterMetricFamily,
            "farmbot_rate_limited",
            "Commands refused by a per-person rate limit, by kind",
            "kind",
            s.limited,
        )
        up = GaugeMetricFamily(
            "farmbot_interface_up", "1 while a chat interface works", labels=["interface"]
        )
        hearing = GaugeMetricFamily(
            "farmbot_interface_hearing",
            "1 while a chat interface still receives (for those that can tell)",
            labels=["interface"],
        )
        heard = GaugeMetricFamily(
            "farmbot_interface_last_heard_timestamp_seconds",
            "When a chat interface last received anything",
            labels=["interface"],
        )
        for name, state in sorted(s.interfaces.items()):
            up.add_metric([name], 1 if state.up else 0)
            if state.hearing is not None:
                hearing.add_metric([name], 1 if state.hearing else 0)
            if state.last_heard is not None:
                heard.add_metric([name], state.last_heard)
        yield from (up, hearing, heard)
        yield _labelled(
            CounterMetricFamily,
            "farmbot_retention_pruned_rows",
            "Rows deleted by retention since start, by table",
            "table",
            s.pruned,
        )
        yield CounterMetricFamily(
            "farmbot_web_failed_logins",
            "Web requests refused for a missing or wrong key (the console, the API)",
            value=s.failed_logins,
        )


def _labelled(
    family: type[GaugeMetricFamily] | type[CounterMetricFamily],
    name: str,
    documentation: str,
    label: str,
    values: Mapping[str, float],
) -> Metric:
    metric = family(name, documentation, labels=[label])
    for value_label, value in sorted(values.items()):
        metric.add_metric([value_label], value)
    return metric


def _histogram(name: str, documentation: str, durations: Durations) -> Metric:
    from prometheus_client.metrics_core import HistogramMetricFamily

    buckets = [(_le(bound), float(n)) for bound, n in durations.cumulative()]
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=durations.sum)


def _le(bound: float) -> str:
    """A bucket's bound as Prometheus writes it: 0.25, 1.0, +Inf."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


def render(snapshot: Snapshot) -> bytes:
    """The Prometheus text exposition of one snapshot."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(snapshot))
    return generate_latest(registry)


class MetricsEndpoint:
    """Serves ``GET /metrics`` on farmbot's web server (a ``ServesRoutes`` component)."""

    name = "metrics"

    def __init__(self, sources: Sources, key: str, token: str | None = None) -> None:
        self._sources = sources
        self._key = key.encode()
        self._token = token.encode() if token else None
        self.scrapes = 0
        self.refused = 0

    def __repr__(self) -> str:
        return f"<MetricsEndpoint scrapes={self.scrapes} refused={self.refused}>"

    def statistics(self) -> dict[str, int | float | str]:
        return {"scrapes": self.scrapes, "refused": self.refused}

    def reconfigure(self, token: str | None) -> None:
        """A new metrics token (a reloaded config), from the next scrape on."""
        self._token = token.encode() if token else None

    def routes(self) -> list[WebRoute]:
        return [("GET", PATH, self._scrape)]

    async def exposition(self) -> bytes:
        """What a scrape shows now (raises StorageError when the database fails)."""
        return render(await gather(self._sources))

    def _allowed(self, header: str) -> bool:
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.isascii():
            return False
        offered = given.strip().encode()
        secrets: Sequence[bytes] = [self._key, *([self._token] if self._token else [])]
        # Both compared, always: which one matched takes no less time than neither.
        matched = [hmac.compare_digest(offered, secret) for secret in secrets]
        return any(matched)

    async def _scrape(self, request: Request) -> Response:
        if not self._allowed(request.headers.get("Authorization", "")):
            self.refused += 1
            return json_response(
                {"error": "GET /metrics needs 'Authorization: Bearer <token>': "
                 "server.metrics_token, or the local key"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="farmbot metrics"'},
            )  # fmt: skip
        try:
            body = await self.exposition()
        except StorageError as exc:
            log.warning("metrics: the database failed: %s", exc)
            return json_response({"error": f"the database failed: {exc}"}, status=503)
        self.scrapes += 1
        from prometheus_client.exposition import CONTENT_TYPE_LATEST

        return Response(
            body=body,
            headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"},
        )
