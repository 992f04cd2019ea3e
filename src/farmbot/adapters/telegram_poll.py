"""Telegram's long polling, with the position kept in farmbot's database.

Telegram forgets an update as soon as it is asked for a later one (``getUpdates`` with
a higher ``offset``), and python-telegram-bot's ``Updater`` asks again at once, before
the updates it took are handled: a crash in between loses them. So farmbot polls
itself, with the real ``Bot.get_updates``, and writes each batch (and the next offset)
to the database before asking for more (``InboundStore.take_updates``). Each update is
then handled on its own task, marked ``handling`` by this process first and ``done``
after, so:

- the next node to lead starts from the stored offset and hands over the updates that
  were taken but not handled, as if they had just arrived;
- an update some other process had begun is handed over as ``interrupted`` (the router
  then runs it again only if that changes nothing, and the routing layer finds a
  command already routed for it by its ``source``);
- an update Telegram sends again (a stored offset behind Telegram's) is recognized by
  its id and not handled twice.

Webhook mode takes updates through ``take`` too, so a webhook Telegram retries is
handled once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass

from telegram import Bot, Update
from telegram.error import InvalidToken, TelegramError, TimedOut

from farmbot.errors import StorageError
from farmbot.storage.inbound import InboundStore

log = logging.getLogger(__name__)

INTERFACE = "telegram"
AT_ONCE = 8  # updates handled concurrently
RETRY_FIRST, RETRY_MAX = 0.5, 5.0  # seconds between polls after a failure, doubling
STOP_GRACE = 3.0  # seconds handlers in flight may take to finish at a stop


@dataclass(frozen=True, slots=True)
class Handling:
    """The update being handled: its ``Incoming.source`` and what interrupted it before."""

    source: str
    interrupted: str = ""


# Set around each update's handlers, which run in the handling task.
HANDLING: ContextVar[Handling | None] = ContextVar("telegram_handling", default=None)

Process = Callable[[Update], Awaitable[None]]


class Poller:
    """Polls one bot's updates and hands each to ``process`` once (see the docstring)."""

    def __init__(
        self,
        bot: Bot,
        inbound: InboundStore,
        *,
        key: str,
        instance: str,
        process: Process,
        poll_timeout: float,
        on_failure: Callable[[TelegramError], None],
        on_bad_token: Callable[[], None],
    ) -> None:
        self._bot = bot
        self._inbound = inbound
        self._key = key  # the bot's id: positions are per bot
        self._instance = instance
        self._process = process
        self._poll_timeout = poll_timeout
        self._on_failure = on_failure
        self._on_bad_token = on_bad_token
        self._gate = asyncio.Semaphore(AT_ONCE)
        self._handlers: set[asyncio.Task[None]] = set()
        self.taken = 0
        self.handed_over = 0

    def __repr__(self) -> str:
        return f"<Poller taken={self.taken} handed_over={self.handed_over}>"

    async def run(self) -> None:
        """Poll until cancelled (or the token is refused); failures are retried."""
        offset: int | None = None
        ready = False
        delay = RETRY_FIRST
        while True:
            try:
                if not ready:
                    await self._bot.delete_webhook()
                    offset = await self._resume()
                    ready = True
                updates = await self._bot.get_updates(
                    offset=offset,
                    timeout=dtm.timedelta(seconds=self._poll_timeout),
                    allowed_updates=("message", "callback_query"),
                    read_timeout=self._poll_timeout + 10,
                )
            except InvalidToken:
                self._on_bad_token()
                return
            except TimedOut:
                continue
            except (TelegramError, StorageError) as exc:
                if isinstance(exc, TelegramError):
                    self._on_failure(exc)
                else:
                    log.error("telegram: the position could not be read: %s", exc)
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)
                continue
            delay = RETRY_FIRST
            if updates:
                next_offset = max(u.update_id for u in updates) + 1
                if await self.take(updates, next_offset):
                    offset = next_offset

    async def _resume(self) -> int | None:
        """Hand over what was taken but not handled; the position to poll from."""
        waiting = await self._inbound.unfinished(INTERFACE, self._key)
        if waiting:
            log.info("telegram: %d updates taken before were not handled; handling them now",
                     len(waiting))  # fmt: skip
        for update in waiting:
            self.handed_over += 1
            self._start(Update.de_json(update.body, self._bot))
        return await self._inbound.position(INTERFACE, self._key)

    async def take(self, updates: tuple[Update, ...] | list[Update], next_offset: int) -> bool:
        """Record updates and the next position, then handle the new ones; False when the
        database refused (the updates are asked for again)."""
        bodies = [(u.update_id, u.to_dict()) for u in updates]
        try:
            fresh = set(
                await self._inbound.take_updates(
                    INTERFACE, self._key, bodies, next_offset, time.time()
                )
            )
        except StorageError as exc:
            log.error("telegram: updates not taken (asked for again shortly): %s", exc)
            await asyncio.sleep(RETRY_MAX)
            return False
        self.taken += len(fresh)
        for update in updates:
            if update.update_id in fresh:
                self._start(update)
        return True

    def _start(self, update: Update) -> None:
        task = asyncio.create_task(self._handle(update), name=f"telegram-{update.update_id}")
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _handle(self, update: Update) -> None:
        # A button press never waits for the limit: it is quick, and a person waits on it
        # while long commands of the same chat may hold every place.
        gate = contextlib.nullcontext() if update.callback_query else self._gate
        async with gate:
            try:
                before = await self._inbound.begin_update(
                    INTERFACE, self._key, update.update_id, self._instance
                )
            except StorageError as exc:
                log.error("telegram: update %d left for later: %s", update.update_id, exc)
                return
            if before is None:
                return  # done already, or this process has it
            interrupted = ""
            if before.status == "handling":
                who = (before.handler or "?").split("/", 1)[0]
                interrupted = f"the farmbot that was handling it (node {who}) stopped"
            source = f"{INTERFACE}:{self._key}:{update.update_id}"
            token = HANDLING.set(Handling(source, interrupted))
            try:
                await self._process(update)
            finally:
                HANDLING.reset(token)
            try:
                await self._inbound.finish_update(
                    INTERFACE, self._key, update.update_id, self._instance, time.time()
                )
            except StorageError as exc:
                log.error("telegram: update %d handled, not marked: %s", update.update_id, exc)

    async def stop(self) -> None:
        """Let the handlers in flight finish (briefly), then cancel what is left."""
        pending = set(self._handlers)
        if pending:
            await asyncio.wait(pending, timeout=STOP_GRACE)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
