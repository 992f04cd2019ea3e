"""What several interfaces share (the Interface Protocol itself is in farmbot.messages).

A button's command too long for the platform travels as ``a:<id>`` of the command stored
in the actions table (so a button pressed after a restart still works). A button that
asks a question first (``Button.asks``) always travels as ``a:<id>``, of
``?<question>\\n<command>`` stored; ``decode_action`` gives back both as an ``Action``. An
interface's own background task logs its failure instead of losing it; an HTTP
``Retry-After`` header is read the same way everywhere.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from farmbot.storage.actions import ActionStore
from farmbot.storage.inbound import InboundStore
from farmbot.storage.questions import QuestionStore
from farmbot.storage.threads import ThreadStore

ACTION = "a:"  # a button payload naming a stored command: "a:17"
ASKING = "?"  # a stored action that asks first: "?Why?\n/reject 7"

Menu = tuple[tuple[str, str], ...]  # (command, summary) pairs for a platform's command menu


@dataclass(frozen=True, slots=True)
class InterfaceDeps:
    """What the composition root hands every interface: ``Cls(section_config, deps)``."""

    actions: ActionStore  # commands of buttons too long for a platform's payload
    threads: ThreadStore  # the thread an interface keeps a key's messages in
    menu: Menu = ()
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    inbound: InboundStore | None = None  # positions and taken updates (None: in memory)
    instance: str = "local"  # who handles inbound updates: "<node>/<this process>"
    questions: QuestionStore | None = None  # what a chat asked whom (None: in memory)


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


@dataclass(frozen=True, slots=True)
class Action:
    """What a button's payload stands for: its command, and the question it asks first."""

    command: str
    asks: str = ""  # "" when the button runs its command at once


async def encode_action(
    store: ActionStore, command: str, fits: Callable[[str], bool], now: float, asks: str = ""
) -> str:
    """A button's payload: the command itself when it ``fits``, else ``a:<id>`` of it
    stored; always the latter for a button that ``asks`` (the question goes with it).

    Raises ``StorageError`` when the command cannot be stored.
    """
    if not asks and fits(command):
        return command
    stored = f"{ASKING}{' '.join(asks.split())}\n{command}" if asks else command
    return f"{ACTION}{await store.put_action(stored, now)}"


async def decode_action(store: ActionStore, data: str) -> Action | None:
    """What a button's payload stands for; None when it stands for nothing (any more).

    Raises ``StorageError`` when a stored command cannot be read.
    """
    if data.startswith(ACTION):
        number = data[len(ACTION) :]
        stored = await store.get_action(int(number)) if number.isdecimal() else None
        return None if stored is None else _action(stored)
    return Action(data) if data.startswith("/") else None


def _action(payload: str) -> Action | None:
    if not payload.startswith(ASKING):
        return Action(payload)
    question, newline, command = payload[len(ASKING) :].partition("\n")
    return Action(command, question) if newline and command else None


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
    import email.utils  # here: the email package costs ~8 ms at start, for a rare header

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)
