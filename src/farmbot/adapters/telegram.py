"""The Telegram interface: farmbot's commands, replies, buttons and alerts in a Telegram chat.

A thin translator over python-telegram-bot's ``Application``. A message that is a bot
command becomes an ``Incoming`` for the router and its ``Reply`` is rendered back into
the same chat and forum topic (``telegram_render``); alerts from the notifier go to the
chat named by the route, in the project's topic when ``[telegram.topics]`` maps one.

Buttons carry their command as callback data when it fits Telegram's 64 bytes, else
``a:<id>`` of the command stored with ``Store.put_action`` (``base.encode_action``); either
way nothing lives in memory, so a button pressed after a restart still works. The command
runs as the person who pressed it (a client may forge callback data, which is harmless
for that reason). A button that asks (Reject's reason) gets a twin below its row,
"Reject with reason…", whose press asks the presser in a message they reply to
(telegram_questions.py); the reply completes the command.

Every update is handled in its own task, so a button press is answered at once however
many long commands of the same chat are still running (a press never waits for the
poller's limit of updates in flight); ``stop()`` gives those a few seconds and cancels
the rest.

A document or photo whose caption is a command (``/send builder-42``) carries its file
to the router as a ``ReceivedFile``, downloaded (``getFile``) only when the command
takes it; a reply with a file goes out as a document. ``send`` returns the alert's
``chat:message_id`` (``:doc`` when it went as a document) and ``edit`` rewrites it.

``hearing()`` says whether updates arrive: the last answer to ``getUpdates`` (a long poll
answers within ``poll_timeout``), a 409 from a second poller, and the pending update
count ``getWebhookInfo`` reports (``refresh_hearing``, every minute): updates waiting at
Telegram while none arrives mean nobody here gets them; in webhook mode Telegram's last
delivery error says why.

Updates arrive by long polling (``getUpdates``, telegram_poll.py: the offset and the
updates taken but not yet handled are kept in the database, so a new chat leader loses
none and handles none twice) or, in webhook mode, on farmbot's own web server at
``routes()``, checked against the secret-token header. Failures are reported,
never fatal: ``problem`` says what is wrong (an invalid token, a 409 Conflict because
another instance polls with the same token, Telegram unreachable) for ``/readyz`` and
the status page. An invalid token at start marks the interface failed and the daemon
keeps running; alerts for Telegram then become dead letters, to ``/retry`` once fixed.
The token never reaches a log record: a filter redacts it from every record.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from telegram import (
    BotCommand,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    Conflict,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.request import HTTPXRequest

from farmbot.adapters.http import Request, Response, json_response
from farmbot.adapters.shared import (
    Action,
    InterfaceDeps,
    background,
    decode_action,
    encode_action,
)
from farmbot.adapters.telegram_poll import HANDLING, Poller
from farmbot.adapters.telegram_questions import Questions, asking_label, kept_rows
from farmbot.adapters.telegram_render import (
    TOAST_CHARS,
    Rendered,
    chat_id,
    command_text,
    decided,
    delivery_error,
    escape,
    name_of,
    render,
    retry_after,
    thread_of,
    toast,
)
from farmbot.config.telegram import TelegramConfig
from farmbot.errors import AdapterError, DeliveryError, PermanentDeliveryError, StorageError
from farmbot.messages import (
    Attachment,
    Buttons,
    Hearing,
    Incoming,
    MessageRef,
    OnIncoming,
    OutboundMessage,
    ReceivedFile,
    Reply,
    WebRoute,
    ago,
    clip,
    severity_mark,
    with_answer,
)
from farmbot.models import Question
from farmbot.redact import Redactor
from farmbot.storage.inbound import MemoryInboundStore
from farmbot.storage.questions import MemoryQuestionStore

log = logging.getLogger(__name__)
T = TypeVar("T")
TgApp = Application[Any, Any, Any, Any, Any, Any]

HOOK_PREFIX = "/hooks/telegram/"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ("message", "callback_query")
CALLBACK_BYTES = 64  # Telegram's limit for a button's callback data
REPLY_ATTEMPTS = 4  # a reply is tried this often through a 429 or an outage
MAX_REPLY_WAIT = 60.0  # seconds a reply waits for Telegram's retry_after, at most
CONFLICT_QUIET = 60.0  # seconds without a 409 before a conflict counts as over
STOP_GRACE = 3.0  # seconds the poller, and commands in progress, may take to stop
POLL_GRACE = 15.0  # seconds past poll_timeout a long poll may take to answer
INFO_EVERY = 60.0  # seconds between two looks at the pending update count
BACKLOG_AGE = 30.0  # seconds updates may wait at Telegram, none arriving, before it is deaf
CAPTION_CHARS = 1000  # of a reply's text as a document's caption (Telegram allows 1024)
CONFLICT = "409 Conflict: another bot instance polls with this token; stop it"
BAD_TOKEN = "invalid token (getMe was refused); fix telegram.token (or base_url) and restart"
HINT = "farmbot takes commands, like /status or /spawn builder 42; /help lists them"
UPLOAD_HINT = "to give an agent this file, send it again with the caption /send <agent>"
UNREADABLE = "farmbot could not read that button; try again"
ASKED = "Reply to the message below (it mentions you)."
NOT_ASKED = "farmbot could not ask here; type {command} <your answer> instead"
HTML: dict[str, Any] = {
    "parse_mode": ParseMode.HTML,
    "link_preview_options": LinkPreviewOptions(is_disabled=True),
}


class TelegramInterface:
    """Receives commands and button presses from Telegram and delivers replies and alerts."""

    name = "telegram"

    def __init__(
        self,
        config: TelegramConfig,
        deps: InterfaceDeps,
    ) -> None:
        self._config = config
        self._actions = deps.actions
        self._inbound = deps.inbound or MemoryInboundStore()
        self._questions = Questions(deps.questions or MemoryQuestionStore(), deps.clock)
        self._instance = deps.instance
        self._poller: Poller | None = None
        self._polling: asyncio.Task[None] | None = None
        self._menu = deps.menu
        self._clock = deps.clock
        self._sleep = deps.sleep
        self._redactor = Redactor([config.token, config.webhook_secret or ""])
        self._app: TgApp | None = None
        self._requests: list[HTTPXRequest] = []
        self._on_incoming: OnIncoming | None = None
        self._connector: asyncio.Task[None] | None = None
        self._connected = False  # getMe answered: the bot can send
        self._token_rejected = False
        self._conflict_at: float | None = None
        self._problem: str | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self._watcher: asyncio.Task[None] | None = None
        # what Telegram said, for hearing()
        self._polling_since: float | None = None
        self._last_poll: float | None = None  # a 2xx answer to getUpdates
        self._last_update: float | None = None
        self._pending: int | None = None  # getWebhookInfo's pending_update_count
        self._backlog_since: float | None = None  # updates waiting, none arriving since
        self._webhook_error: str | None = None
        self.username = ""
        self.received = self.pressed = self.sent = self.failed = 0

    def __repr__(self) -> str:
        return (
            f"<TelegramInterface @{self.username or '?'} {self._config.mode} "
            f"received={self.received} pressed={self.pressed} sent={self.sent} "
            f"failed={self.failed} problem={self._problem!r}>"
        )

    @property
    def problem(self) -> str | None:
        """What keeps the interface from working, or None when it works."""
        return self._problem

    async def ready(self) -> str | None:
        """``problem``, or why updates do not arrive, as a readiness check for ``/readyz``."""
        if self._problem is not None or not self._connected:
            return self._problem
        hearing = self.hearing()
        return None if hearing.ok else f"telegram does not hear: {hearing.detail}"

    @property
    def webhook_path(self) -> str:
        """The path Telegram posts updates to: derived from the secret, so not guessable."""
        secret = (self._config.webhook_secret or "").encode()
        return HOOK_PREFIX + hashlib.sha256(b"farmbot-telegram\0" + secret).hexdigest()[:32]

    def routes(self) -> list[WebRoute]:
        """The web routes to add before the web server starts (webhook mode only)."""
        if self._config.mode != "webhook":
            return []
        return [("POST", self.webhook_path, self._webhook)]

    # -- lifetime ------------------------------------------------------------------------

    async def start(self, on_incoming: OnIncoming) -> None:
        """Connect (getMe), publish the command menu and start receiving updates.

        Never raises for Telegram's sake: an invalid token or an unreachable server sets
        ``problem``; an unreachable server is retried in the background.
        """
        self._on_incoming = on_incoming
        self._redactor.install()
        self._app = self._build()
        if not await self._connect():
            self._connector = background(self._keep_connecting(), "telegram: connecting", log)

    async def stop(self) -> None:
        """Stop receiving and close connections. Safe to call twice."""
        for task in (self._connector, self._watcher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):  # already logged
                    await task
        self._connector = self._watcher = None
        polling, self._polling = self._polling, None
        if polling is not None:  # first: never two pollers (a new leader may poll now)
            polling.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # already logged
                await polling
        poller, self._poller = self._poller, None
        if poller is not None:  # before the app stops: it would wait for them without end
            await poller.stop()
        if self._inflight:  # webhook updates, handled outside the poller's tasks
            _, late = await asyncio.wait(set(self._inflight), timeout=STOP_GRACE)
            for task in late:
                task.cancel()
        app, self._app = self._app, None
        self._connected = False
        if app is not None:
            if app.running:
                await app.stop()
            await app.shutdown()
        for request in self._requests:
            await request.shutdown()
        self._requests = []
        self._redactor.uninstall()

    def _build(self) -> TgApp:
        # PTB 22 warns on every 429 unless opted in to its timedelta API (read either way).
        os.environ.setdefault("PTB_TIMEDELTA", "true")
        config = self._config
        request = HTTPXRequest(connection_pool_size=8, read_timeout=15.0, write_timeout=15.0)
        poll = _PollRequest(self._polled, connection_pool_size=1)
        self._requests = [request, poll]
        builder = (
            ApplicationBuilder()
            .token(config.token)
            .base_url(config.base_url)
            .base_file_url(config.base_file_url)
            .request(request)
            .get_updates_request(poll)
            .job_queue(None)
            .concurrent_updates(8)
            .updater(None)  # farmbot polls itself (telegram_poll.py)
        )
        app: TgApp = builder.build()
        app.add_handler(TypeHandler(Update, self._heard), group=-1)  # every update, first
        # The poller hands each update to process_update in a task of its own and marks it
        # handled once that returns, so the handlers block (they run in that task); button
        # presses skip the poller's limit of updates in flight, so none waits for another.
        message = filters.UpdateType.MESSAGE
        upload = message & filters.CAPTION & (filters.Document.ALL | filters.PHOTO)
        app.add_handler(MessageHandler(message & filters.COMMAND, self._on_command))
        app.add_handler(MessageHandler(upload, self._on_upload))
        app.add_handler(MessageHandler(message & filters.TEXT, self._on_text))
        app.add_handler(CallbackQueryHandler(self._on_button))
        app.add_error_handler(self._on_error)
        return app

    async def _keep_connecting(self) -> None:
        delay = 1.0
        while True:
            await self._sleep(delay)
            if await self._connect():
                return
            delay = min(60.0, delay * 2)

    async def _connect(self) -> bool:
        """Try to come up once; True when done trying (up, or the token was refused)."""
        app = self._app
        assert app is not None
        try:
            await app.initialize()  # getMe
            self._connected = True
            self.username = app.bot.username
            await self._publish_commands(app)
            if self._config.mode == "webhook":
                url = (self._config.webhook_url or "").rstrip("/") + self.webhook_path
                await app.bot.set_webhook(
                    url, secret_token=self._config.webhook_secret, allowed_updates=ALLOWED_UPDATES
                )
            if not app.running:
                await app.start()
            self._poller = Poller(
                app.bot,
                self._inbound,
                key=self._config.token.split(":", 1)[0],
                instance=self._instance,
                process=app.process_update,
                poll_timeout=self._config.poll_timeout,
                on_failure=self._polling_failed,
                on_bad_token=self._token_refused,
            )
            if self._config.mode == "polling" and self._polling is None:
                self._polling_since = self._clock()
                self._polling = background(self._poller.run(), "telegram: polling", log)
        except InvalidToken:
            self._token_rejected = True
            self._set_problem(BAD_TOKEN, logging.ERROR)
            return True
        except TelegramError as exc:
            self._set_problem(f"cannot reach Telegram ({self._text(exc)}); retrying")
            return False
        self._set_problem(None)
        polls = self._config.mode == "polling"
        how = "polls for updates" if polls else f"takes updates at {self.webhook_path}"
        log.info("telegram: @%s %s", self.username, how)
        if self._watcher is None:
            self._watcher = background(self._watch_backlog(), "telegram: hearing", log)
        return True

    async def _publish_commands(self, app: TgApp) -> None:
        menu = [BotCommand(name, summary[:256]) for name, summary in self._menu]
        try:
            await app.bot.set_my_commands(menu)
        except TelegramError as exc:
            log.warning("telegram: the command menu was not published: %s", self._text(exc))

    # -- health --------------------------------------------------------------------------

    def _set_problem(self, problem: str | None, level: int = logging.WARNING) -> None:
        if problem == self._problem:
            return
        if problem is None:
            log.info("telegram: works again (was: %s)", self._problem)
        else:
            log.log(level, "telegram: %s", problem)
        self._problem = problem

    def _polling_failed(self, exc: TelegramError) -> None:
        if isinstance(exc, Conflict):
            self._conflict_at = self._clock()
            self._set_problem(CONFLICT, logging.ERROR)
        else:
            self._set_problem(f"polling failed ({self._text(exc)}); retrying")

    def hearing(self) -> Hearing:
        """Whether updates reach farmbot, and when the last one did."""
        now, heard = self._clock(), self._last_update
        last = f"last update {ago(now - heard)} ago" if heard is not None else "no update yet"
        if self._token_rejected:
            return Hearing(False, heard, BAD_TOKEN)
        if not self._connected:
            return Hearing(False, heard, f"not connected ({self._problem or 'starting'}); {last}")
        if self._conflict_at is not None and now - self._conflict_at < CONFLICT_QUIET:
            return Hearing(False, heard, f"{CONFLICT}; {last}")
        backlog = self._backlog_since
        stuck = backlog is not None and (heard is None or heard < backlog)
        if stuck and backlog is not None and self._pending and now - backlog >= BACKLOG_AGE:
            why = f" (Telegram says: {self._webhook_error})" if self._webhook_error else ""
            return Hearing(
                False,
                heard,
                f"{_updates(self._pending)} at Telegram and none arrived for "
                f"{ago(now - backlog)}{why}; {last}",
            )
        pending = f"; {self._pending} pending" if self._pending is not None else ""
        if self._config.mode == "webhook":
            return Hearing(True, heard, f"webhook; {last}{pending}")
        since = self._last_poll if self._last_poll is not None else self._polling_since
        if since is None:
            return Hearing(False, heard, f"not polling yet; {last}")
        silent = now - since
        if silent > self._config.poll_timeout + POLL_GRACE:
            return Hearing(False, heard, f"getUpdates has not answered for {ago(silent)}; {last}")
        polled = f"polled {ago(silent)} ago" if self._last_poll is not None else "polling"
        return Hearing(True, heard, f"{polled}; {last}{pending}")

    async def refresh_hearing(self) -> None:
        """Read the pending update count (``getWebhookInfo``) for ``hearing()``."""
        app = self._app
        if app is None or not self._connected:
            return
        try:
            info = await app.bot.get_webhook_info()
        except TelegramError as exc:
            log.info("telegram: getWebhookInfo failed: %s", self._text(exc))
            return
        now, pending = self._clock(), info.pending_update_count
        self._pending = pending
        error_at = info.last_error_date.timestamp() if info.last_error_date else None
        heard = self._last_update
        recent = error_at is not None and (heard is None or error_at > heard)
        self._webhook_error = info.last_error_message if recent else None
        if not pending:
            self._backlog_since = None
        elif self._backlog_since is None or (heard is not None and heard >= self._backlog_since):
            self._backlog_since = now  # waiting from now on, unless one arrives meanwhile

    async def _watch_backlog(self) -> None:
        while True:
            await self.refresh_hearing()
            await asyncio.sleep(INFO_EVERY)  # a pace, not a decision: the clock decides

    async def _heard(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self._last_update = self._clock()

    def _token_refused(self) -> None:
        self._token_rejected = True
        self._set_problem(BAD_TOKEN, logging.ERROR)

    def _polled(self, status: int) -> None:
        """Telegram answered a poll: polling works, unless a conflict is too recent."""
        if 200 <= status < 300:
            self._last_poll = self._clock()
        if status in (401, 404):  # the token was revoked while farmbot ran
            self._token_rejected = True
            self._set_problem(BAD_TOKEN, logging.ERROR)
        recent = (
            self._conflict_at is not None and self._clock() - self._conflict_at < CONFLICT_QUIET
        )
        if 200 <= status < 300 and self._problem is not None and not recent:
            self._conflict_at = None
            self._set_problem(None)

    def _text(self, exc: BaseException) -> str:
        return self._redactor.redact(str(exc)) or type(exc).__name__

    # -- inbound -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _track(self) -> AsyncIterator[None]:
        """Count the current update as in progress (stop() waits for it, briefly)."""
        task = asyncio.current_task()
        assert task is not None  # PTB runs every non-blocking handler in a task
        self._inflight.add(task)
        try:
            yield
        finally:
            self._inflight.discard(task)

    async def _on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is not None and message.text is not None:
            async with self._track():
                if message.reply_to_message is not None and await self._answer_question(
                    update, message, message.text
                ):
                    return
                await self._command(update, message, message.text, ())

    async def _on_upload(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A document or photo whose caption is a command: the file goes with it."""
        message = update.message
        if message is None or not message.caption:
            return
        if not message.caption.lstrip().startswith("/"):
            if message.chat.type == "private":
                await self._respond(message.chat_id, None, Reply(UPLOAD_HINT))
            return
        async with self._track():
            await self._command(update, message, message.caption.strip(), self._files(message))

    async def _command(
        self, update: Update, message: Message, raw: str, files: tuple[ReceivedFile, ...]
    ) -> None:
        user = update.effective_user
        if user is None or user.is_bot:
            return
        text = command_text(raw, self.username)
        if text is None or self._on_incoming is None:
            return  # addressed to another bot in the group
        self.received += 1
        handling = HANDLING.get()
        incoming = Incoming(
            "telegram",
            str(user.id),
            str(message.chat_id),
            text,
            name_of(user),
            sent_at=message.date.timestamp(),
            received_at=self._clock(),
            files=files,
            precision=1.0,  # Telegram's dates are whole seconds
            source=handling.source if handling else "",
            interrupted=handling.interrupted if handling else "",
        )
        await self._respond(message.chat_id, thread_of(message), await self._on_incoming(incoming))

    def _files(self, message: Message) -> tuple[ReceivedFile, ...]:
        """The document or the largest size of the photo, fetched when a command wants it."""
        if message.document is not None:
            doc = message.document
            name = doc.file_name or f"document-{message.message_id}"
            return (ReceivedFile(name, doc.file_size, lambda: self._download(doc.file_id)),)
        if message.photo:
            photo = message.photo[-1]  # Telegram lists the sizes smallest first
            name = f"photo-{message.message_id}.jpg"
            return (ReceivedFile(name, photo.file_size, lambda: self._download(photo.file_id)),)
        return ()

    async def _download(self, file_id: str) -> bytes:
        if self._app is None:
            raise AdapterError("telegram: the interface is stopped; send the file again")
        try:
            found = await self._app.bot.get_file(file_id)
            return bytes(await found.download_as_bytearray())
        except TelegramError as exc:
            raise AdapterError(f"telegram did not hand the file over: {self._text(exc)}") from exc

    async def _on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None:
            return
        if message.reply_to_message is not None and message.text:
            async with self._track():
                if await self._answer_question(update, message, message.text):
                    return
        if message.chat.type == "private":
            await self._respond(message.chat_id, None, Reply(HINT))

    async def _answer_question(self, update: Update, message: Message, text: str) -> bool:
        """A reply to a question farmbot asked (a button's): run the button's command with
        it, as whoever replied (only the one asked may). False when it answers none."""
        user = update.effective_user
        if user is None or user.is_bot or self._on_incoming is None:
            return False
        try:
            question = await self._questions.answered_by(message)
        except StorageError as exc:
            log.error("telegram: a question could not be looked up: %s", exc)
            return False
        if question is None:
            return False
        self.received += 1
        handling = HANDLING.get()
        incoming = Incoming(
            "telegram",
            str(user.id),
            str(message.chat_id),
            with_answer(question.command, text),
            name_of(user),
            button=True,
            sent_at=message.date.timestamp(),
            received_at=self._clock(),
            precision=1.0,
            source=handling.source if handling else "",
            interrupted=handling.interrupted if handling else "",
            asked=question.user_id,
        )
        reply = await self._on_incoming(incoming)
        if incoming.user_id == question.user_id:
            await self._close(question)
        await self._respond(message.chat_id, thread_of(message), reply)
        return True

    async def _close(self, question: Question) -> None:
        try:
            await self._questions.close(question)
        except StorageError as exc:  # a second reply is refused by the gate anyway
            log.warning("telegram: an answered question stays open: %s", exc)

    async def _on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        async with self._track():
            await self._press(update)

    async def _press(self, update: Update) -> None:
        query = update.callback_query
        if query is None or self._on_incoming is None:
            return
        self.pressed += 1
        data, origin, presser = query.data or "", query.message, query.from_user
        try:
            action = await decode_action(self._actions, data)
        except StorageError as exc:
            log.error("telegram: a button's stored command could not be read: %s", exc)
            await self._answer(query, UNREADABLE)
            return
        if action is None:
            await self._answer(query, "This button no longer works; run the command instead.")
            return
        if action.asks:
            await self._ask(query, action)
            return
        command = action.command
        chat = str(origin.chat.id) if origin is not None else ""
        handling = HANDLING.get()
        reply = await self._on_incoming(
            Incoming(
                "telegram",
                str(presser.id),
                chat,
                command,
                name_of(presser),
                button=True,
                received_at=self._clock(),
                source=handling.source if handling else "",
                interrupted=handling.interrupted if handling else "",
            )
        )
        await self._answer(query, "" if reply.ok else reply.text)
        if reply.ok and reply.decided is not None and isinstance(origin, Message):
            await self._mark_decided(origin, data, reply.decided.approved, reply)
        elif origin is not None and (reply.ok or len(reply.text) > TOAST_CHARS):
            thread = thread_of(origin) if isinstance(origin, Message) else None
            await self._respond(origin.chat.id, thread, reply)

    async def _ask(self, query: CallbackQuery, action: Action) -> None:
        """Put the button's question to the presser, in a message they reply to."""
        origin = query.message
        if not isinstance(origin, Message):  # too old for Telegram to show it
            await self._answer(query, NOT_ASKED.format(command=action.command))
            return
        try:
            await self._questions.ask(origin.get_bot(), origin, query.from_user, action)
        except (TelegramError, StorageError) as exc:
            log.warning("telegram: a question was not asked: %s", self._text(exc))
            await self._answer(query, NOT_ASKED.format(command=action.command))
            return
        await self._answer(query, ASKED)

    async def _answer(self, query: CallbackQuery, text: str) -> None:
        try:
            await query.answer(toast(text) or None)
        except TelegramError as exc:  # too old to answer: the person sees the result anyway
            log.info("telegram: a button press was not answered: %s", self._text(exc))

    async def _mark_decided(
        self, message: Message, data: str, approved: bool, reply: Reply
    ) -> None:
        """Append who decided and when to the message, and drop the pressed button's row."""
        rows = message.reply_markup.inline_keyboard if message.reply_markup else ()
        kept = kept_rows(rows, data)
        markup = InlineKeyboardMarkup(kept) if kept else None
        text = decided(message.text_html if message.text else None, approved, reply.text)
        where = {"chat_id": message.chat_id, "message_id": message.message_id}
        bot = message.get_bot()
        try:
            if text is not None:
                await self._api(
                    bot.edit_message_text, text, patient=True, reply_markup=markup, **where, **HTML
                )
                return
            await self._api(
                bot.edit_message_reply_markup, patient=True, reply_markup=markup, **where
            )
        except TimedOut:  # the edit may well have happened: no second message
            log.warning("telegram: editing message %d timed out", message.message_id)
            return
        except BadRequest as exc:  # deleted meanwhile, say: the decision goes in a new message
            log.info("telegram: message %d not edited: %s", message.message_id, self._text(exc))
        await self._respond(message.chat_id, thread_of(message), reply)

    async def _respond(self, chat: int, thread: int | None, reply: Reply) -> None:
        try:
            markup = await self._keyboard(reply.buttons)
        except StorageError as exc:
            log.error("telegram: the reply's buttons were left off: %s", exc)
            markup = None
        rendered = render(reply.text, reply.pre) if reply.file is None else _as_document(reply)
        try:
            await self._post(chat, thread, rendered, markup, patient=True)
        except TimedOut:  # not sent again: Telegram may well have taken it
            log.warning("telegram: a reply to chat %s timed out; it may not have arrived", chat)
        except TelegramError as exc:
            log.warning("telegram: a reply to chat %s was lost: %s", chat, self._text(exc))

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram: handling an update failed", exc_info=context.error)

    async def _webhook(self, request: Request) -> Response:
        """Take one update from Telegram; 401 unless it carries the secret token."""
        secret = (self._config.webhook_secret or "").encode()
        given = request.headers.get(SECRET_HEADER, "").encode(errors="replace")
        if not secret or not hmac.compare_digest(given, secret):
            return json_response({"error": f"missing or wrong {SECRET_HEADER}"}, status=401)
        app, poller = self._app, self._poller
        if app is None or not app.running or poller is None:  # Telegram tries again later
            return json_response({"error": "the telegram interface is not running"}, status=503)
        try:
            update = Update.de_json(await request.json(), app.bot)
        except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError):
            return json_response({"error": "the body is not a Telegram Update"}, status=400)
        if not await poller.take([update], update.update_id + 1):
            return json_response({"error": "farmbot's database failed"}, status=503)
        return json_response({})

    # -- outbound ------------------------------------------------------------------------

    async def send(self, channel: str, message: OutboundMessage) -> MessageRef:
        """Deliver one alert in one API call (so a retry never repeats half of it).

        Returns ``chat:message_id``, with ``:doc`` when it went as a document.
        """
        where = f"telegram chat {channel}"
        self._check_sendable(where)
        forum = channel.startswith("-100")  # topics exist in supergroups only
        thread = self._config.topics.get(message.project or "") if forum else None
        rendered = _alert(message, max_chunks=1)
        try:
            markup = await self._keyboard(message.buttons)
            posted = await self._post(chat_id(channel), thread, rendered, markup, patient=False)
        except StorageError as exc:
            self.failed += 1
            raise DeliveryError(f"{where}: a button could not be stored: {exc}") from exc
        except TelegramError as exc:
            self.failed += 1
            raise delivery_error(where, thread, exc, self._text(exc)) from exc
        self.sent += 1
        kind = ":doc" if rendered.document is not None else ""
        return f"{posted.chat_id}:{posted.message_id}{kind}"

    async def edit(self, channel: str, ref: MessageRef, message: OutboundMessage) -> None:
        """Rewrite an alert ``send`` posted: its text (or caption) and its buttons now."""
        where = f"telegram message {ref}"
        self._check_sendable(where)
        assert self._app is not None  # connected
        chat, _, rest = ref.partition(":")
        number, _, kind = rest.partition(":")
        if not number.isdecimal():
            raise PermanentDeliveryError(f"{where}: not a reference farmbot made")
        at: dict[str, Any] = {"chat_id": chat_id(chat), "message_id": int(number)}
        bot, note = self._app.bot, escape(message.note)
        try:
            markup = await self._keyboard(message.buttons)
            if kind == "doc":
                caption = _alert(message, max_chunks=0).caption + (f"\n\n{note}" if note else "")
                await bot.edit_message_caption(
                    caption=caption, reply_markup=markup, parse_mode=ParseMode.HTML, **at
                )
                return
            rendered = _alert(message, max_chunks=1, note=True)
            if not rendered.chunks:  # the note made it too long: the alert as it was
                rendered = _alert(message, max_chunks=1)
            text = rendered.chunks[0] if rendered.chunks else None
            if text is None:
                await bot.edit_message_reply_markup(reply_markup=markup, **at)
            else:
                await bot.edit_message_text(text, reply_markup=markup, **at, **HTML)
        except StorageError as exc:
            raise DeliveryError(f"{where}: a button could not be stored: {exc}") from exc
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():  # already as wanted (edited before)
                raise delivery_error(where, None, exc, self._text(exc)) from exc
        except TelegramError as exc:
            raise delivery_error(where, None, exc, self._text(exc)) from exc

    def _check_sendable(self, where: str) -> None:
        if self._token_rejected:
            raise PermanentDeliveryError(f"{where}: {BAD_TOKEN}, then /retry the dead letters")
        if not self._connected or self._app is None:
            raise DeliveryError(f"{where}: not connected ({self._problem or 'starting'})")

    async def _keyboard(self, buttons: Buttons) -> InlineKeyboardMarkup | None:
        """The buttons, row by row; below a row, the asking twins of its buttons that ask."""
        keys: list[list[InlineKeyboardButton]] = []
        for row in buttons:
            keys.append([await self._key(b.label or b.command, b.command) for b in row])
            asking = [b for b in row if b.asks]
            keys.append([await self._key(asking_label(b.label), b.command, b.asks) for b in asking])
        return InlineKeyboardMarkup([row for row in keys if row]) if any(keys) else None

    async def _key(self, label: str, command: str, asks: str = "") -> InlineKeyboardButton:
        data = await encode_action(self._actions, command, _fits, self._clock(), asks)
        return InlineKeyboardButton(label, callback_data=data)

    async def _post(
        self,
        chat: int | str,
        thread: int | None,
        rendered: Rendered,
        markup: InlineKeyboardMarkup | None,
        *,
        patient: bool,
    ) -> Message:
        """Send the messages (the keyboard on the last) or the document; return the last."""
        if self._app is None:
            raise NetworkError("the telegram interface is stopped")
        bot, topic = self._app.bot, {"message_thread_id": thread}
        if rendered.document is not None:
            return await self._api(
                bot.send_document,
                chat,
                rendered.document,
                patient=patient,
                filename=rendered.filename,
                caption=rendered.caption,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
                **topic,
            )
        last: Message | None = None
        for i, chunk in enumerate(rendered.chunks, 1):
            keyboard = markup if i == len(rendered.chunks) else None
            last = await self._api(
                bot.send_message,
                chat,
                chunk,
                patient=patient,
                reply_markup=keyboard,
                **topic,
                **HTML,
            )
        assert last is not None  # render() never returns nothing
        return last

    async def _api(
        self, call: Callable[..., Awaitable[T]], *args: Any, patient: bool, **kwargs: Any
    ) -> T:
        """Make one Bot API call; when ``patient``, wait out a 429 or an outage and retry.

        Alerts are not patient: the notifier retries them from the outbox instead. A
        timeout is never retried: Telegram may have taken the message and only answered
        late, so sending it again could post it twice.
        """
        for attempt in range(REPLY_ATTEMPTS - 1):
            try:
                return await call(*args, **kwargs)
            except (RetryAfter, NetworkError) as exc:
                if not patient or isinstance(exc, BadRequest | TimedOut):
                    raise
                wait = retry_after(exc) if isinstance(exc, RetryAfter) else 2.0**attempt
                log.info("telegram: %s; trying again in %.0fs", self._text(exc), wait)
                await self._sleep(min(wait, MAX_REPLY_WAIT))
        return await call(*args, **kwargs)


