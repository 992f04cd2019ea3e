"""The ``[alerts]`` and ``[[webhooks]]`` sections: which events alert whom, and how hard
farmbot tries.

::

    [alerts]
    dedupe_window = 300          # seconds: repeats of one alert fold into one message
    max_attempts = 8             # deliveries tried before an alert becomes a dead letter
    backoff_base = 2             # seconds; doubles per attempt, with jitter ...
    backoff_max = 600            # ... up to this (a platform's retry-after still wins)
    deaf_after = 300             # seconds a chat interface may not hear before an alert
                                 # goes out on the others (0: never); or per interface:
    # deaf_after = { default = 300, telegram = 120, slack = 0 }

    [alerts.rules]               # a kind's severity, or "off"
    "agent.resumed" = "off"
    "agent.stuck" = "critical"

    [[alerts.routes]]            # the web console gets every alert anyway
    interface = "telegram"
    channel = "-1001234567890"
    min_severity = "warning"     # the default
    projects = ["farm"]          # optional; absent means every project

    [[webhooks]]                 # a generic interface: JSON POSTed to a URL
    name = "ops"
    url = "env:OPS_WEBHOOK_URL"
    headers = { Authorization = "env:OPS_WEBHOOK_AUTH" }
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from farmbot.config import chats
from farmbot.config import reader as tk
from farmbot.config.routes import AlertRoute as AlertRoute  # routes are configured here
from farmbot.errors import ConfigError
from farmbot.messages import Severity

# The event kinds with a built-in alert rule, and the severity each has by default.
ALERT_KINDS: Mapping[str, Severity] = {
    "agent.dead": Severity.CRITICAL,
    "agent.stuck": Severity.WARNING,
    "agent.needs_human": Severity.WARNING,
    "agent.waiting_too_long": Severity.WARNING,  # the event's level decides, unless set
    "gate.opened": Severity.WARNING,
    "qa.failed": Severity.WARNING,
    "agent.paused": Severity.INFO,
    "agent.resumed": Severity.INFO,
    "prompt.failed": Severity.WARNING,
    # the autopilot
    "task.retried": Severity.WARNING,
    "task.failed": Severity.WARNING,
    "task.not_landed": Severity.WARNING,
    "task.landed": Severity.INFO,
    "run.blocked": Severity.WARNING,
    "wave.done": Severity.INFO,
    "run.finished": Severity.INFO,
    "deploy.failed": Severity.CRITICAL,
    "deploy.passed": Severity.INFO,
    # the daemon
    "config.reloaded": Severity.INFO,
    "config.refused": Severity.WARNING,
    # the interfaces
    "interface.deaf": Severity.CRITICAL,
    "interface.hears": Severity.WARNING,  # so it reaches wherever the deaf alert went
    "node.down": Severity.CRITICAL,
    "node.up": Severity.INFO,
}
# What a route may name besides webhooks: the web console and every chat platform.
BUILTIN_INTERFACES = ("web", *chats.NAMES)
HEARING_INTERFACES = chats.HEARING  # the ones that can go deaf
DEAF_AFTER = 300.0
WEBHOOK_TIMEOUT = 10.0  # seconds for one POST


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """``[alerts]``: deduplication, retries, severities per kind, routes, deafness."""

    dedupe_window: float = 300.0
    max_attempts: int = 8
    backoff_base: float = 2.0
    backoff_max: float = 600.0
    rules: Mapping[str, Severity | None] = field(default_factory=dict)  # None: off
    routes: tuple[AlertRoute, ...] = ()
    deaf_after: float = DEAF_AFTER  # seconds not hearing before an alert; 0: never
    deaf_after_for: Mapping[str, float] = field(default_factory=dict)  # per interface

    def deaf_after_of(self, interface: str) -> float:
        """Seconds ``interface`` may not hear before it counts as deaf (0: never)."""
        return self.deaf_after_for.get(interface, self.deaf_after)


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """A generic webhook interface. ``url`` and ``headers`` may hold secrets: not in repr."""

    name: str
    url: str = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float = WEBHOOK_TIMEOUT


def parse_alerts(t: tk.Table, webhooks: Sequence[WebhookConfig] = ()) -> AlertsConfig:
    """Read ``[alerts]``; routes may name a built-in interface or one of ``webhooks``."""
    d = AlertsConfig()
    interfaces = [*BUILTIN_INTERFACES, *(w.name for w in webhooks)]
    routes: list[tk.Table] = t.get("routes", tk.as_tables, [])
    config = AlertsConfig(
        dedupe_window=t.get("dedupe_window", tk.number, d.dedupe_window),
        max_attempts=t.get("max_attempts", tk.integer(1, 100), d.max_attempts),
        backoff_base=t.get("backoff_base", tk.number, d.backoff_base),
        backoff_max=t.get("backoff_max", tk.number, d.backoff_max),
        rules=_rules(t.table("rules")),
        routes=tuple(_route(r, interfaces) for r in routes),
    )
    deaf = t.get("deaf_after", _deaf_after)
    if deaf is not None:
        default, each = deaf
        config = replace(
            config, deaf_after=d.deaf_after if default is None else default, deaf_after_for=each
        )
    if config.backoff_max < config.backoff_base:
        raise t.error("backoff_max", f"must be at least backoff_base ({config.backoff_base:g})")
    t.finish()
    return config


def parse_webhooks(tables: Sequence[tk.Table]) -> tuple[WebhookConfig, ...]:
    """Read the ``[[webhooks]]`` array."""
    hooks: list[WebhookConfig] = []
    first: dict[str, str] = {}
    for t in tables:
        name = t.need("name", tk.text(tk.project_name))
        if name in BUILTIN_INTERFACES:
            raise t.error("name", f"'{name}' is a built-in interface; choose another name")
        if name in first:
            raise t.error("name", f"duplicate webhook name '{name}' (also {first[name]})")
        first[name] = t.key("name")
        headers = t.get("headers", _header_table)
        hook = WebhookConfig(
            name=name,
            url=t.need("url", tk.text(tk.http_url)),
            headers={} if headers is None else _headers(headers),
            timeout=t.get("timeout", tk.number, WEBHOOK_TIMEOUT),
        )
        t.finish()
        hooks.append(hook)
    return tuple(hooks)


def _rules(t: tk.Table) -> dict[str, Severity | None]:
    rules: dict[str, Severity | None] = {}
    for kind, value in t.items(tk.text(_severity_or_off)).items():
        if kind not in ALERT_KINDS:
            close = tk.closest(kind, ALERT_KINDS)
            hint = f"; did you mean '{close}'?" if close else f" (one of: {', '.join(ALERT_KINDS)})"
            raise t.error(kind, f"no alert rule for event kind '{kind}'{hint}")
        rules[kind] = None if value == "off" else Severity.parse(value)
    return rules


def _route(t: tk.Table, interfaces: Sequence[str]) -> AlertRoute:
    def known(value: str, shown: str) -> str | None:
        if value in interfaces:
            return None
        close = tk.closest(value, interfaces)
        hint = f"; did you mean '{close}'?" if close else ""
        return f"unknown interface {shown} (known: {', '.join(interfaces)}){hint}"

    route = AlertRoute(
        interface=t.need("interface", tk.text(known)),
        channel=t.need("channel", _channel),
        min_severity=Severity.parse(t.get("min_severity", tk.text(tk.severity), "warning")),
        projects=tuple(t.get("projects", _names, [])),
    )
    t.finish()
    return route


def _header_table(t: tk.Table, key: str, raw: object) -> tk.Table:
    """``headers``: a table; a wrong value is not echoed (it is often a credential)."""
    if not isinstance(raw, dict):
        raise tk.type_error(key, 'a table (like { Authorization = "env:NAME" })', raw, secret=True)
    return tk.as_table(t, key, raw)


def _headers(t: tk.Table) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, raw in t.items(_raw).items():
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise t.error(name, "not a valid HTTP header name")
        key = t.key(name)
        if tk.is_reference(raw):
            headers[name] = tk.resolve_secret(raw, key, t.environ, t.vault)
        elif isinstance(raw, str):
            headers[name] = raw
        else:
            raise tk.type_error(key, "a string", raw, secret=True)
    return headers


def _raw(t: tk.Table, key: str, raw: object) -> object:
    return raw


def _channel(t: tk.Table, key: str, raw: object) -> str:
    """A channel id: a string, or an integer (a Telegram chat id)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    return tk.text(tk.nonempty)(t, key, raw)


