"""GET /metrics: a real `farmbot serve` scraped and parsed with prometheus_client's parser;
its token and the local key; two graphs in one process that never share a number."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from farmbot import __version__
from farmbot.adapters.hooks import hook_token
from farmbot.config.schema import UserConfig
from farmbot.durations import Durations
from farmbot.messages import Hearing, Incoming, OnIncoming, OutboundMessage
from farmbot.models import AgentKind, Role
from tests.daemon import free_port, git_project, serve
from tests.farm import farm_for, make_config
from tests.helpers import FakeClock, retry_until
from tests.hook_payloads import payload

TOKEN = hashlib.sha256(b"a test metrics token").hexdigest()
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample, by name and labels (what a Prometheus server would store)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def scrape(
    http: aiohttp.ClientSession, authorization: str | None
) -> tuple[int, Mapping[str, str], str]:
    headers = {"Authorization": authorization} if authorization else {}
    async with http.get("/metrics", headers=headers) as r:
        return r.status, dict(r.headers), await r.text()


async def test_a_real_daemon_serves_metrics_behind_its_token_or_the_key(
    tmp_path: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FARMBOT_TEST_METRICS_TOKEN", TOKEN)  # the daemon inherits it
    repo = await git_project(tmp_path / "repo")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = tmp_path / "farmbot.toml"
    config.write_text(
        f"""
[server]
port = {port}
state_dir = "state"
metrics_token = "env:FARMBOT_TEST_METRICS_TOKEN"

[tmux]
socket = "{tmux_socket}"

[supervisor]
tick_seconds = 0.2

[[projects]]
name = "farm"
path = "{repo}"

[agents.demo]
env = {{ FARMBOT_DEMO_STEP = "0.02" }}

