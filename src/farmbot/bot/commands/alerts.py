"""Commands about alerts: what was raised, the outbox, and dead letters to send again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from farmbot.bot.authz import Person
from farmbot.bot.commands.base import Context, Spec, no_args, ref, words
from farmbot.errors import Conflict, NotFound
from farmbot.messages import Button, Reply, ago
from farmbot.models import Role

ALERTS_SHOWN = 10
DEAD_SHOWN = 10


@dataclass(frozen=True, slots=True)
class Alerts:
    """``/alerts``: recent alerts, and dead letters to retry."""


@dataclass(frozen=True, slots=True)
class Retry:
    """``/retry``: send a dead letter again."""

    outbox: int  # the id of a dead letter


def _retry(args: str, usage: str) -> Retry:
    [outbox] = words(args, usage, 1, 1)
    return Retry(ref(outbox, "dead letter", "/alerts", usage))


async def _show(command: Alerts, person: Person, ctx: Context) -> Reply:
    store = ctx.outbox
    now = ctx.clock()
    counts = await store.outbox_summary()
    lines = ["outbox: " + ", ".join(f"{n} {status}" for status, n in counts.items())]
    alerts = await store.recent_alerts(ALERTS_SHOWN)
    lines.append("recent alerts:" if alerts else "no alerts yet")
    for alert in alerts:
        lines.append(f"• [{alert.severity}] {alert.title} ({ago(now - alert.created_at)} ago)")
    dead = await store.dead_letters(DEAD_SHOWN)
    if dead:
        lines.append("dead letters (not delivered; /retry sends one again):")
    for item in dead:
        lines.append(
            f"• #{item.id} to {item.interface}:{item.channel}: {item.alert.title}"
            f" — {item.last_error}"
        )
    buttons = tuple((Button(f"Retry #{item.id}", f"/retry {item.id}", "primary"),) for item in dead)
    return Reply("\n".join(lines), buttons=buttons)


async def _send_again(command: Retry, person: Person, ctx: Context) -> Reply:
    store = ctx.outbox
    item = await store.retry_dead(command.outbox, ctx.clock())
    if item is None:
        found = await store.get_outbox(command.outbox)
        if found is None:
            raise NotFound(f"no dead letter {command.outbox}; /alerts lists them")
        raise Conflict(f"{command.outbox} is not a dead letter: it is {found.status.value}")
    if ctx.notifier is not None:
        ctx.notifier.notify_new()
    return Reply(
        f"dead letter {item.id} goes to {item.interface}:{item.channel} again: {item.alert.title}"
    )


SPECS: tuple[Spec[Any], ...] = (
    Spec(
        "alerts",
        "/alerts",
        "recent alerts, and dead letters to retry",
        Role.VIEWER,
        Alerts,
        no_args(Alerts),
        _show,
    ),
    Spec(
        "retry",
        "/retry <dead letter>",
        "send a dead letter again",
        Role.ADMIN,
        Retry,
        _retry,
        _send_again,
    ),
)
