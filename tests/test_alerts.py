"""Alert rules, routing, the [alerts]/[[webhooks]] config, and event + alert + outbox in
one transaction."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from farmbot.bot import commands as c
from farmbot.config.alerts import (
    ALERT_KINDS,
    AlertRoute,
    AlertsConfig,
    WebhookConfig,
    parse_alerts,
    parse_webhooks,
)
from farmbot.config.tables import Table, as_tables
from farmbot.errors import ConfigError, StorageError
from farmbot.messages import Button, Severity
from farmbot.models import AgentKind, Alert, AlertDraft, NewEvent
from farmbot.storage.sqlite import SqliteStore
from farmbot.supervisor.alerts import WEB_CONSOLE, AlertRules
from farmbot.supervisor.events import EventLog
from tests.helpers import FakeClock

LAST = ["$ make test", "FAILED tests/test_x.py::test_y", "1 failed in 0.2s"]


def draft(kind: str, config: AlertsConfig | None = None, /, **data: Any) -> AlertDraft:
    """The one alert ``kind`` raises for builder-42 in project farm."""
    [made] = AlertRules(config or AlertsConfig()).drafts_for(
        NewEvent(kind, "builder-42", "farm", data)
    )
    return made


def commands(d: AlertDraft) -> list[str]:
    return [b.command for row in d.buttons for b in row]


# -- the built-in rules -------------------------------------------------------------------


def test_dead_agent_is_critical_with_tail_and_spawn_again() -> None:
    d = draft("agent.dead", reason="its process exited with status 1", last_lines=LAST)
    assert d.severity is Severity.CRITICAL
    assert (d.kind, d.agent_id, d.project) == ("agent.dead", "builder-42", "farm")
    assert d.title == "builder-42 died"
    assert d.text == "builder-42 in project farm died: its process exited with status 1"
    assert d.pre == "\n".join(LAST)
    assert commands(d) == ["/tail builder-42", "/spawn builder 42 farm"]
    assert c.parse(commands(d)[1]) == c.Spawn(AgentKind.BUILDER, 42, "farm")
    assert d.routes == (WEB_CONSOLE,)


def test_spawn_again_prefers_the_events_kind_and_number() -> None:
    d = draft("agent.dead", reason="gone", kind="builder", number=7)
    assert commands(d)[1] == "/spawn builder 7 farm"
    named = AlertRules(AlertsConfig()).drafts_for(NewEvent("agent.dead", "farm-architect", "farm"))
    assert commands(named[0]) == ["/tail farm-architect", "/spawn architect farm"]
    odd = AlertRules(AlertsConfig()).drafts_for(NewEvent("agent.dead", "mystery", "farm"))
    assert commands(odd[0]) == ["/tail mystery"]  # no kind to spawn again


def test_stuck_agent_offers_tail_and_kill() -> None:
    d = draft("agent.stuck", reason="busy with no new output for 10 min", last_lines=LAST)
    assert d.severity is Severity.WARNING
    assert "builder-42" in d.text and "farm" in d.text and "no new output" in d.text
    assert d.pre is not None and "1 failed" in d.pre
    assert d.buttons == (
        (Button("Tail", "/tail builder-42"), Button("Kill", "/kill builder-42", "danger")),
    )
    assert d.dedupe_key == "agent.stuck:builder-42:busy with no new output for 10 min"


def test_needs_human_shows_the_question() -> None:
    d = draft("agent.needs_human", question="I need help: which DB?", last_lines=LAST)
    assert d.severity is Severity.WARNING
    assert "which DB?" in d.text and "/send builder-42" in d.text
    assert commands(d) == ["/tail builder-42"]


def test_waiting_too_long_takes_its_level_from_the_event() -> None:
    warn = draft("agent.waiting_too_long", level="warning", minutes=12, state="waiting")
    crit = draft("agent.waiting_too_long", level="critical", minutes=31, state="waiting")
    assert (warn.severity, crit.severity) == (Severity.WARNING, Severity.CRITICAL)
    assert crit.title == "builder-42 has been waiting for 31 minutes"
    assert warn.dedupe_key != crit.dedupe_key  # the critical one is not folded away
    assert commands(crit) == ["/tail builder-42"]


def test_gate_opened_offers_approve_reject_tail() -> None:
    d = draft("gate.opened", gate_id=7, title="run rm -rf build/?", detail="Bash: rm -rf build/")
    assert d.severity is Severity.WARNING
    assert "run rm -rf build/?" in d.text and "builder-42" in d.text and "farm" in d.text
    assert d.pre == "Bash: rm -rf build/"
    assert commands(d) == ["/approve 7", "/reject 7", "/tail builder-42"]
    assert c.parse("/approve 7") == c.Approve(7)


def test_qa_failure_can_be_sent_to_the_agent() -> None:
    output = "\n".join(f"line {i}" for i in range(100))
    d = draft("qa.failed", run_id=3, command="make test", exit_code=2, output_tail=output)
    assert d.severity is Severity.WARNING
    assert "make test" in d.text and "exit 2" in d.text and "builder-42" in d.text
    assert d.pre is not None and d.pre.endswith("line 99") and "line 84" not in d.pre
    send, tail = commands(d)
    assert tail == "/tail builder-42"
    parsed = c.parse(send)
    assert isinstance(parsed, c.Send) and parsed.agent == "builder-42"
    assert parsed.text.startswith("QA failed (make test, exit 2):\nline 80\n")
    assert parsed.text.endswith("line 99") and "line 79" not in parsed.text
    assert len(send.encode()) < 4096  # far under the prompt limit


def test_qa_failure_of_a_huge_output_stays_under_the_prompt_limit() -> None:
    output = "\n".join("x" * 5000 for _ in range(30))
    d = draft("qa.failed", run_id=3, command="make", exit_code=None, output_tail=output)
    assert "timed out" in d.text
    assert len(commands(d)[0]) < 4096


def test_pause_and_resume_are_info() -> None:
    paused = draft("agent.paused", until=1_700_003_600.0, reason="limit reached, resets 3pm")
    resumed = draft("agent.resumed")
    assert (paused.severity, resumed.severity) == (Severity.INFO, Severity.INFO)
    assert "2023-11-14 23:13 UTC" in paused.title and "resets 3pm" in paused.text
    assert "resumed" in resumed.text


def test_every_configurable_kind_has_a_rule_that_survives_missing_data() -> None:
    rules = AlertRules(AlertsConfig())
    for kind, severity in ALERT_KINDS.items():
        [d] = rules.drafts_for(NewEvent(kind, "builder-1", "farm"))
        assert d.severity is severity and d.title and "builder-1" in d.text
    [gate] = rules.drafts_for(NewEvent("gate.opened"))  # no agent, no project
    assert gate.agent_id is None and commands(gate) == []


def test_other_events_raise_no_alert() -> None:
    rules = AlertRules(AlertsConfig())
    for kind in ("agent.spawned", "prompt.delivered", "agent.state", "hook.PreToolUse"):
        assert rules.drafts_for(NewEvent(kind, "builder-1", "farm")) == []


# -- severity and routing ---------------------------------------------------------------


def test_config_overrides_a_severity_or_turns_a_kind_off() -> None:
    config = AlertsConfig(
        rules={
            "agent.stuck": Severity.CRITICAL,
            "agent.resumed": None,
            "agent.waiting_too_long": Severity.INFO,
        }
    )
    assert draft("agent.stuck", config, reason="x").severity is Severity.CRITICAL
    assert AlertRules(config).drafts_for(NewEvent("agent.resumed", "b", "farm")) == []
    waited = draft("agent.waiting_too_long", config, level="critical")
    assert waited.severity is Severity.INFO


def test_routes_by_severity_and_project() -> None:
    config = AlertsConfig(
        routes=(
            AlertRoute("telegram", "-100", Severity.WARNING),
            AlertRoute("slack", "C-farm", Severity.INFO, projects=("farm",)),
            AlertRoute("slack", "C-pager", Severity.CRITICAL),
            AlertRoute("web", "console", Severity.INFO),  # the console only once
        )
    )
    rules = AlertRules(config)

    def routes(kind: str, project: str | None) -> set[tuple[str, str]]:
        [d] = rules.drafts_for(NewEvent(kind, "builder-1", project, {"level": "warning"}))
        assert d.routes[0] == WEB_CONSOLE and len(set(d.routes)) == len(d.routes)
        return set(d.routes)

    console, tg, farm, pager = (
        WEB_CONSOLE,
        ("telegram", "-100"),
        ("slack", "C-farm"),
        (
            "slack",
            "C-pager",
        ),
    )
    assert routes("agent.paused", "farm") == {console, farm}
    assert routes("agent.paused", "barn") == {console}
    assert routes("agent.paused", None) == {console}
    assert routes("agent.stuck", "farm") == {console, tg, farm}
    assert routes("agent.stuck", "barn") == {console, tg}
    assert routes("agent.dead", "barn") == {console, tg, pager}


# -- one transaction ----------------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "farmbot.db") as store:
        yield store


async def test_emit_stores_event_alert_and_outbox_together(store: SqliteStore) -> None:
    clock = FakeClock()
    told: list[list[Alert]] = []
    config = AlertsConfig(routes=(AlertRoute("telegram", "-100"),))
    events = EventLog(store, clock, AlertRules(config), on_alerts=told.append)

    event = await events.emit(
        "agent.dead",
        "builder-42",
        "farm",
        reason="gone",
        last_lines=LAST,
        kind="builder",
        number=42,
    )
    [alert] = await store.recent_alerts()
    assert alert.event_id == event.id and alert.severity is Severity.CRITICAL
    assert event.data["kind"] == "builder"  # an agent's kind may travel in the data
    assert told == [[alert]]
    assert await store.recent_events() == [event]
    items = await store.due_outbox(clock())
    assert sorted((i.interface, i.channel) for i in items) == [("telegram", "-100"), WEB_CONSOLE]
    assert all(i.alert == alert for i in items)

    quiet = await events.emit("agent.spawned", "builder-42", "farm", by="alice")
    assert told == [[alert]] and (await store.recent_events(1)) == [quiet]
    assert repr(events) == "<EventLog emitted=2 alerts=1 listeners=0>"


async def test_event_log_without_rules_raises_no_alerts(store: SqliteStore) -> None:
    events = EventLog(store, FakeClock())
    await events.emit("agent.dead", "builder-42", "farm", reason="gone")
    assert len(await store.recent_events()) == 1
    assert await store.recent_alerts() == []


async def test_a_failed_outbox_insert_stores_no_event_either(store: SqliteStore) -> None:
    async with store.transaction() as tx:
        await tx.execute(
            "CREATE TRIGGER outbox_down BEFORE INSERT ON outbox"
            " BEGIN SELECT RAISE(ABORT, 'outbox is down'); END"
        )
    told: list[list[Alert]] = []
    events = EventLog(store, FakeClock(), AlertRules(AlertsConfig()), on_alerts=told.append)
    with pytest.raises(StorageError, match="outbox is down"):
        await events.emit("agent.dead", "builder-42", "farm", reason="gone")
    assert await store.recent_events() == []
    assert await store.recent_alerts() == []
    assert told == []
    await events.emit("agent.spawned", "builder-42", "farm")  # no alert: still stored
    assert [e.kind for e in await store.recent_events()] == ["agent.spawned"]


# -- [alerts] and [[webhooks]] -------------------------------------------------------------


def parse(
    text: str, environ: Mapping[str, str] | None = None
) -> tuple[AlertsConfig, tuple[WebhookConfig, ...]]:
    """What load_config does with the two sections."""
    root = Table(tomllib.loads(text), "", environ or {}, Path("/"))
    webhooks = parse_webhooks(root.get("webhooks", as_tables, []))
    alerts = parse_alerts(root.table("alerts"), webhooks)
    root.finish()
    return alerts, webhooks


def failure(text: str, environ: Mapping[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text, environ)
    return str(caught.value)


def test_alerts_config_defaults() -> None:
    assert parse("") == (AlertsConfig(), ())
    assert AlertsConfig().max_attempts == 8 and AlertsConfig().dedupe_window == 300


def test_alerts_config_is_read() -> None:
    alerts, hooks = parse(
        """
        [alerts]
        dedupe_window = 120
        max_attempts = 5
        backoff_base = 1.5
        backoff_max = 60
        [alerts.rules]
        "agent.resumed" = "off"
        "agent.stuck" = "critical"
        [[alerts.routes]]
        interface = "telegram"
        channel = -1001234
        [[alerts.routes]]
        interface = "ops"
        channel = "default"
        min_severity = "critical"
        projects = ["farm", "barn"]
        [[webhooks]]
        name = "ops"
        url = "env:OPS_URL"
        headers = { Authorization = "env:OPS_AUTH", X-Source = "farmbot" }
        timeout = 5
        """,
        {"OPS_URL": "https://hooks.example/abc?token=s3cret", "OPS_AUTH": "Bearer t0ken"},
    )
    assert alerts == AlertsConfig(
        dedupe_window=120,
        max_attempts=5,
        backoff_base=1.5,
        backoff_max=60,
        rules={"agent.resumed": None, "agent.stuck": Severity.CRITICAL},
        routes=(
            AlertRoute("telegram", "-1001234", Severity.WARNING),
            AlertRoute("ops", "default", Severity.CRITICAL, ("farm", "barn")),
        ),
    )
    [hook] = hooks
    assert hook.url == "https://hooks.example/abc?token=s3cret"
    assert hook.headers == {"Authorization": "Bearer t0ken", "X-Source": "farmbot"}
    assert hook.timeout == 5
    assert "s3cret" not in repr(hook) and "t0ken" not in repr(hook)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[alerts.rules]\n"agent.stcuk" = "warning"',
            "config: alerts.rules.agent.stcuk: no alert rule for event kind 'agent.stcuk';"
            " did you mean 'agent.stuck'?",
        ),
        (
            '[alerts.rules]\n"agent.stuck" = "loud"',
            "config: alerts.rules.agent.stuck: unknown severity 'loud'"
            " (use info, warning, critical or off)",
        ),
        (
            '[[alerts.routes]]\ninterface = "telegarm"\nchannel = "1"',
            "config: alerts.routes[0].interface: unknown interface 'telegarm' (known: web,"
            " telegram, slack, discord); did you mean 'telegram'?",
        ),
        (
            '[[alerts.routes]]\ninterface = "slack"',
            "config: alerts.routes[0].channel: missing",
        ),
        (
            '[[alerts.routes]]\ninterface = "slack"\nchannel = "C1"\nprojects = "farm"',
            "config: alerts.routes[0].projects: expected an array of project names, got string"
            ' "farm"',
        ),
        (
            '[[alerts.routes]]\ninterface = "slack"\nchannel = "C1"\nmin_severity = "meh"',
            "config: alerts.routes[0].min_severity: unknown severity 'meh'"
            " (use info, warning or critical)",
        ),
        (
            "[alerts]\nbackoff_base = 10\nbackoff_max = 5",
            "config: alerts.backoff_max: must be at least backoff_base (10)",
        ),
        ("[alerts]\nmax_attempts = 0", "config: alerts.max_attempts: must be between 1 and 100"),
        ("[alerts]\nretries = 3", "config: alerts.retries: unknown key"),
        (
            '[[webhooks]]\nname = "slack"\nurl = "https://x"',
            "config: webhooks[0].name: 'slack' is a built-in interface; choose another name",
        ),
        (
            '[[webhooks]]\nname = "a"\nurl = "https://x"\n[[webhooks]]\nname = "a"\nurl = "https://y"',
            "config: webhooks[1].name: duplicate webhook name 'a' (also webhooks[0].name)",
        ),
    ],
)
def test_alerts_config_errors_name_the_key(text: str, message: str) -> None:
    assert failure(text).startswith(message)


def test_webhook_secrets_are_never_echoed() -> None:
    message = failure('[[webhooks]]\nname = "ops"\nurl = "ftp://secret-token@host"')
    assert message == "config: webhooks[0].url: must be an http:// or https:// URL"
    message = failure(
        '[[webhooks]]\nname = "ops"\nurl = "https://x"\nheaders = { Authorization = "env:NOPE" }'
    )
    assert (
        message == "config: webhooks[0].headers.Authorization: environment variable NOPE is not set"
    )
    message = failure(
        '[[webhooks]]\nname = "ops"\nurl = "https://x"\nheaders = { Authorization = "env:E" }',
        {"E": ""},
    )
    assert message.endswith("environment variable E is empty")
