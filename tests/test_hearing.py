"""Ears: a chat interface that stops hearing is noticed, alerted on the others once, shown
on /readyz and the status page, and announced again when it hears; ``[alerts] deaf_after``.

The interfaces here are small stand-ins that only say how they hear (the ``Hears`` seam is
farmbot's own); the real ones are tested with their platforms' fakes in test_telegram.py,
test_slack.py and test_discord.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from farmbot import events as ev
from farmbot.alerts import Ears, gate_edit
from farmbot.alerts.rules import AlertRules
from farmbot.config.alerts import AlertRoute, AlertsConfig, parse_alerts
from farmbot.config.reader import Table
from farmbot.errors import ConfigError
from farmbot.messages import Hearing, OnIncoming, OutboundMessage
from tests.farm import farm_for, make_config
from tests.helpers import FakeClock


class Ear:
    """An interface that hears, or not, as the test says."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ok = True
        self.detail = "fine"
        self.got: list[OutboundMessage] = []

    def hearing(self) -> Hearing:
        return Hearing(self.ok, 1_700_000_000.0, self.detail)

    async def start(self, on_incoming: OnIncoming) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, channel: str, message: OutboundMessage) -> None:
        self.got.append(message)


def ears(
    *names: str, deaf_after: dict[str, float] | None = None
) -> tuple[Ears, dict[str, Ear], list[ev.DomainEvent], FakeClock]:
    clock, published = FakeClock(), []
    found = {name: Ear(name) for name in names}

    async def publish(event: ev.DomainEvent) -> None:
        published.append(event)

    limits = deaf_after or {}
    watch = Ears({**found, "web": object()}, publish, lambda n: limits.get(n, 60.0), clock)
    return watch, found, published, clock


async def test_deaf_is_raised_once_after_deaf_after_and_hearing_again_is_announced() -> None:
    watch, found, published, clock = ears("telegram", "slack")
    assert await watch.round() == 0
    found["telegram"].ok, found["telegram"].detail = False, "409 Conflict"
    assert await watch.round() == 0
    clock.advance(59)
    assert await watch.round() == 0  # not hearing, not yet for long
    clock.advance(1)
    assert await watch.round() == 1
    [deaf] = published
    assert isinstance(deaf, ev.InterfaceDeaf)
    assert (deaf.interface, deaf.detail, deaf.silent_for) == ("telegram", "409 Conflict", 60.0)
    assert deaf.last_heard == 1_700_000_000.0
    clock.advance(600)
    assert await watch.round() == 0  # once
    assert watch.status()["telegram"]["deaf"] is True
    assert watch.status()["slack"]["deaf"] is False and "web" not in watch.status()

    found["telegram"].ok, found["telegram"].detail = True, "polled 1s ago"
    assert await watch.round() == 1
    hears = published[-1]
    assert isinstance(hears, ev.InterfaceHears)
    assert (hears.interface, hears.deaf_for, hears.detail) == ("telegram", 660.0, "polled 1s ago")
    assert watch.statistics() == {
        "checks": 6, "watching": 2, "deaf": 0, "deafened": 1, "recovered": 1,
    }  # fmt: skip


async def test_a_blip_shorter_than_deaf_after_raises_nothing_and_zero_means_never() -> None:
    watch, found, published, clock = ears("slack", "discord", deaf_after={"discord": 0})
    found["slack"].ok = found["discord"].ok = False
    await watch.round()
    clock.advance(30)
    found["slack"].ok = True  # back within the minute
    await watch.round()
    found["slack"].ok = False
    clock.advance(45)
    await watch.round()  # a new blip counts from its own start
    clock.advance(3600)
    found["slack"].ok = True
    await watch.round()
    assert published == []  # discord: 0 turns the alert off; slack never lasted 60 s


def test_the_deaf_alert_goes_to_the_others_and_hearing_again_everywhere() -> None:
    routes = (AlertRoute("telegram", "-100"), AlertRoute("slack", "C1"))
    rules = AlertRules(AlertsConfig(routes=routes))
    deaf = ev.InterfaceDeaf(interface="telegram", detail="409", silent_for=301, last_heard=None)
    [draft] = rules.drafts_for(deaf)
    assert draft.routes == (("web", "console"), ("slack", "C1"))
    assert draft.dedupe_key == "interface.deaf:telegram"
    assert "has not been hearing for 5m: 409." in draft.text
    [back] = rules.drafts_for(ev.InterfaceHears(interface="telegram", detail="ok", deaf_for=9))
    assert back.routes == (("web", "console"), ("telegram", "-100"), ("slack", "C1"))


