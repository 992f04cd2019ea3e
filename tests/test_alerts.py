"""Alert rules, routing, the [alerts]/[[webhooks]] config, and event + alert + outbox in
one transaction."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from farmbot import events as ev
from farmbot.alerts import WEB_CONSOLE, AlertRules
from farmbot.bot import commands as c
from farmbot.bus import EventBus
from farmbot.config.alerts import (
    ALERT_KINDS,
    AlertRoute,
    AlertsConfig,
    WebhookConfig,
    parse_alerts,
    parse_webhooks,
)
from farmbot.config.reader import Table, as_tables
from farmbot.errors import ConfigError, StorageError
from farmbot.messages import Button, Severity
from farmbot.models import AgentKind, Alert, AlertDraft, Event
from farmbot.storage import Storage
from tests.backends import Backend
from tests.helpers import FakeClock

LAST = ["$ make test", "FAILED tests/test_x.py::test_y", "1 failed in 0.2s"]


# Each alerting kind's event with empty or zero fields, for tests to fill in.
BLANK: dict[str, tuple[type[ev.DomainEvent], dict[str, Any]]] = {
    "agent.dead": (ev.AgentDead, {"reason": ""}),
    "agent.stuck": (ev.AgentStuck, {"reason": ""}),
    "agent.needs_human": (ev.AgentNeedsHuman, {"question": ""}),
    "agent.waiting_too_long": (
        ev.AgentWaitingTooLong,
        {"level": "warning", "minutes": 0, "state": "waiting", "reason": ""},
    ),
    "gate.opened": (ev.GateOpened, {"gate_id": 1, "gate_kind": "permission", "title": ""}),
    "qa.failed": (
        ev.QaFinished,
        {
            "run_id": 1,
            "command": "",
            "exit_code": 1,
            "timed_out": False,
            "trigger": "idle",
            "output_tail": "",
            "passed": False,
        },
    ),
    "agent.paused": (
        ev.AgentPaused,
        {"until": 1_700_000_000.0, "reason": "", "guessed": False, "will_continue": True},
    ),
    "agent.resumed": (ev.AgentResumed, {}),
    "prompt.failed": (ev.PromptFailed, {"prompt_id": 5, "source": "", "reason": "", "head": ""}),
    "task.retried": (
        ev.TaskRetried,
        {"task_id": 7, "title": "", "reason": "", "attempt": 2, "max_attempts": 3},
    ),
    "task.failed": (ev.TaskFailed, {"task_id": 7, "title": "", "reason": "", "attempts": 3}),
    "task.not_landed": (ev.TaskNotLanded, {"task_id": 7, "title": "", "detail": "", "to": ""}),
    "task.landed": (
        ev.TaskLanded,
        {"task_id": 7, "title": "", "commit": "", "commits": (), "how": "", "by": ""},
    ),
    "run.blocked": (
        ev.RunBlocked,
        {"run_id": 1, "task_id": 7, "title": "", "blocked_by": (3,), "reason": ""},
    ),
    "wave.done": (ev.WaveDone, {"run_id": 1, "wave": 1, "landed": ()}),
    "interface.deaf": (
        ev.InterfaceDeaf,
        {"interface": "telegram", "detail": "", "silent_for": 0.0, "last_heard": None},
    ),
    "interface.hears": (ev.InterfaceHears, {"interface": "slack", "detail": "", "deaf_for": 0.0}),
    "run.finished": (
        ev.RunFinished,
        {"run_id": 1, "state": "done", "done": 0, "failed": 0, "blocked": 0, "cancelled": 0},
    ),
    "deploy.failed": (
        ev.Deployed,
        {
            "run_id": 1,
            "wave": 1,
            "target": "staging",
            "command": "",
            "exit_code": 1,
            "output_tail": "",
            "passed": False,
        },
    ),
    "deploy.passed": (
        ev.Deployed,
        {
            "run_id": 1,
            "wave": 1,
            "target": "prod",
            "command": "",
            "exit_code": 0,
            "output_tail": "",
            "passed": True,
        },
    ),
    "config.reloaded": (ev.ConfigReloaded, {"source": "", "changed": ()}),
    "config.refused": (ev.ConfigRefused, {"source": "", "reason": ""}),
    "node.down": (ev.NodeDown, {"node": "gpu", "quiet": 0.0, "agents": ()}),
    "node.up": (ev.NodeUp, {"node": "gpu"}),
}
# Kinds about a run or a wave, not about one agent.
PROJECT_LEVEL = {"run.blocked", "wave.done", "run.finished", "deploy.failed", "deploy.passed"}
# Kinds about the daemon itself.
FARM_LEVEL = {"config.reloaded", "config.refused"}


def event(
    kind: str, agent: str | None = "builder-42", project: str | None = "farm", **data: Any
) -> ev.DomainEvent:
    cls, blank = BLANK[kind]
    return cls(agent_id=agent, project=project, **{**blank, **data})


def draft(kind: str, config: AlertsConfig | None = None, /, **data: Any) -> AlertDraft:
    """The one alert ``kind`` raises for builder-42 in project farm."""
    [made] = AlertRules(config or AlertsConfig()).drafts_for(event(kind, **data))
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


def test_spawn_again_reads_the_kind_and_number_off_the_agent_id() -> None:
    rules = AlertRules(AlertsConfig())
    [numbered] = rules.drafts_for(event("agent.dead", "web-builder-7", "web"))
    assert commands(numbered)[1] == "/spawn builder 7 web"
    [named] = rules.drafts_for(event("agent.dead", "farm-architect", "farm"))
    assert commands(named) == ["/tail farm-architect", "/spawn architect farm"]
    [odd] = rules.drafts_for(event("agent.dead", "mystery", "farm"))
    assert commands(odd) == ["/tail mystery"]  # no kind to spawn again


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


def test_gate_opened_offers_approve_for_session_reject_tail() -> None:
    d = draft("gate.opened", gate_id=7, title="run rm -rf build/?", detail="Bash: rm -rf build/")
    assert d.severity is Severity.WARNING
    assert "run rm -rf build/?" in d.text and "builder-42" in d.text and "farm" in d.text
    assert d.pre == "Bash: rm -rf build/"
    assert commands(d) == ["/approve 7", "/approve 7 --session", "/reject 7", "/tail builder-42"]
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


def test_a_prompt_that_failed_says_why_and_offers_the_screen() -> None:
    d = draft(
        "prompt.failed",
        prompt_id=12,
        source="alice",
        reason="builder-42 was not ready for it within 60 min (it is busy: working)",
        head="add a login page",
    )
    assert d.severity is Severity.WARNING
    assert d.title == "prompt #12 to builder-42 not delivered"
    assert "not ready for it within 60 min" in d.text and "add a login page" in d.text
    assert commands(d) == ["/tail builder-42"]


def test_every_configurable_kind_has_a_rule_that_survives_empty_fields() -> None:
    rules = AlertRules(AlertsConfig())
    assert set(BLANK) == set(ALERT_KINDS)
    for kind, severity in ALERT_KINDS.items():
        [d] = rules.drafts_for(event(kind, "builder-1", "farm"))
        assert d.severity is severity and d.title
        if kind.startswith("interface."):  # about farmbot itself: the interface is named
            assert d.text.startswith(("telegram ", "slack ")), kind
            continue
        if kind.startswith("node."):  # a node, not an agent
            assert "gpu" in d.text, kind
            continue
        shown = (
            "farmbot" if kind in FARM_LEVEL else "farm" if kind in PROJECT_LEVEL else "builder-1"
        )
        assert shown in d.text, kind
    [gate] = rules.drafts_for(event("gate.opened", None, None))  # no agent, no project
    assert gate.agent_id is None
    assert commands(gate) == ["/approve 1", "/approve 1 --session", "/reject 1"]


def test_a_node_gone_quiet_is_critical_and_names_its_agents() -> None:
    rules = AlertRules(AlertsConfig())
    quiet = ev.NodeDown(node="gpu", quiet=12.4, agents=("builder-1", "gpu-architect"))
    [d] = rules.drafts_for(quiet)
    assert d.severity is Severity.CRITICAL and d.title == "node gpu went quiet"
    assert d.text.startswith("node gpu has sent no heartbeat for 12 s; its agents")
    assert "builder-1, gpu-architect" in d.text and commands(d) == ["/status"]
    [back] = rules.drafts_for(ev.NodeUp(node="gpu"))
    assert back.severity is Severity.INFO and back.title == "node gpu is back"


def test_other_events_raise_no_alert() -> None:
    rules = AlertRules(AlertsConfig())
    others: list[ev.DomainEvent] = [
        ev.AgentSpawned(agent_id="builder-1", project="farm", by="a", workdir="/", command="x"),
        ev.PromptDelivered(agent_id="builder-1", project="farm", prompt_id=1, source="a", chars=1),
        ev.AgentStateChanged(agent_id="builder-1", state="idle", previous="busy", reason="r"),
        ev.HookReceived(agent_id="builder-1", name="PreToolUse", payload={}),
        event("qa.failed", passed=True),  # qa.passed
    ]
    for other in others:
        assert rules.drafts_for(other) == []


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
    assert AlertRules(config).drafts_for(event("agent.resumed", "b", "farm")) == []
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
        [d] = rules.drafts_for(event(kind, "builder-1", project))
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
async def storage(backend: Backend) -> AsyncIterator[Storage]:
    async with backend.open() as storage:
        yield storage


def dead(**data: Any) -> ev.AgentDead:
    return ev.AgentDead(agent_id="builder-42", project="farm", reason="gone", **data)


async def test_publish_stores_event_alert_and_outbox_together(storage: Storage) -> None:
    clock = FakeClock()
    told: list[list[Alert]] = []
    config = AlertsConfig(routes=(AlertRoute("telegram", "-100"),))

    def listen(record: Event, event: ev.DomainEvent, alerts: Sequence[Alert]) -> None:
        if alerts:
            told.append(list(alerts))

    rules = AlertRules(config)
    async with EventBus(storage.events, clock, rules=rules.drafts_for) as bus:
        bus.subscribe(listen)
        record = await bus.publish(dead(last_lines=tuple(LAST)))
        [alert] = await storage.outbox.recent_alerts()
        assert alert.event_id == record.id and alert.severity is Severity.CRITICAL
        assert record.kind == "agent.dead" and record.data["last_lines"] == LAST
        assert told == [[alert]]
        assert await storage.events.recent_events() == [record]
        items = await storage.outbox.due_outbox(clock())
        assert sorted((i.interface, i.channel) for i in items) == [
            ("telegram", "-100"),
            WEB_CONSOLE,
        ]
        assert all(i.alert == alert for i in items)

        quiet = await bus.publish(
            ev.AgentSpawned(
                agent_id="builder-42", project="farm", by="alice", workdir="/", command="x"
            )
        )
        assert told == [[alert]] and (await storage.events.recent_events(1)) == [quiet]
        assert bus.statistics()["published"] == 2 and bus.statistics()["alerts"] == 1


async def test_a_bus_without_rules_raises_no_alerts(storage: Storage) -> None:
    async with EventBus(storage.events, FakeClock()) as bus:
        await bus.publish(dead())
    assert len(await storage.events.recent_events()) == 1
    assert await storage.outbox.recent_alerts() == []


async def test_a_failed_outbox_insert_stores_no_event_either(storage: Storage) -> None:
    async with storage.db.transaction() as tx:
        if storage.db.backend == "sqlite":
            await tx.execute(
                "CREATE TRIGGER outbox_down BEFORE INSERT ON outbox"
                " BEGIN SELECT RAISE(ABORT, 'outbox is down'); END"
            )
        else:
            await tx.execute(
                "CREATE FUNCTION outbox_down() RETURNS trigger LANGUAGE plpgsql"
                " AS $$ BEGIN RAISE EXCEPTION 'outbox is down'; END $$"
            )
            await tx.execute(
                "CREATE TRIGGER outbox_down BEFORE INSERT ON outbox"
                " FOR EACH ROW EXECUTE FUNCTION outbox_down()"
            )
    rules = AlertRules(AlertsConfig())
    async with EventBus(storage.events, FakeClock(), rules=rules.drafts_for) as bus:
        with pytest.raises(StorageError, match="outbox is down"):
            await bus.publish(dead())
        assert await storage.events.recent_events() == []
        assert await storage.outbox.recent_alerts() == []
        spawned = ev.AgentSpawned(agent_id="b", project="farm", by="a", workdir="/", command="x")
        await bus.publish(spawned)  # no alert: still stored
    assert [e.kind for e in await storage.events.recent_events()] == ["agent.spawned"]


async def test_events_published_together_are_committed_together_in_order(
    storage: Storage,
) -> None:
    async with EventBus(storage.events, FakeClock()) as bus:
        records = await asyncio.gather(
            *(bus.publish(ev.AgentResumed(agent_id=f"b-{i}", project="farm")) for i in range(50))
        )
        assert [r.agent_id for r in records] == [f"b-{i}" for i in range(50)]
        assert [r.id for r in records] == sorted(r.id for r in records)
        # Queued while the writer was busy (here: not yet scheduled), so one transaction.
        assert bus.statistics()["batches"] == 1


async def test_publishing_after_the_bus_closed_is_refused(storage: Storage) -> None:
    bus = EventBus(storage.events, FakeClock())
    async with bus:
        pass
    with pytest.raises(StorageError, match="not running"):
        await bus.publish(dead())


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
