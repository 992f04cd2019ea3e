"""What every interface (web, Telegram, Slack, ...) is to the rest of farmbot.

An interface translates: platform updates become ``Incoming`` values handed to the
injected ``on_incoming`` callback (the router), whose ``Reply`` the interface renders;
the notifier hands it ``OutboundMessage`` alerts to ``send``. It decides nothing itself.

Also here, what several interfaces share: a button's command too long for the platform
travels as ``a:<id>`` of the command stored with ``Store.put_action`` (so a button pressed
after a restart still works), and reading an HTTP ``Retry-After`` header.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from farmbot.bot.replies import Reply
from farmbot.models import Buttons, Severity

if TYPE_CHECKING:
    from farmbot.storage.base import Store

ACTION = "a:"  # a button payload naming a stored command: "a:17"


@dataclass(frozen=True, slots=True)
class Incoming:
    """One command from a person, on some platform."""

    platform: str  # "web", "cli", "telegram", "slack", "scheduler", ...
    user_id: str  # the platform's id of the person
    chat: str  # where it came from (chat id, channel id, "console")
    text: str  # command text, e.g. "/spawn builder 42"
    display_name: str = ""
    button: bool = False  # a button press rather than typed text (the audit says so)


OnIncoming = Callable[[Incoming], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One alert for one channel, as the notifier hands it to an interface."""

    alert_id: int
    outbox_id: int  # the same id on a retry: lets a platform drop a duplicate
    severity: Severity
    title: str
    text: str  # ends with "(repeated 4× in the last 5 min)" when count > 1
    pre: str | None  # the last lines of output, shown monospaced
    buttons: Buttons  # rows of buttons; each is a command, run as whoever presses it
    agent_id: str | None
    project: str | None
    count: int = 1  # how many alerts this message stands for


class Interface(Protocol):
    """A way people reach farmbot."""

    name: str

    async def start(self, on_incoming: OnIncoming) -> None:
        """Start receiving; hand every command to ``on_incoming``."""

    async def stop(self) -> None:
        """Stop receiving and release resources. Safe to call twice."""

    async def send(self, channel: str, message: OutboundMessage) -> None:
        """Deliver one alert to ``channel``.

        Raises ``DeliveryError`` (with ``retry_after`` when the platform gave one) when a
        retry may help -- rate limits, 5xx, timeouts -- and ``PermanentDeliveryError``
        when it cannot (e.g. channel_not_found). Returning means delivered.
        """


def background(coro: Awaitable[None], name: str, log: logging.Logger) -> asyncio.Task[None]:
    """Start an interface's own background task; its failure is logged, never lost.

    The interface owns the task: ``stop()`` cancels and awaits it.
    """

    async def run() -> None:
        await coro

    def report(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", name, exc_info=task.exception())

    task = asyncio.create_task(run(), name=name)
    task.add_done_callback(report)
    return task


async def encode_action(store: Store, command: str, fits: Callable[[str], bool], now: float) -> str:
    """A button's payload: the command itself when it ``fits``, else ``a:<id>`` of it stored.

    Raises ``StorageError`` when the command cannot be stored.
    """
    if fits(command):
        return command
    return f"{ACTION}{await store.put_action(command, now)}"


async def decode_action(store: Store, data: str) -> str | None:
    """The command a button's payload stands for; None when it stands for none (any more).

    Raises ``StorageError`` when a stored command cannot be read.
    """
    if data.startswith("/"):
        return data
    number = data[len(ACTION) :] if data.startswith(ACTION) else ""
    return await store.get_action(int(number)) if number.isdecimal() else None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)