def _alerts(**data: object) -> AlertsConfig:
    return parse_alerts(Table(data, "alerts", {}, Path(".")))


def test_deaf_after_is_global_or_per_interface_and_errors_name_the_key() -> None:
    assert _alerts().deaf_after_of("slack") == 300
    assert _alerts(deaf_after=0).deaf_after_of("slack") == 0
    each = _alerts(deaf_after={"default": 120, "telegram": 30})
    assert (each.deaf_after_of("telegram"), each.deaf_after_of("discord")) == (30, 120)
    assert _alerts(deaf_after={"slack": 10}).deaf_after_of("discord") == 300
    with pytest.raises(ConfigError) as typo:
        _alerts(deaf_after={"telegrm": 30})
    assert str(typo.value) == (
        "config: alerts.deaf_after.telegrm: 'telegrm' is not a chat interface "
        "(one of: telegram, slack, discord); did you mean 'telegram'?"
    )
    with pytest.raises(ConfigError, match=r"^config: alerts\.deaf_after: must be 0 or more"):
        _alerts(deaf_after=-1)
    with pytest.raises(ConfigError, match=r"^config: alerts\.deaf_after\.default: expected"):
        _alerts(deaf_after={"default": "5m"})


async def test_readyz_and_the_status_page_show_an_interface_that_does_not_hear(
    tmp_path: Path, tmux_socket: str
) -> None:
    pager = Ear("pager")
    config = make_config(tmp_path, tmux_socket)
    config = replace(config, alerts=AlertsConfig(deaf_after=10))
    async with farm_for(config, tmp_path, FakeClock(), interfaces=[pager]) as farm:
        graph = farm.graph
        await graph.web.start(graph.router.handle)
        try:
            auth = {"Authorization": f"Bearer {graph.key}"}
            base = f"http://127.0.0.1:{graph.web.port}"
            async with aiohttp.ClientSession(base) as http:
                async with http.get("/readyz", headers=auth) as r:
                    assert r.status == 200
                    assert "pager" in (await r.json())["checks"]
                pager.ok, pager.detail = False, "socket closed"
                async with http.get("/readyz", headers=auth) as r:
                    assert r.status == 503
                    body = await r.json()
                assert body["failing"] == {"pager": "not hearing: socket closed"}
            await graph.ears.round()
            shown = (await graph.status())["hearing"]["pager"]
            assert (shown["ok"], shown["detail"], shown["deaf"]) == (False, "socket closed", False)
            assert shown["not_hearing_since"] == 1_700_000_000.0
            assert "ears" in graph.statistics()
        finally:
            await graph.web.stop()


@pytest.mark.parametrize(
    ("event", "note"),
    [
        (ev.GateDecided(gate_id=7, approved=True, by="alice"), "✅ approved by alice at 22:13 UTC"),
        (
            ev.GateDecided(gate_id=7, approved=True, by="alice", scope="session"),
            "✅ approved for the session by alice at 22:13 UTC",
        ),
        (
            ev.GateDecided(gate_id=7, approved=False, by="bob", reason="not now"),
            "❌ rejected by bob at 22:13 UTC (not now)",
        ),
        (
            ev.GateStale(gate_id=7, reason="the question is gone"),
            "gate is stale: the question is gone",
        ),
    ],
)
def test_a_decided_or_stale_gate_edits_its_alert(event: ev.DomainEvent, note: str) -> None:
    edit = gate_edit(event, 1_700_000_000.0)
    assert edit is not None and edit.note == note and edit.dedupe_key == "gate.opened:7"
    kept = [c for c in ("/approve 7", "/approve 7 --session", "/reject 7", "/gate diff 7",
                        "/tail builder-1", "/approve 70") if edit.keeps(c)]  # fmt: skip
    assert kept == ["/gate diff 7", "/tail builder-1", "/approve 70"]
    assert gate_edit(ev.GateOpened(gate_id=7, gate_kind="manual", title="t"), 0) is None
