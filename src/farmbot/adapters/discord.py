"""The Discord interface: farmbot's commands, replies, buttons and alerts in Discord.

A thin translator over discord.py (``discord_client`` sets discord.py up, including how
``api_base``/``gateway_url`` redirect it without global state; ``discord_render`` is the
pure half). A slash command -- ``/farm text:...`` or one of the typed ones, ``/spawn
kind:builder n:42`` -- becomes an ``Incoming`` for the router; it is acknowledged at once
(a deferred response, well within Discord's 3 seconds, however long the router takes)
and the ``Reply`` follows as the edited response plus followups. Every interaction runs in
its own task, so a button press is answered while a long command of the same person runs.

Buttons are ``FarmButton`` dynamic items: the ``custom_id`` is the command, or ``a:<id>``
of the command stored with ``Store.put_action`` when it is over 100 characters, so a
press works on messages sent before a restart. The command runs as the person who
pressed it. A button that asks (Reject: "Why?") opens a modal instead; its submission
runs the command with the answer (an empty one: the command alone), as the person who
submitted it -- the router refuses anyone but the presser, whose id the modal's
``custom_id`` carries. ``/task`` opens a form, so a task's body may have many lines. A
decided Approve/Reject message is edited to say who decided and when, and loses the
pressed row; a refusal is shown to the presser only.

Alerts go to channels (``send``), in a thread per project or per agent if configured: the
first alert of a key starts a thread on itself, later ones go into it (the thread id is in
storage, so it survives restarts; a deleted thread is started anew). 429s are waited out
for replies; for alerts discord.py waits out short ones itself (up to 30 s, its minimum)
and longer ones become ``DeliveryError(retry_after=...)``, as do 5xx and outages, for the
notifier to retry; an unknown channel or missing access is a ``PermanentDeliveryError``
saying what to do. An invalid token marks the interface failed (``problem``) and farmbot
keeps running. ``hearing()`` says whether the gateway is connected and its heartbeats
ACKed. The token never reaches a log record: the redactor cleans every record.

``send`` returns the alert's ``channel:message`` (the thread's id when it went into one)
and ``edit`` rewrites it. ``/send`` takes an optional file (an attachment option): it
reaches the router as a ``ReceivedFile``, read from Discord's CDN only when wanted; a
reply's file is attached. ``/ping`` measures from the interaction's snowflake time.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

import discord

from farmbot.adapters.discord_client import (
    HEARTBEAT_TIMEOUT,
    FarmButton,
    FarmClient,
    question_modal,
    use_rebased_webhooks,
)
from farmbot.adapters.discord_render import (
    NETWORK_ERRORS,
    TASK_FORM,
    Rendered,
    asked_of,
    decided,
    delivery_error,
    escape,
    fits_custom_id,
    label,
    layout,
    question_id,
    render,
    task_data,
    thread_of,
)
from farmbot.adapters.shared import (
    Action,
    InterfaceDeps,
    background,
    decode_action,
    encode_action,
)
from farmbot.config.discord import DiscordConfig
from farmbot.errors import AdapterError, DeliveryError, PermanentDeliveryError, StorageError
from farmbot.messages import (
    Buttons,
    Hearing,
    Incoming,
    MessageRef,
    OnIncoming,
    OutboundMessage,
    ReceivedFile,
    Reply,
    ago,
    clip,
    severity_mark,
    with_answer,
)
from farmbot.redact import Redactor

log = logging.getLogger(__name__)
Interaction = discord.Interaction[FarmClient]

BAD_TOKEN = "invalid token (Discord refused it); fix discord.token and restart"
UNREADABLE = "farmbot could not read that button; try again"
EXPIRED = "This button no longer works; run the command instead."
CAPTION_CHARS = 1800  # of a reply's text above its file (a message holds 2000)
STOP_GRACE = 5.0  # seconds interactions in progress get to finish at stop
MIN_ACK_WAIT = 5.0  # seconds without a heartbeat ACK before the gateway counts as deaf
THREAD_ARCHIVE_MINUTES: Literal[10080] = 10080  # a week: the longest Discord allows
GONE_THREAD = frozenset({10003, 50083})  # Unknown Channel; archived and locked
EXPIRED_TOKEN = frozenset({10015, 50027})  # the interaction's 15 minutes are over
FAILURES = (discord.DiscordException, *NETWORK_ERRORS)  # what one API call may raise
NO_MENTIONS = discord.AllowedMentions.none()
STYLES = {
    "primary": discord.ButtonStyle.primary,
    "danger": discord.ButtonStyle.danger,
    None: discord.ButtonStyle.secondary,
}


class DiscordInterface:
    """Receives slash commands and button presses from Discord; sends replies and alerts."""

    name = "discord"

    def __init__(
        self,
        config: DiscordConfig,
        deps: InterfaceDeps,
    ) -> None:
        self._config = config
        self._actions = deps.actions
        self._threads = deps.threads
        self._clock = deps.clock
        self._sleep = deps.sleep
        self._redactor = Redactor([config.token])
        self._client: FarmClient | None = None
        self._on_incoming: OnIncoming | None = None
        self._runner: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self._logged_in = False
        self._token_rejected = False
        self._problem: str | None = None
        # what the gateway said, for hearing()
        self._connected = False
        self._interval: float | None = None
        self._last_ack: float | None = None
        self._last_heard: float | None = None
        self._last_interaction: float | None = None
        self.username = ""
        self.received = self.pressed = self.sent = self.failed = 0

    def __repr__(self) -> str:
        return (
            f"<DiscordInterface @{self.username or '?'} received={self.received} "
            f"pressed={self.pressed} sent={self.sent} failed={self.failed} "
            f"problem={self.problem!r}>"
        )

    # -- health --------------------------------------------------------------------------

    @property
    def problem(self) -> str | None:
        """What keeps the interface from working, or None when it works."""
        if self._problem is not None or not self._logged_in:
            return self._problem
        hearing = self.hearing()
        return None if hearing.ok else f"discord gateway: {hearing.detail}"

    async def ready(self) -> str | None:
        """``problem``, as a readiness check for ``/readyz``."""
        return self.problem

    def hearing(self) -> Hearing:
        """Whether the gateway is connected and ACKs heartbeats, and when it was last heard."""
        now, heard = self._clock(), self._last_heard
        if self._token_rejected:
            return Hearing(False, heard, BAD_TOKEN)
        if not self._connected:
            since = f"; last heard {ago(now - heard)} ago" if heard is not None else ""
            why = self._problem or ("reconnecting" if heard is not None else "connecting")
            return Hearing(False, heard, f"gateway not connected ({why}){since}")
        if self._last_ack is None:
            return Hearing(False, heard, "gateway connected; no heartbeat ACKed yet")
        # A heartbeat goes out every interval and is ACKed at once: two intervals without
        # an ACK mean the connection is a zombie (discord.py's heartbeat sends are not
        # reported, its ACKs are).
        deadline = max(2 * (self._interval or 0.0), MIN_ACK_WAIT)
        if now - self._last_ack > deadline:
            silent = ago(now - self._last_ack)
            return Hearing(
                False,
                heard,
                f"no heartbeat ACK for {silent}; discord.py reconnects after "
                f"{HEARTBEAT_TIMEOUT:g}s without a word from the gateway",
            )
        last = self._last_interaction
        seen = (
            f"last interaction {ago(now - last)} ago" if last is not None else "no interaction yet"
        )
        return Hearing(
            True, heard, f"gateway heartbeat acked {ago(now - self._last_ack)} ago; {seen}"
        )

    def on_gateway(self, event: str, payload: str | bytes | None = None) -> None:
        """Gateway traffic as discord.py reports it (called by ``FarmClient``)."""
        now = self._clock()
        if event in ("ready", "resumed"):
            self._connected = True
            if self._problem is not None and self._problem.startswith("cannot reach"):
                self._set_problem(None)
        elif event == "disconnect":
            self._connected = False
        elif event == "receive":
            self._last_heard = now
            op, name, data = _op(payload)
            if op == 11:
                self._last_ack = now
            elif op == 10 and isinstance(data, dict):
                self._interval = float(data.get("heartbeat_interval", 0)) / 1000
            elif op == 0 and name in ("READY", "RESUMED"):  # on_ready comes seconds later
                self.on_gateway(name.lower())

    def _set_problem(self, problem: str | None, level: int = logging.WARNING) -> None:
        if problem == self._problem:
            return
        if problem is None:
            log.info("discord: works again (was: %s)", self._problem)
        else:
            log.log(level, "discord: %s", problem)
        self._problem = problem

    def _text(self, exc: BaseException) -> str:
        return self._redactor.redact(str(exc)) or type(exc).__name__

    # -- lifetime ------------------------------------------------------------------------

    async def start(self, on_incoming: OnIncoming) -> None:
        """Log in, sync the slash commands and connect the gateway in the background.

        Never raises for Discord's sake: an invalid token or an unreachable Discord sets
        ``problem``; an unreachable Discord is retried in the background.
        """
        self._on_incoming = on_incoming
        self._redactor.install()
        self._client = FarmClient(self, self._config)
        if await self._login(self._client):
            self._runner = background(self._run(self._client), "discord: gateway", log)
        elif not self._token_rejected:
            self._runner = background(self._keep_logging_in(self._client), "discord: login", log)

    async def stop(self) -> None:
        """Let interactions in progress answer (briefly), then disconnect. Safe to call twice."""
        if self._inflight:  # before the close: their answers need discord.py's session
            _, late = await asyncio.wait(set(self._inflight), timeout=STOP_GRACE)
            for task in late:
                task.cancel()
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # already logged
                await runner
        self._logged_in = self._connected = False
        self._redactor.uninstall()

    async def _login(self, client: FarmClient) -> bool:
        """Try to log in once (``/users/@me``, then the command sync); True when logged in."""
        try:
            await client.login(self._config.token)
        except discord.LoginFailure:
            self._token_rejected = True
            self._set_problem(BAD_TOKEN, logging.ERROR)
            await client.http.close()
            return False
        except (discord.HTTPException, discord.GatewayNotFound, *NETWORK_ERRORS) as exc:
            self._set_problem(f"cannot reach Discord ({self._text(exc)}); retrying")
            await client.http.close()  # the next try opens a new session
            return False
        self._logged_in = True
        self.username = client.user.name if client.user else ""
        unsynced = {g: p for g, p in client.synced.items() if p is not None}
        if unsynced:
            where = ", ".join(f"guild {g}" if g else "globally" for g in unsynced)
            self._set_problem(
                f"slash commands not synced {where} ({next(iter(unsynced.values()))}): "
                "invite the bot with the applications.commands scope and check "
                "discord.guild_ids (docs/discord.md)"
            )
        else:
            self._set_problem(None)
        log.info("discord: logged in as @%s", self.username)
        return True

    async def _keep_logging_in(self, client: FarmClient) -> None:
        delay = 1.0
        while not await self._login(client):
            if self._token_rejected:
                return
            await self._sleep(delay)
            delay = min(60.0, delay * 2)
        await self._run(client)

    async def _run(self, client: FarmClient) -> None:
        """The gateway connection; discord.py reconnects and resumes by itself."""
        use_rebased_webhooks(client.http)
        try:
            await client.connect(reconnect=True)
        except discord.ConnectionClosed as exc:
            if exc.code == 4004:
                self._token_rejected = True
                self._set_problem(BAD_TOKEN, logging.ERROR)
            else:
                self._set_problem(f"the gateway closed the connection ({exc.code}: {exc.reason})")
        finally:
            self._connected = False

    @contextlib.asynccontextmanager
    async def _track(self) -> AsyncIterator[None]:
        """Count the current interaction as in progress (stop() waits for it)."""
        task = asyncio.current_task()
        assert task is not None  # discord.py runs every interaction in a task
        self._inflight.add(task)
        self._last_heard = self._last_interaction = self._clock()
        try:
            yield
        finally:
            self._inflight.discard(task)

    # -- inbound -------------------------------------------------------------------------

    async def on_command(
        self, interaction: Interaction, text: str, files: tuple[discord.Attachment, ...] = ()
    ) -> None:
        """A slash command: acknowledge it now, route it, then answer."""
        async with self._track():
            self.received += 1
            if not await self._defer(interaction, thinking=True):
                return
            received = tuple(_received(a, self._text) for a in files)
            reply = await self._route(interaction, text, button=False, files=received)
            await self._answer(interaction, reply, original=True)

    async def on_press(self, interaction: Interaction, data: str) -> None:
        """A button press: acknowledge it now, run its command as the presser, answer;
        or, for a button that asks, open the modal that asks."""
        async with self._track():
            self.pressed += 1
            try:
                action = await decode_action(self._actions, data)
            except StorageError as exc:
                log.error("discord: a button's stored command could not be read: %s", exc)
                await self._refuse(interaction, UNREADABLE)
                return
            if action is None:
                await self._refuse(interaction, EXPIRED)
                return
            if action.asks:
                await self._ask(interaction, data, action)
                return
            if not await self._defer(interaction, thinking=False):
                return
            reply = await self._route(interaction, action.command, button=True)
            await self._decided_or_answer(interaction, data, reply)

    async def on_submit(
        self, interaction: Interaction, custom_id: str, values: dict[str, str]
    ) -> None:
        """A farmbot modal submitted: /task's form, or a button's question answered."""
        async with self._track():
            self.received += 1
            if custom_id == TASK_FORM:
                if await self._defer(interaction, thinking=True):
                    reply = await self._route(interaction, "/task add", data=task_data(values))
                    await self._answer(interaction, reply, original=True)
                return
            asked = asked_of(custom_id)
            if asked is None or not await self._defer(interaction, thinking=False):
                return
            user, data = asked
            try:
                action = await decode_action(self._actions, data)
            except StorageError as exc:
                log.error("discord: a question's stored command could not be read: %s", exc)
                await self._answer(interaction, Reply(UNREADABLE, ok=False))
                return
            if action is None:
                await self._answer(interaction, Reply(EXPIRED, ok=False))
                return
            text = with_answer(action.command, values.get("answer", ""))
            reply = await self._route(interaction, text, button=True, asked=user)
            await self._decided_or_answer(interaction, data, reply)

    async def _ask(self, interaction: Interaction, data: str, action: Action) -> None:
        """Open the modal that asks the button's question (its answer comes to on_submit)."""
        title = _label_of(interaction.message, data) or action.command
        modal = question_modal(
            question_id(interaction.user.id, data), title, action.asks, action.command
        )
        try:
            await interaction.response.send_modal(modal)
        except FAILURES as exc:  # too late, or Discord unreachable: nothing can answer it
            log.warning("discord: a question's modal did not open: %s", self._text(exc))

    async def _refuse(self, interaction: Interaction, text: str) -> None:
        if await self._defer(interaction, thinking=False):
            await self._answer(interaction, Reply(text, ok=False))

    async def _decided_or_answer(self, interaction: Interaction, data: str, reply: Reply) -> None:
        """A decision edits the message whose button was pressed; anything else is a reply."""
        if reply.ok and reply.decided is not None and interaction.message is not None:
            approved = reply.decided.approved
            await self._mark_decided(interaction, interaction.message, data, approved, reply)
        else:
            await self._answer(interaction, reply)

    async def _defer(self, interaction: Interaction, *, thinking: bool) -> bool:
        try:
            await interaction.response.defer(thinking=thinking)
        except FAILURES as exc:  # too late, or Discord unreachable: nothing can answer it
            log.warning("discord: an interaction was not acknowledged: %s", self._text(exc))
            return False
        return True

    async def _route(
        self,
        interaction: Interaction,
        text: str,
        *,
        button: bool = False,
        files: tuple[ReceivedFile, ...] = (),
        data: dict[str, Any] | None = None,
        asked: str = "",
    ) -> Reply:
        assert self._on_incoming is not None
        user = interaction.user
        incoming = Incoming(
            "discord",
            str(user.id),
            str(interaction.channel_id or ""),
            text,
            _name(user),
            button,
            data=data,
            sent_at=interaction.created_at.timestamp(),  # the snowflake's time, in ms
            received_at=self._last_interaction,
            files=files,
            asked=asked,
        )
        return await self._on_incoming(incoming)

    async def _mark_decided(
        self,
        interaction: Interaction,
        message: discord.Message,
        data: str,
        approved: bool,
        reply: Reply,
    ) -> None:
        """Append who decided and when to the message, and drop the pressed button's row."""
        kept = [
            row
            for row in message.components
            if isinstance(row, discord.ActionRow)
            and all(getattr(b, "custom_id", None) != data for b in row.children)
        ]
        view = _view_of(kept)
        content = decided(message.content, approved, reply.text)
        try:
            if content is not None:
                await interaction.edit_original_response(
                    content=content, view=view, allowed_mentions=NO_MENTIONS
                )
                return
            await interaction.edit_original_response(view=view)
        except FAILURES as exc:  # deleted meanwhile, say: the decision goes in a new message
            log.info("discord: message %d not edited: %s", message.id, self._text(exc))
        await self._answer(interaction, reply)

    # -- replies -------------------------------------------------------------------------

    async def _answer(
        self, interaction: Interaction, reply: Reply, *, original: bool = False
    ) -> None:
        """Send a reply as the interaction's response: a refusal to the person only."""
        try:
            view = await self._view(reply.buttons)
        except StorageError as exc:
            log.error("discord: the reply's buttons were left off: %s", exc)
            view = None
        if reply.file is not None:
            caption = escape(clip(reply.text, CAPTION_CHARS))
            rendered = Rendered(file=reply.file.data, filename=reply.file.name, caption=caption)
        else:
            rendered = render(reply.text, reply.pre)
        try:
            only_them = not reply.ok and not original  # a slash command's answer is public
            await self._respond(interaction, rendered, view, original=original, only_them=only_them)
        except discord.HTTPException as exc:
            if exc.code not in EXPIRED_TOKEN or interaction.channel_id is None:
                log.warning("discord: a reply was lost: %s", self._text(exc))
                return
            # The interaction's token is only good for 15 minutes: post in the channel.
            try:
                await self._post(interaction.channel_id, rendered, view)
            except FAILURES as again:
                log.warning("discord: a late reply was lost: %s", self._text(again))
        except FAILURES as exc:
            log.warning("discord: a reply was lost: %s", self._text(exc))

    async def _respond(
        self,
        interaction: Interaction,
        rendered: Rendered,
        view: discord.ui.View | None,
        *,
        original: bool,
        only_them: bool,
    ) -> None:
        """The first part edits the deferred response (slash commands); the rest follow."""
        if rendered.file is not None:
            parts: list[tuple[str, discord.File | None]] = [(rendered.caption, _file(rendered))]
        else:
            parts = [(chunk, None) for chunk in rendered.chunks]
        for i, (content, file) in enumerate(parts):
            last = i == len(parts) - 1
            extra: dict[str, Any] = {"view": view} if last and view is not None else {}
            if original and i == 0:
                if file is not None:
                    extra["attachments"] = [file]
                await interaction.edit_original_response(
                    content=content, allowed_mentions=NO_MENTIONS, **extra
                )
                continue
            if file is not None:
                extra["file"] = file
            await interaction.followup.send(
                content,
                ephemeral=only_them,
                allowed_mentions=NO_MENTIONS,
                suppress_embeds=True,
                **extra,
            )

    async def _view(self, buttons: Buttons) -> discord.ui.View | None:
        """Buttons as a view of ``FarmButton``s; long commands, and those of buttons that
        ask, are stored (``a:<id>``)."""
        rows = layout(buttons)
        if not rows:
            return None
        view = discord.ui.View(timeout=None)
        used: set[str] = set()  # a custom_id must be unique in a message
        now = self._clock()
        for r, row in enumerate(rows):
            for button in row:
                data = await encode_action(
                    self._actions,
                    button.command,
                    lambda c: fits_custom_id(c) and c not in used,
                    now,
                    button.asks,
                )
                used.add(data)
                view.add_item(FarmButton.make(label(button), data, STYLES[button.style], r))
        return view

    async def _post(
        self, channel: int, rendered: Rendered, view: discord.ui.View | None
    ) -> discord.Message:
        """Post to a channel (or thread): the messages, buttons on the last, or the file."""
        if self._client is None:
            raise DeliveryError("the discord interface is stopped")
        target = self._client.get_partial_messageable(channel)
        if rendered.file is not None:
            return await target.send(
                rendered.caption,
                file=_file(rendered),
                view=_or_missing(view),
                allowed_mentions=NO_MENTIONS,
                suppress_embeds=True,
            )
        message: discord.Message | None = None
        for i, chunk in enumerate(rendered.chunks):
            last = i == len(rendered.chunks) - 1
            message = await target.send(
                chunk,
                view=_or_missing(view if last else None),
                allowed_mentions=NO_MENTIONS,
                suppress_embeds=True,
            )
        assert message is not None  # render() never returns nothing
        return message

    # -- alerts --------------------------------------------------------------------------

    async def send(self, channel: str, message: OutboundMessage) -> MessageRef:
        """Deliver one alert in one message (so a retry never repeats half of it).

        Returns ``channel:message`` of the message (the channel a thread, if it went there).
        """
        where = f"discord channel {channel}"
        self._check_sendable(where)
        rendered = _alert(message)
        thread = thread_of(self._config.threads, message)
        try:
            view = await self._view(message.buttons)
            kept = await self._threads.get_thread(self.name, channel, thread[0]) if thread else None
        except StorageError as exc:
            self.failed += 1
            raise DeliveryError(f"{where}: farmbot's storage failed: {exc}") from exc
        try:
            into = await self._into_thread(int(kept), rendered, view) if kept else None
            if into is not None:
                self.sent += 1
                return f"{kept}:{into.id}"
            posted = await self._post(int(channel), rendered, view)
        except FAILURES as exc:
            self.failed += 1
            raise delivery_error(where, exc, self._text(exc)) from exc
        self.sent += 1
        if thread is not None:
            await self._start_thread(channel, posted, *thread)
        return f"{channel}:{posted.id}"

    async def edit(self, channel: str, ref: MessageRef, message: OutboundMessage) -> None:
        """Rewrite an alert ``send`` posted: its content with the note, its buttons now."""
        where = f"discord message {ref}"
        self._check_sendable(where)
        assert self._client is not None
        place, _, number = ref.partition(":")
        if not (place.isdecimal() and number.isdecimal()):
            raise PermanentDeliveryError(f"{where}: not a reference farmbot made")
        rendered = _alert(message, note=True)
        if rendered.file is not None:  # the note made it a file: the alert as it was
            rendered = _alert(message)
        content = rendered.chunks[0] if rendered.file is None else rendered.caption
        if rendered.file is not None and message.note:
            content += f"\n\n{escape(message.note)}"
        try:
            view = await self._view(message.buttons)
        except StorageError as exc:
            raise DeliveryError(f"{where}: farmbot's storage failed: {exc}") from exc
        target = self._client.get_partial_messageable(int(place)).get_partial_message(int(number))
        try:
            await target.edit(content=content, view=view, allowed_mentions=NO_MENTIONS)
        except discord.NotFound as exc:
            raise PermanentDeliveryError(f"{where}: the message is gone") from exc
        except FAILURES as exc:
            raise delivery_error(where, exc, self._text(exc)) from exc

    def _check_sendable(self, where: str) -> None:
        if self._token_rejected:
            raise PermanentDeliveryError(f"{where}: {BAD_TOKEN}, then /retry the dead letters")
        if self._client is None or not self._logged_in:
            raise DeliveryError(f"{where}: not connected ({self._problem or 'starting'})")

    async def _into_thread(
        self, thread: int, rendered: Rendered, view: discord.ui.View | None
    ) -> discord.Message | None:
        """Post into a kept thread; None when the thread is gone (deleted, locked)."""
        try:
            return await self._post(thread, rendered, view)
        except discord.HTTPException as exc:
            if exc.code not in GONE_THREAD:
                raise
            log.info("discord: thread %d is gone (%s); starting a new one", thread, exc.code)
            return None

    async def _start_thread(
        self, channel: str, message: discord.Message, key: str, name: str
    ) -> None:
        """Start the key's thread on its first alert; its successors go into it."""
        assert self._client is not None
        try:
            data = await self._client.http.start_thread_with_message(
                int(channel), message.id, name=name, auto_archive_duration=THREAD_ARCHIVE_MINUTES
            )
            await self._threads.set_thread(self.name, channel, key, str(data["id"]), self._clock())
        except (*FAILURES, StorageError) as exc:  # the alert is out; the next one tries again
            log.warning("discord: no thread for %s in %s: %s", key, channel, self._text(exc))


