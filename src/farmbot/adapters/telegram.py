"""The Telegram interface: farmbot's commands, replies, buttons and alerts in a Telegram chat.

A thin translator over python-telegram-bot's ``Application``. A message that is a bot
command becomes an ``Incoming`` for the router and its ``Reply`` is rendered back into
the same chat and forum topic (``telegram_render``); alerts from the notifier go to the
chat named by the route, in the project's topic when ``[telegram.topics]`` maps one.

Buttons carry their command as callback data when it fits Telegram's 64 bytes, else
``a:<id>`` of the command stored with ``Store.put_action`` (``base.encode_action``); either
way nothing lives in memory, so a button pressed after a restart still works. The command
runs as the person who pressed it (a client may forge callback data, which is harmless
for that reason).

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
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
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
    filters,
)
from telegram.request import HTTPXRequest

from farmbot.adapters.shared import InterfaceDeps, background, decode_action, encode_action
from farmbot.adapters.telegram_poll import HANDLING, Poller
from farmbot.adapters.telegram_render import (
    TOAST_CHARS,
    Rendered,
    chat_id,
    command_text,
    decided,
    delivery_error,
    name_of,
    render,
    retry_after,
    thread_of,
    toast,
)
from farmbot.config.telegram import TelegramConfig
from farmbot.errors import DeliveryError, PermanentDeliveryError, StorageError
from farmbot.messages import (
    Buttons,
    Incoming,
    OnIncoming,
    OutboundMessage,
    Reply,
    WebRoute,
    severity_mark,
)
from farmbot.redact import Redactor
from farmbot.storage.inbound import MemoryInboundStore

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
STOP_GRACE = 3.0  # seconds the poller may take to stop
CONFLICT = "409 Conflict: another bot instance polls with this token; stop it"
BAD_TOKEN = "invalid token (getMe was refused); fix telegram.token (or base_url) and restart"
HINT = "farmbot takes commands, like /status or /spawn builder 42; /help lists them"
UNREADABLE = "farmbot could not read that button; try again"
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
        """``problem``, as a readiness check for ``/readyz``."""
        return self._problem

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
        connector, self._connector = self._connector, None
        if connector is not None:
            connector.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # already logged
                await connector
        polling, self._polling = self._polling, None
        if polling is not None:  # first: never two pollers (a new leader may poll now)
            polling.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # already logged
                await polling
        poller, self._poller = self._poller, None
        if poller is not None:
            await poller.stop()
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
        command = filters.UpdateType.MESSAGE & filters.COMMAND
        app.add_handler(MessageHandler(command, self._on_command))
        app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.TEXT, self._on_text))
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

    def _token_refused(self) -> None:
        self._token_rejected = True
        self._set_problem(BAD_TOKEN, logging.ERROR)

    def _polled(self, status: int) -> None:
        """Telegram answered a poll: polling works, unless a conflict is too recent."""
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

    async def _on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.message, update.effective_user
        if message is None or user is None or message.text is None or user.is_bot:
            return
        text = command_text(message.text, self.username)
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
            source=handling.source if handling else "",
            interrupted=handling.interrupted if handling else "",
        )
        await self._respond(message.chat_id, thread_of(message), await self._on_incoming(incoming))

    async def _on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.message is not None and update.message.chat.type == "private":
            await self._respond(update.message.chat_id, None, Reply(HINT))

    async def _on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None or self._on_incoming is None:
            return
        self.pressed += 1
        data, origin, presser = query.data or "", query.message, query.from_user
        try:
            command = await decode_action(self._actions, data)
        except StorageError as exc:
            log.error("telegram: a button's stored command could not be read: %s", exc)
            await self._answer(query, UNREADABLE)
            return
        if command is None:
            await self._answer(query, "This button no longer works; run the command instead.")
            return
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
        kept = [row for row in rows if all(b.callback_data != data for b in row)]
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
        try:
            await self._post(chat, thread, render(reply.text, reply.pre), markup, patient=True)
        except TimedOut:  # not sent again: Telegram may well have taken it
            log.warning("telegram: a reply to chat %s timed out; it may not have arrived", chat)
        except TelegramError as exc:
            log.warning("telegram: a reply to chat %s was lost: %s", chat, self._text(exc))

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram: handling an update failed", exc_info=context.error)

    async def _webhook(self, request: web.Request) -> web.StreamResponse:
        """Take one update from Telegram; 401 unless it carries the secret token."""
        secret = (self._config.webhook_secret or "").encode()
        given = request.headers.get(SECRET_HEADER, "").encode(errors="replace")
        if not secret or not hmac.compare_digest(given, secret):
            return web.json_response({"error": f"missing or wrong {SECRET_HEADER}"}, status=401)
        app, poller = self._app, self._poller
        if app is None or not app.running or poller is None:  # Telegram tries again later
            return web.json_response({"error": "the telegram interface is not running"}, status=503)
        try:
            update = Update.de_json(await request.json(), app.bot)
        except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError):
            return web.json_response({"error": "the body is not a Telegram Update"}, status=400)
        if not await poller.take([update], update.update_id + 1):
            return web.json_response({"error": "farmbot's database failed"}, status=503)
        return web.json_response({})

    # -- outbound ------------------------------------------------------------------------

    async def send(self, channel: str, message: OutboundMessage) -> None:
        """Deliver one alert in one API call (so a retry never repeats half of it)."""
        where = f"telegram chat {channel}"
        if self._token_rejected:
            raise PermanentDeliveryError(f"{where}: {BAD_TOKEN}, then /retry the dead letters")
        if not self._connected:
            raise DeliveryError(f"{where}: not connected ({self._problem or 'starting'})")
        forum = channel.startswith("-100")  # topics exist in supergroups only
        thread = self._config.topics.get(message.project or "") if forum else None
        title = f"{severity_mark(message.severity)} {message.title}"
        file = f"alert-{message.alert_id}.txt"
        rendered = render(message.text, message.pre, title=title, max_chunks=1, filename=file)
        try:
            markup = await self._keyboard(message.buttons)
            await self._post(chat_id(channel), thread, rendered, markup, patient=False)
        except StorageError as exc:
            self.failed += 1
            raise DeliveryError(f"{where}: a button could not be stored: {exc}") from exc
        except TelegramError as exc:
            self.failed += 1
            raise delivery_error(where, thread, exc, self._text(exc)) from exc
        self.sent += 1

    async def _keyboard(self, buttons: Buttons) -> InlineKeyboardMarkup | None:
        rows = [
            [(b.label or b.command, await self._data(b.command)) for b in row] for row in buttons
        ]
        keys = [[InlineKeyboardButton(label, callback_data=d) for label, d in row] for row in rows]
        return InlineKeyboardMarkup([row for row in keys if row]) if any(keys) else None

    async def _data(self, command: str) -> str:
        return await encode_action(self._actions, command, _fits, self._clock())

    async def _post(
        self,
        chat: int | str,
        thread: int | None,
        rendered: Rendered,
        markup: InlineKeyboardMarkup | None,
        *,
        patient: bool,
    ) -> None:
        """Send the messages (the keyboard on the last) or the document."""
        if self._app is None:
            raise NetworkError("the telegram interface is stopped")
        bot, topic = self._app.bot, {"message_thread_id": thread}
        if rendered.document is not None:
            await self._api(
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
            return
        for i, chunk in enumerate(rendered.chunks, 1):
            keyboard = markup if i == len(rendered.chunks) else None
            await self._api(
                bot.send_message,
                chat,
                chunk,
                patient=patient,
                reply_markup=keyboard,
                **topic,
                **HTML,
            )

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