def _updates(n: int) -> str:
    return "1 update waits" if n == 1 else f"{n} updates wait"


def _alert(message: OutboundMessage, *, max_chunks: int, note: bool = False) -> Rendered:
    """An alert as ``send`` posts it (with the edit's note when ``note``)."""
    title = f"{severity_mark(message.severity)} {message.title}"
    text = message.body if note else message.text
    file = f"alert-{message.alert_id}.txt"
    return render(text, message.pre, title=title, max_chunks=max_chunks, filename=file)


def _as_document(reply: Reply) -> Rendered:
    """A reply with a file: the file as the document, the text as its caption."""
    file: Attachment | None = reply.file
    assert file is not None
    caption = escape(clip(reply.text, CAPTION_CHARS))
    return Rendered(document=file.data, filename=file.name, caption=caption)


def _fits(command: str) -> bool:
    """Whether a command can be a button's callback data as it is."""
    return command.startswith("/") and len(command.encode()) <= CALLBACK_BYTES


class _PollRequest(HTTPXRequest):
    """The getUpdates connection; tells the interface the HTTP status of every poll."""

    def __init__(self, on_answer: Callable[[int], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_answer = on_answer

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        code, payload = await super().do_request(*args, **kwargs)
        self._on_answer(code)
        return code, payload