[users.alice]
role = "admin"
web = true
"""
    )
    async with serve(config, url, tmp_path / "logs") as daemon:
        for refused in (None, "Bearer nope", f"Basic {TOKEN}"):
            status, headers, body = await scrape(daemon.http, refused)
            assert status == 401, body
            assert "server.metrics_token, or the local key" in body
            assert headers["WWW-Authenticate"].startswith("Bearer")
        for wrong in ({}, {"Authorization": "Bearer not-the-key"}):  # two failed web logins
            async with daemon.http.get("/api/status", headers=wrong) as r:
                assert r.status == 401, await r.text()

        assert (await daemon.command("/spawn builder 1"))["ok"]
        assert not (await daemon.command("/spawnn builder 2"))["ok"]  # a usage error
        sent = await daemon.command("/send builder-1 run pytest -x")  # asks permission
        assert sent["ok"], sent
        # A hook event of an agent farmbot does not run: stored and counted, nothing more.
        token = hook_token(daemon.key, "elsewhere")
        hook = payload("PreToolUse", cwd=str(tmp_path))
        async with daemon.http.post(f"/hooks/claude/elsewhere?token={token}", json=hook) as r:
            assert r.status == 200, await r.text()

        async def waiting() -> Samples | None:
            status, headers, text = await scrape(daemon.http, f"Bearer {TOKEN}")
            assert status == 200, text
            assert headers["Content-Type"] == prometheus_client.CONTENT_TYPE_LATEST
            samples = parse(text)
            gates = value(samples, "farmbot_gates_pending", kind="permission")
            delivered = value(samples, "farmbot_alerts_delivered_total")
            # The counter moves as the send returns, the outbox row a moment later.
            stored = value(samples, "farmbot_outbox_items", status="delivered")
            return samples if gates == 1 and delivered >= 1 and stored >= 1 else None

        samples = await retry_until(waiting, timeout=20, message="a gate and its alert")
        assert value(samples, "farmbot_agents", state="waiting") == 1
        assert value(samples, "farmbot_agents", state="dead") == 0
        assert value(samples, "farmbot_gates_pending", kind="milestone") == 0
        assert value(samples, "farmbot_gates_oldest_pending_age_seconds", kind="permission") >= 0
        assert value(samples, "farmbot_outbox_items", status="delivered") >= 1
        assert value(samples, "farmbot_outbox_items", status="dead") == 0
        latency = "farmbot_alert_delivery_latency_seconds"
        assert value(samples, f"{latency}_count") >= 1
        assert value(samples, f"{latency}_bucket", le="+Inf") == value(samples, f"{latency}_count")
        assert value(samples, "farmbot_hook_events_total") >= 1
        assert value(samples, "farmbot_ticks_total") >= 1
        ticks = value(samples, "farmbot_tick_duration_seconds_count")
        assert ticks >= 1 and value(samples, "farmbot_tick_duration_seconds_sum") > 0
        assert value(samples, "farmbot_commands_total", outcome="ok") == 2  # spawn, send
        assert value(samples, "farmbot_commands_total", outcome="usage") == 1
        assert value(samples, "farmbot_commands_total", outcome="limited") == 0
        assert value(samples, "farmbot_rate_limited_total", kind="spawn") == 0
        assert value(samples, "farmbot_retention_pruned_rows_total", table="events") == 0
        # The web's refusals of the key; /metrics' own refusals above are not logins.
        assert value(samples, "farmbot_web_failed_logins_total") == 2
        assert ("farmbot_info", frozenset({("version", __version__)})) in samples

        status, _, text = await scrape(daemon.http, f"Bearer {daemon.key}")  # the local key
        assert status == 200 and "farmbot_agents" in text
        assert await daemon.terminate() == 0


class Deaf:
    """A chat interface that is up but hears nothing (what a metric should show)."""

    name = "deaf"

    async def start(self, on_incoming: OnIncoming) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, channel: str, message: OutboundMessage) -> None:
        pass

    async def ready(self) -> str | None:
        return "token rejected"

    def hearing(self) -> Hearing:
        return Hearing(False, 1_700_000_123.0, "no heartbeat")


async def test_two_graphs_in_one_process_never_share_a_number(
    tmp_path: Path, tmux_socket: str
) -> None:
    clock = FakeClock()
    users = (UserConfig("alice", Role.ADMIN, ids={"telegram": 1001}),)
    async with (
        farm_for(make_config(tmp_path / "one", tmux_socket, users=users), tmp_path / "one", clock,
                 interfaces=[Deaf()]) as one,
        farm_for(make_config(tmp_path / "two", tmux_socket, users=users), tmp_path / "two",
                 clock) as two,
    ):  # fmt: skip
        await one.supervisor.spawn(AgentKind.SHELL, None, None, "alice")
        await one.router.handle(Incoming("telegram", "1001", "c", "/status"))
        first = parse((await one.graph.metrics.exposition()).decode())
        second = parse((await two.graph.metrics.exposition()).decode())
        assert value(first, "farmbot_agents", state="starting") == 1
        assert value(second, "farmbot_agents", state="starting") == 0
        assert value(first, "farmbot_commands_total", outcome="ok") == 1
        assert value(second, "farmbot_commands_total", outcome="ok") == 0
        assert value(first, "farmbot_interface_up", interface="deaf") == 0
        assert value(first, "farmbot_interface_hearing", interface="deaf") == 0
        heard = value(first, "farmbot_interface_last_heard_timestamp_seconds", interface="deaf")
        assert heard == 1_700_000_123.0
        assert not any(name.startswith("farmbot_interface_up") for name, _ in second)
    names = {m.name for m in prometheus_client.REGISTRY.collect()}
    assert not any(name.startswith("farmbot") for name in names)  # nothing global


def test_durations_count_into_cumulative_buckets() -> None:
    durations = Durations((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 3.0, -1.0):  # a negative one (a clock step) counts as 0
        durations.observe(seconds)
    assert durations.cumulative() == [(0.1, 3), (1.0, 4), (float("inf"), 5)]
    assert (durations.count, durations.sum) == (5, 3.65)
