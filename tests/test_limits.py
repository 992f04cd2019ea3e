"""Per-person rate limits: the window (on a fake clock), [limits], and the router over a
real farm refusing, auditing and telling when to retry."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from farmbot.bot.limits import RateLimiter, kind_of, origin_of
from farmbot.config.limits import LimitsConfig
from farmbot.config.schema import CronJob, UserConfig
from farmbot.daemon import Daemon
from farmbot.errors import ConfigError, RateLimited
from farmbot.messages import Incoming
from farmbot.models import AuditEntry, Role
from tests.farm import Farm, farm_for, make_config
from tests.helpers import FakeClock
from tests.test_config import load

USERS = (
    UserConfig("alice", Role.ADMIN, ids={"telegram": 1001}, web=True),
    UserConfig("bob", Role.OPERATOR, ids={"telegram": 1002, "slack": "U0BOB"}),
)


def refusal(limiter: RateLimiter, person: str, command: str, platform: str = "telegram") -> str:
    with pytest.raises(RateLimited) as refused:
        limiter.check(person, command, platform)
    return str(refused.value)


def test_n_a_minute_then_a_refusal_that_says_when_to_retry() -> None:
    clock = FakeClock(1000.0)
    limiter = RateLimiter(LimitsConfig(spawns_per_minute=3), clock)
    for _ in range(2):
        limiter.check("bob", "spawn", "telegram")
        clock.advance(10)
    limiter.check("bob", "spawn", "telegram")  # at 1020: three in the window
    clock.advance(5)
    assert refusal(limiter, "bob", "spawn") == (
        "bob: that is more than 3 spawns a minute; try again in 35 s"
    )
    clock.advance(34)  # 1059: the first (1000) is still in the window
    with pytest.raises(RateLimited) as refused:
        limiter.check("bob", "spawn", "telegram")
    assert refused.value.retry_after == 1
    clock.advance(1)  # 1060: it left
    limiter.check("bob", "spawn", "telegram")
    assert refusal(limiter, "bob", "spawn").endswith("try again in 10 s")  # 1010 leaves next
    assert limiter.refused == {"spawn": 3}


def test_kinds_and_people_have_their_own_windows() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        LimitsConfig(spawns_per_minute=1, sends_per_minute=1, commands_per_minute=2), clock
    )
    limiter.check("bob", "spawn", "telegram")
    limiter.check("bob", "send", "slack")  # another platform, the same person
    limiter.check("bob", "status", "telegram")
    limiter.check("bob", "task add", "telegram")
    assert "1 sends a minute" in refusal(limiter, "bob", "send", "slack")
    assert "2 commands a minute" in refusal(limiter, "bob", "approve")
    assert "1 spawns a minute" in refusal(limiter, "bob", "spawn", "discord")
    limiter.check("alice", "spawn", "telegram")  # alice's own window
    assert (kind_of("spawn"), kind_of("send"), kind_of("run start")) == ("spawn", "send", "command")


def test_zero_is_no_limit_and_exempt_origins_are_not_counted() -> None:
    clock = FakeClock()
    limiter = RateLimiter(LimitsConfig(commands_per_minute=0, spawns_per_minute=1), clock)
    for _ in range(500):
        limiter.check("bob", "status", "telegram")
    limiter.check("alice", "spawn", "web")
    refusal(limiter, "alice", "spawn", "cli")  # the console counts unless exempt

    limiter.reconfigure(LimitsConfig(spawns_per_minute=1, exempt=("cron", "console")))
    for _ in range(5):
        limiter.check("alice", "spawn", "web")
        limiter.check("alice", "spawn", "scheduler")
    refusal(limiter, "alice", "spawn", "telegram")  # counted before: the window stays
    assert [origin_of(p) for p in ("scheduler", "web", "cli", "slack")] == [
        "cron",
        "console",
        "console",
        "chat",
    ]


def test_a_lowered_limit_applies_to_what_was_counted() -> None:
    clock = FakeClock(0.0)
    limiter = RateLimiter(LimitsConfig(sends_per_minute=10), clock)
    for second in range(5):
        clock.now = float(second)
        limiter.check("bob", "send", "telegram")
    limiter.reconfigure(LimitsConfig(sends_per_minute=2))
    # Five in the window and two allowed: the next fits once only two remain, when the
    # send of t=3 leaves the window (at t=63).
    with pytest.raises(RateLimited) as refused:
        limiter.check("bob", "send", "telegram")
    assert refused.value.retry_after == 63 - 4


def test_limits_config_is_read_and_errors_name_the_key(tmp_path: Path) -> None:
    assert load(tmp_path, "").limits == LimitsConfig(10, 30, 60, ())
    config = load(
        tmp_path,
        '[limits]\nspawns_per_minute = 2\nsends_per_minute = 0\nexempt = ["cron"]\n',
    )
    assert config.limits == LimitsConfig(2, 0, 60, ("cron",))
    cases = {
        "[limits]\nspawns_per_minute = -1\n": "config: limits.spawns_per_minute: must be between",
        '[limits]\ncommands_per_minute = "60"\n': "config: limits.commands_per_minute: expected",
        '[limits]\nexempt = ["crom"]\n': "config: limits.exempt: unknown value 'crom' (use one "
        "of: cron, console); did you mean 'cron'?",
        '[limits]\nexempt = "cron"\n': "config: limits.exempt: expected an array",
        "[limits]\nspawn_per_minute = 2\n": "config: limits.spawn_per_minute: unknown key (did "
        "you mean 'spawns_per_minute'?)",
    }
    for text, message in cases.items():
        with pytest.raises(ConfigError) as error:
            load(tmp_path, text)
        assert str(error.value).startswith(message), str(error.value)


# -- the router over a real farm ----------------------------------------------------------


@pytest.fixture
async def farm(tmp_path: Path, tmux_socket: str) -> AsyncIterator[tuple[Farm, FakeClock]]:
    clock = FakeClock()
    config = dataclasses.replace(
        make_config(tmp_path, tmux_socket, users=USERS),
        limits=LimitsConfig(spawns_per_minute=1, sends_per_minute=2, commands_per_minute=3),
    )
    async with farm_for(config, tmp_path, clock) as f:
        yield f, clock


async def last_audit(farm: Farm) -> AuditEntry:
    [entry] = await farm.storage.audit.recent_audit(1)
    return entry


async def test_the_router_refuses_over_the_limit_audits_it_and_says_when(
    farm: tuple[Farm, FakeClock],
) -> None:
    f, clock = farm
    router = f.router
    spawned = await router.handle(Incoming("telegram", "1002", "c", "/spawn shell"))
    assert spawned.ok, spawned.text
    clock.advance(20)
    again = await router.handle(Incoming("slack", "U0BOB", "C1", "/spawn shell"))
    assert not again.ok
    assert again.text == "bob: that is more than 1 spawns a minute; try again in 40 s"
    entry = await last_audit(f)
    assert (entry.platform, entry.user_name, entry.outcome) == ("slack", "bob", "limited")
    assert entry.detail == again.text
    assert [a.id for a in await f.supervisor.list_agents()] == ["shell-1"]  # not spawned

    # Buttons are the commands they carry: three a minute, typed or pressed.
    for text in ("/status", "/agents"):
        assert (await router.handle(Incoming("telegram", "1002", "c", text))).ok
    pressed = Incoming("telegram", "1002", "c", "/agents", button=True)
    assert (await router.handle(pressed)).ok
    refused = await router.handle(pressed)
    assert not refused.ok and "3 commands a minute" in refused.text
    entry = await last_audit(f)
    assert entry.outcome == "limited" and entry.detail.startswith("button; bob: that is more")
    assert router.outcomes["limited"] == 2
    # Usage errors are refused before anything is counted; other people are not limited.
    assert "unknown command" in (await router.handle(Incoming("telegram", "1002", "c", "/x"))).text
    assert (await router.handle(Incoming("telegram", "1001", "c", "/status"))).ok
    clock.advance(60)
    assert (await router.handle(Incoming("telegram", "1002", "c", "/status"))).ok


async def test_cron_jobs_and_the_console_count_against_their_user_unless_exempt(
    tmp_path: Path, tmux_socket: str
) -> None:
    config = dataclasses.replace(
        make_config(tmp_path, tmux_socket, users=USERS),
        limits=LimitsConfig(commands_per_minute=2),
        cron=(CronJob("report", "0 9 * * *", "/status", "alice"),),
    )
    async with Daemon(config) as app:
        console = Incoming("web", "local-key", "console", "/status")
        assert (await app.farm.router.handle(console)).ok  # alice: web = true
        assert (await app.run_cron("report")).ok  # alice again: the second this minute
        limited = await app.run_cron("report")
        assert not limited.ok and "alice: that is more than 2 commands a minute" in limited.text
        assert not (await app.farm.router.handle(console)).ok

        exempt = dataclasses.replace(config.limits, exempt=("cron", "console"))
        app.farm.limits.reconfigure(exempt)
        assert (await app.run_cron("report")).ok
        assert (await app.farm.router.handle(console)).ok
        chat = await app.farm.router.handle(Incoming("telegram", "1001", "c", "/status"))
        assert not chat.ok  # alice on Telegram is still over her limit