def _names(t: tk.Table, key: str, raw: object) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise tk.type_error(key, "an array of project names", raw)
    for item in raw:
        problem = tk.project_name(item, f"'{item}'")
        if problem:
            raise ConfigError(key, problem)
    return list(raw)


def _deaf_after(t: tk.Table, key: str, raw: object) -> tuple[float | None, dict[str, float]]:
    """``deaf_after``: seconds for every chat interface, or a table of them by interface."""
    if not isinstance(raw, dict):
        return tk.zero_or_more(t, key, raw), {}
    table = tk.as_table(t, key, raw)
    default = table.get("default", tk.zero_or_more)
    each: dict[str, float] = {}
    for name, seconds in table.items(tk.zero_or_more).items():
        if name not in HEARING_INTERFACES:
            close = tk.closest(name, [*HEARING_INTERFACES, "default"])
            hint = f"; did you mean '{close}'?" if close else ""
            known = ", ".join(HEARING_INTERFACES)
            raise table.error(name, f"'{name}' is not a chat interface (one of: {known}){hint}")
        each[name] = seconds
    return default, each


def _severity_or_off(value: str, shown: str) -> str | None:
    if value in (*tk.SEVERITIES, "off"):
        return None
    return f"unknown severity {shown} (use info, warning, critical or off)"