def _alert(message: OutboundMessage, *, note: bool = False) -> Rendered:
    """An alert as ``send`` posts it (with the edit's note when ``note``)."""
    title = f"{severity_mark(message.severity)} {message.title}"
    file = f"alert-{message.alert_id}.txt"
    text = message.body if note else message.text
    return render(text, message.pre, title=title, max_chunks=1, filename=file)


def _received(attachment: discord.Attachment, redact: Any) -> ReceivedFile:
    """A file given to a slash command: read from Discord's CDN when a command wants it."""

    async def fetch() -> bytes:
        try:
            return await attachment.read()
        except FAILURES as exc:
            why = redact(exc)
            raise AdapterError(f"discord did not hand over {attachment.filename}: {why}") from exc

    return ReceivedFile(attachment.filename, attachment.size, fetch)


def _op(payload: str | bytes | None) -> tuple[int | None, str | None, Any]:
    """A gateway message's opcode, event name and data."""
    try:
        message = json.loads(payload) if payload else None
    except ValueError:
        return None, None, None
    if not isinstance(message, dict):
        return None, None, None
    op, name = message.get("op"), message.get("t")
    return (
        op if isinstance(op, int) else None,
        name if isinstance(name, str) else None,
        message.get("d"),
    )


def _name(user: discord.User | discord.Member) -> str:
    shown = user.display_name
    return f"{shown} (@{user.name})" if shown != user.name else user.name


def _label_of(message: discord.Message | None, data: str) -> str:
    """The label of the button ``data`` on ``message`` ("" when it is not found)."""
    for row in message.components if message is not None else ():
        for item in getattr(row, "children", ()):
            if getattr(item, "custom_id", None) == data:
                return str(getattr(item, "label", "") or "")
    return ""


def _or_missing(view: discord.ui.View | None) -> discord.ui.View:
    """discord.py's "no view" for a send (``None`` there is not allowed)."""
    return view if view is not None else discord.utils.MISSING


def _file(rendered: Rendered) -> discord.File:
    return discord.File(io.BytesIO(rendered.file or b""), filename=rendered.filename)


def _view_of(rows: list[discord.ActionRow]) -> discord.ui.View | None:
    """The buttons of the kept rows, as they were (a view for an edit)."""
    if not rows:
        return None
    view = discord.ui.View(timeout=None)
    for r, row in enumerate(rows):
        for button in row.children:
            if isinstance(button, discord.Button) and button.custom_id:
                view.add_item(
                    FarmButton.make(button.label or "?", button.custom_id, button.style, r)
                )
    return view
