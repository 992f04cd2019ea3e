"""The Slack interface: farmbot as a Slack app, through slack-bolt (Socket Mode or HTTP).

Inbound, the slash command (``/farm spawn builder 42``), mentions (``@farmbot status``)
and button presses become ``Incoming`` commands for the router. A button that asks
(Reject: "Why?") opens a modal (``views.open``) instead; its submission runs the
button's command with the answer, as the person who submitted it (the router refuses
anyone but the presser), and the reply goes where the button was. Each is acknowledged at
once (Slack's 3-second rule); the reply is posted afterwards as Block Kit -- refusals
only to the person, as an ephemeral message. A decided Approve/Reject button turns into
a line saying who decided. Outbound, ``send`` posts alerts, one thread per agent if
configured (the thread survives restarts: it is in storage); ``send`` returns the alert's
``ts`` and ``edit`` rewrites it (``chat.update``), a decided gate's buttons taken off.

Every envelope's listener runs in its own task (slack_sdk starts one per envelope, bolt
acks first), so a button press is answered while long commands of the same person run.
A file shared with a mention whose text is a command (``@farmbot send builder-42``)
reaches the router as a ``ReceivedFile``, downloaded (``url_private_download``, the
``files:read`` scope) only when the command takes it; a reply's file is uploaded.

``hearing()``: Socket Mode's WebSocket is open and answers slack_sdk's pings, and when the
last envelope came; in HTTP mode Slack's requests cannot be awaited, only counted.

Slack's failures are translated here, once: 429 becomes ``DeliveryError`` with Slack's
``Retry-After``; 5xx, timeouts and lost connections ``DeliveryError``; ``ok: false``
answers such as ``channel_not_found`` ``PermanentDeliveryError`` naming the channel and
the fix, which ``problem`` also shows on /readyz and the status page. slack_sdk's own
retries are off for alerts, so the SDK never sends one twice. Tokens are redacted from
every log record (slack_bolt's, slack_sdk's, aiohttp's, farmbot's, anyone's).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from farmbot.adapters.http import Request, Response, json_response
from farmbot.adapters.shared import (
    Action,
    InterfaceDeps,
    background,
    decode_action,
    encode_action,
    parse_retry_after,
)
from farmbot.adapters.slack_render import (
    ACTION_PREFIX,
    QUESTION,
    Pressed,
    Rendered,
    Values,
    alert_message,
    answer_of,
    command_text,
    decided,
    edited_alert,
    escape,
    fits_value,
    from_slack,
    question_view,
    reply_message,
)
from farmbot.config.slack import SlackConfig
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
    WebRoute,
    ago,
    clip,
    decided_line,
    with_answer,
)
from farmbot.redact import Redactor

log = logging.getLogger(__name__)
SDK_LOG = logging.getLogger("slack_sdk.farmbot")  # slack_bolt/slack_sdk log through this
EVENTS_PATH = "/hooks/slack/events"  # slash commands, events and interactivity (HTTP mode)
API_TIMEOUT = 15.0  # seconds for one Web API call
STOP_GRACE = 5.0  # seconds commands in progress get to finish at stop
SHOWN_COMMAND_CHARS = 200  # of a slash command, quoted above its reply
UNREADABLE = "farmbot could not read that button; try again"
EXPIRED = "this button has expired; run the command again"
NOT_ASKED = "farmbot could not ask ({why}); type {command} <your answer> instead"
STALE_PINGS = 4  # slack_sdk's pings unanswered before the socket counts as stale (its rule)
DOWNLOAD_TIMEOUT = 60.0  # seconds to download one shared file
GONE = frozenset({"message_not_found", "channel_not_found", "cant_update_message"})
TRANSIENT = frozenset(
    {"ratelimited", "fatal_error", "internal_error", "service_unavailable", "request_timeout"}
)
AUTH_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
)
NOT_POSTABLE = frozenset({"not_in_channel", "channel_not_found"})
FAILURES = (SlackApiError, aiohttp.ClientError, TimeoutError)  # what one API call may raise
SIGNATURE_WINDOW = 300  # seconds a signed request is good for (slack_sdk's check)
HINTS = {  # what a person does about an ok:false answer to an alert
    "not_in_channel": "invite the bot: /invite {bot} in {name}",
    "channel_not_found": "no such channel, or a private one without the bot: check [slack] "
    "alert_channels (channel IDs) and invite the bot: /invite {bot}",
    "is_archived": "the channel is archived: unarchive it or change [slack] alert_channels",
    "missing_scope": "the app lacks the scope {needed}: add it and reinstall the app",
    **dict.fromkeys(AUTH_ERRORS, "Slack refused slack.bot_token: check it and reinstall the app"),
}


class _Clock(Clock):
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


class Replays:
    """Refuses a signed request seen before: HTTP mode's replay cache.

    Slack signs each request (its timestamp and body) and bolt accepts a valid signature
    for five minutes, keeping no record -- so one request caught on the way could be sent
    again and again. A signature that verified is remembered for that window and refused
    the second time. What an earlier run of farmbot saw is not known: a request signed
    before the second this one started is refused too (Slack sends an event again, with a
    new signature; a slash command in flight across a restart fails once).
    """

    def __init__(self, secret: str, clock: Callable[[], float]) -> None:
        self._verifier = SignatureVerifier(secret or "-", _Clock(clock))
        self._clock = clock
        self._started = int(clock())
        self._seen: dict[str, int] = {}  # signature -> until when it could be replayed
        self.refused = 0

    def refusal(self, body: bytes, timestamp: str | None, signature: str | None) -> str | None:
        """Why this request is refused as a replay (None: it is new, or not validly signed,
        which bolt answers itself)."""
        if not timestamp or not signature or not timestamp.isdecimal():
            return None
        if not self._verifier.is_valid(body, timestamp, signature):
            return None
        now = int(self._clock())
        self._seen = {sig: until for sig, until in self._seen.items() if until >= now}
        if int(timestamp) < self._started:
            why = "signed before farmbot started, so it may have been served already"
        elif signature in self._seen:
            why = "a replay of a request already served"
        else:
            self._seen[signature] = int(timestamp) + SIGNATURE_WINDOW
            return None
        self.refused += 1
        return why


class SlackInterface:
    """farmbot's Slack app: receives commands, posts replies and alerts."""

    name = "slack"

    def __init__(
        self,
        config: SlackConfig,
        deps: InterfaceDeps,
        *,
        ping_interval: float = 10.0,
    ) -> None:
        self._config = config
        self._actions = deps.actions
        self._threads = deps.threads
        self._clock = deps.clock
        self._ping_interval = ping_interval  # also paces Socket Mode's reconnect checks
        # Replies may wait out a 429 (nothing was posted); alerts never retry in the SDK:
        # the notifier retries them durably, so none is sent twice.
        self._client = self._web_client([AsyncRateLimitErrorRetryHandler(max_retry_count=2)])
        self._alerts = self._web_client([])
        self._redactor = Redactor(config.secrets)
        self._replays = Replays(config.signing_secret or "", deps.clock)
        self._on_incoming: OnIncoming | None = None
        self._app: AsyncApp | None = None
        self._handler: AsyncSocketModeHandler | None = None
        self._connector: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self._problems: dict[str, str] = {}  # channel (or "auth") -> what is wrong
        self._bot_name = "farmbot"
        self._last_envelope: float | None = None  # for hearing()
        self._wall = time.time  # slack_sdk times its pings by the wall clock
        self.received = 0
        self.sent = 0
        self.failed = 0

    def __repr__(self) -> str:
        return (
            f"<SlackInterface {self._config.mode} received={self.received} sent={self.sent}"
            f" failed={self.failed} problem={self.problem!r}>"
        )

    @property
    def problem(self) -> str | None:
        """What keeps Slack from working right now (for /readyz and the status page)."""
        problems = list(self._problems.values())
        handler = self._handler
        if handler is not None and "auth" not in self._problems:
            session = handler.client.current_session
            if session is None or session.closed:
                problems.insert(0, "Socket Mode is not connected to Slack (it keeps retrying)")
        return "; ".join(problems) or None

    async def ready(self) -> str | None:
        """A readiness check: None when fine, else the problem (a deaf socket is one)."""
        problem = self.problem
        if problem is not None:
            return problem
        hearing = self.hearing()
        return None if hearing.ok else f"slack does not hear: {hearing.detail}"

    def hearing(self) -> Hearing:
        """Whether envelopes can arrive (the socket is open and answers), and the last one."""
        now, heard = self._clock(), self._last_envelope
        last = f"last envelope {ago(now - heard)} ago" if heard is not None else "none yet"
        if "auth" in self._problems:
            return Hearing(False, heard, self._problems["auth"])
        if self._config.mode == "http":
            return Hearing(True, heard, f"HTTP mode: Slack posts to {EVENTS_PATH}; {last}")
        handler = self._handler
        if handler is None:
            return Hearing(False, heard, "Socket Mode is not started")
        client = handler.client
        session = client.current_session
        if session is None or session.closed:
            return Hearing(False, heard, f"Socket Mode is not connected (it retries); {last}")
        pong = client.last_ping_pong_time
        if pong is not None and self._wall() - pong >= STALE_PINGS * self._ping_interval:
            silent = ago(self._wall() - pong)
            return Hearing(False, heard, f"no pong for {silent}: the socket is stale; {last}")
        return Hearing(True, heard, f"Socket Mode connected; {last}")

    def routes(self) -> list[WebRoute]:
        """The web routes Slack POSTs to in HTTP mode (none in Socket Mode)."""
        return [("POST", EVENTS_PATH, self._http)] if self._config.mode == "http" else []

    async def start(self, on_incoming: OnIncoming) -> None:
        """Register the listeners and connect in the background (Slack may be down)."""
        self._on_incoming = on_incoming
        app = AsyncApp(
            client=self._client,
            signing_secret=self._config.signing_secret or "",
            name="farmbot",
            logger=SDK_LOG,
        )
        app.command(self._config.command)(self._on_command)
        app.event("app_mention")(self._on_mention)
        app.action(re.compile(rf"^{ACTION_PREFIX}\d+$"))(self._on_action)
        app.view(QUESTION)(self._on_answer)
        self._app = app
        if self._config.mode == "socket":
            assert self._config.app_token is not None  # the config requires it
            self._handler = AsyncSocketModeHandler(
                app, self._config.app_token, logger=SDK_LOG, ping_interval=self._ping_interval
            )
            self._handler.client.message_listeners.append(self._heard)
        self._redactor.install()
        self._connector = background(self._connect(), "slack: connecting", log)

    async def stop(self) -> None:
        """Stop receiving; let commands in progress finish briefly. Safe to call twice."""
        self._app = None
        connector, self._connector = self._connector, None
        if connector is not None:
            connector.cancel()
            await asyncio.gather(connector, return_exceptions=True)
        handler, self._handler = self._handler, None
        if handler is not None:
            await handler.close_async()  # type: ignore[no-untyped-call]
        if self._inflight:
            _, late = await asyncio.wait(set(self._inflight), timeout=STOP_GRACE)
            for task in late:
                task.cancel()
        self._redactor.uninstall()

    async def send(self, channel: str, message: OutboundMessage) -> MessageRef:
        """Post one alert; return its ``ts``. Raise ``DeliveryError`` and the like on failure."""
        key = message.agent_id if self._config.thread_per_agent else None
        try:
            rendered = alert_message(message, await self._values(message.buttons))
            thread = await self._threads.get_thread(self.name, channel, key) if key else None
        except StorageError as exc:
            self.failed += 1
            raise DeliveryError(
                f"slack channel {channel}: farmbot's storage failed: {exc}"
            ) from exc
        try:
            ts = await _post(self._alerts, channel, rendered, 0, thread)
        except FAILURES as exc:
            self.failed += 1
            if isinstance(exc, SlackApiError):
                raise await self._delivery_error(channel, exc) from exc
            raise DeliveryError(f"slack channel {channel}: {_why(exc)}") from exc
        self.sent += 1
        self._problems.pop(channel, None)
        if key and thread is None:
            try:
                await self._threads.set_thread(self.name, channel, key, ts, self._clock())
            except StorageError as exc:  # the alert is out; its successors start a new thread
                log.warning("slack: thread of %s in %s not recorded: %s", key, channel, exc)
        await self._rest(self._alerts, channel, rendered, thread or ts)
        return ts

    async def edit(self, channel: str, ref: MessageRef, message: OutboundMessage) -> None:
        """Rewrite the alert posted as ``ref`` (its ts): the buttons now, the note added."""
        try:
            part = edited_alert(message, await self._values(message.buttons))
        except StorageError as exc:
            raise DeliveryError(
                f"slack channel {channel}: farmbot's storage failed: {exc}"
            ) from exc
        try:
            await self._alerts.chat_update(
                channel=channel, ts=ref, text=part.text, blocks=part.blocks
            )
        except SlackApiError as exc:
            if _error_code(exc) in GONE:
                raise PermanentDeliveryError(f"slack message {ref}: {_why(exc)}") from exc
            raise await self._delivery_error(channel, exc) from exc
        except FAILURES as exc:
            raise DeliveryError(f"slack message {ref} in {channel}: {_why(exc)}") from exc

    # -- inbound ----------------------------------------------------------------------
    async def _heard(self, client: Any, message: dict[str, Any], raw: str | None) -> None:
        """A Socket Mode message (slack_sdk calls this for each): an envelope was heard."""
        if message.get("envelope_id"):
            self._last_envelope = self._clock()

    async def _connect(self) -> None:
        """Check the tokens, then connect Socket Mode (which reconnects by itself)."""
        try:
            auth = await self._client.auth_test()
            self._bot_name = str(auth.get("user") or self._bot_name)
        except FAILURES as exc:
            if self._refused("bot_token", exc):
                return
        if self._handler is None:
            return
        try:
            await self._client.apps_connections_open(app_token=self._handler.app_token)
        except FAILURES as exc:
            if self._refused("app_token", exc):
                return
        await self._handler.connect_async()  # type: ignore[no-untyped-call]

    def _refused(self, key: str, exc: BaseException) -> bool:
        """Record a refused token as the problem (True), or log a passing failure (False)."""
        error = _error_code(exc)
        if error not in AUTH_ERRORS and error != "not_allowed_token_type":
            log.warning("slack: checking slack.%s failed (%s); going on", key, _why(exc))
            return False
        self._problems["auth"] = (
            f"Slack refused slack.{key} ({error}): check the environment variable "
            "behind it and that the app is installed (docs/slack.md), then restart"
        )
        log.error("slack: %s", self._problems["auth"])
        return True

    async def _http(self, request: Request) -> Response:
        """Serve one request of Slack's (bolt checks its signature: 401 if wrong; a
        validly signed one seen before is refused here, 401 too)."""
        app = self._app
        if app is None:
            return json_response({"error": "farmbot's Slack interface is stopped"}, status=503)
        headers = request.headers
        replayed = self._replays.refusal(
            await request.read(),
            headers.get("X-Slack-Request-Timestamp"),
            headers.get("X-Slack-Signature"),
        )
        if replayed is not None:
            log.info("slack: refused a request from %s: %s", request.remote, replayed)
            return json_response({"error": f"refused: {replayed}"}, status=401)
        self._last_envelope = self._clock()
        asked = AsyncBoltRequest(
            body=(await request.read()).decode("utf-8", "replace"),
            query=request.query,
            headers=dict(request.headers),
        )
        answer = await app.async_dispatch(asked)  # bolt checks the signature here
        return Response(
            status=answer.status,
            body=answer.body.encode("utf-8"),
            headers=answer.first_headers_without_set_cookie(),  # farmbot sets no cookies
        )

    async def _on_command(
        self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        async with self._track():
            user, channel = str(command["user_id"]), str(command["channel_id"])
            raw = str(command.get("text", ""))  # decoded once, by command_text
            reply = await self._route(user, channel, command_text(raw), command, button=False)
            shown = f"{self._config.command} {from_slack(raw).strip()}".strip()
            header = f"<@{user}> ran `{escape(clip(shown, SHOWN_COMMAND_CHARS))}`"
            await self._reply(channel, user, reply, header=header, respond=respond)

    async def _on_mention(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        user, channel = event.get("user"), event.get("channel")
        if not user or not channel:
            return  # another bot's message
        async with self._track():
            text = command_text(str(event.get("text", "")), context.bot_user_id)
            files = tuple(self._file(f) for f in event.get("files") or [] if isinstance(f, dict))
            reply = await self._route(
                str(user), str(channel), text, {}, button=False, sent=event.get("ts"), files=files
            )
            thread = event.get("thread_ts") or event.get("ts")
            await self._reply(str(channel), str(user), reply, thread_ts=thread)

    async def _on_action(self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        async with self._track():
            user = str(body["user"]["id"])
            channel = str((body.get("channel") or {}).get("id") or body["container"]["channel_id"])
            message: dict[str, Any] = body.get("message") or {}
            thread = message.get("thread_ts") or message.get("ts")
            value = str(action.get("value", ""))
            try:
                found = await decode_action(self._actions, value)
            except StorageError as exc:
                log.error("slack: a button's stored command could not be read: %s", exc)
                await self._reply(channel, user, Reply(UNREADABLE, ok=False), thread_ts=thread)
                return
            if found is None:
                await self._reply(channel, user, Reply(EXPIRED, ok=False), thread_ts=thread)
                return
            label = str((action.get("text") or {}).get("text", found.command))
            if found.asks:
                pressed = Pressed(value, user, channel, label, thread)
                await self._ask(str(body.get("trigger_id", "")), pressed, found, thread)
                return
            command = found.command
            reply = await self._route(
                user, channel, command, body["user"], button=True, sent=action.get("action_ts")
            )
            if reply.ok and reply.decided is not None and message.get("ts"):
                approve = reply.decided.approved
                # The decision replaces the pressed row, so nobody presses it again.
                line = escape(decided_line(approve, reply.text))
                blocks = decided(message.get("blocks") or [], action.get("block_id"), line)
                update = self._client.chat_update(
                    channel=channel,
                    ts=message["ts"],
                    text=message.get("text") or reply.text,
                    blocks=blocks,
                )
                await _quietly("updating the decided message", channel, update)
                return
            header = f"<@{user}> pressed {escape(label)}"
            await self._reply(channel, user, reply, header=header, thread_ts=thread)

    async def _ask(
        self, trigger: str, pressed: Pressed, action: Action, thread: str | None
    ) -> None:
        """Open the modal that asks the button's question (within the press's 3 seconds)."""
        view = question_view(pressed, action.command, action.asks)
        try:
            await self._client.views_open(trigger_id=trigger, view=view)
        except FAILURES as exc:
            log.warning("slack: a question's modal did not open: %s", _why(exc))
            text = NOT_ASKED.format(why=_why(exc), command=action.command)
            await self._reply(
                pressed.channel, pressed.user, Reply(text, ok=False), thread_ts=thread
            )

    async def _on_answer(self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        """A question's modal submitted: run its button's command with the answer, as the
        person who submitted it, and reply where the button was."""
        await ack()
        async with self._track():
            pressed = Pressed.from_metadata(str(view.get("private_metadata") or ""))
            if pressed is None:
                return  # not a modal farmbot opened
            user = str(body["user"]["id"])
            try:
                found = await decode_action(self._actions, pressed.value)
            except StorageError as exc:
                log.error("slack: a question's stored command could not be read: %s", exc)
                found = None
            if found is None:
                reply = Reply(UNREADABLE, ok=False)
            else:
                text = with_answer(found.command, answer_of(view))
                reply = await self._route(
                    user, pressed.channel, text, body["user"], button=True, asked=pressed.user
                )
            header = f"<@{user}> pressed {escape(pressed.label)}"
            await self._reply(pressed.channel, user, reply, header=header, thread_ts=pressed.thread)

    async def _route(
        self,
        user: str,
        channel: str,
        text: str,
        who: dict[str, Any],
        *,
        button: bool,
        sent: object = None,
        files: tuple[ReceivedFile, ...] = (),
        asked: str = "",
    ) -> Reply:
        assert self._on_incoming is not None
        self.received += 1
        name = str(who.get("user_name") or who.get("username") or "")
        incoming = Incoming(
            "slack",
            user,
            channel,
            text,
            display_name=name,
            button=button,
            sent_at=_seconds(sent),  # a ts: "1700000000.000100"
            received_at=self._clock(),
            files=files,
            precision=0.000001,
            asked=asked,
        )
        return await self._on_incoming(incoming)

    def _file(self, shared: dict[str, Any]) -> ReceivedFile:
        """A file shared with a mention; downloaded when a command takes it."""
        name = str(shared.get("name") or shared.get("title") or shared.get("id") or "file")
        size = shared.get("size")
        url = shared.get("url_private_download") or shared.get("url_private")
        return ReceivedFile(
            name, size if isinstance(size, int) else None, lambda: self._download(url, name)
        )

    async def _download(self, url: object, name: str) -> bytes:
        """A shared file's bytes (the bot token authorizes it: the ``files:read`` scope)."""
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise AdapterError(f"slack gave no download link for {name}; share it again")
        headers = {"Authorization": f"Bearer {self._config.bot_token}"}
        timeout = aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url, headers=headers, allow_redirects=True) as response,
            ):
                kind = response.headers.get("Content-Type", "")
                if response.status != 200 or kind.startswith("text/html"):
                    # Slack answers a missing scope with its login page, not an error.
                    raise AdapterError(
                        f"slack did not hand over {name} (HTTP {response.status}); the app "
                        "needs the files:read scope (docs/slack.md)"
                    )
                return await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AdapterError(f"downloading {name} from slack failed: {_why(exc)}") from exc

    # -- outbound ---------------------------------------------------------------------
    async def _reply(
        self,
        channel: str,
        user: str,
        reply: Reply,
        *,
        header: str | None = None,
        thread_ts: str | None = None,
        respond: AsyncRespond | None = None,
    ) -> None:
        """Post a reply: in the channel, or only to ``user`` when it is a refusal."""
        try:
            values = await self._values(reply.buttons)
        except StorageError as exc:
            log.error("slack: the reply's buttons were left off: %s", exc)
            reply, values = dataclasses.replace(reply, buttons=()), {}
        rendered = reply_message(reply, values, header)
        if reply.ok and reply.file is not None:
            await self._upload(channel, reply, header, thread_ts)
            return
        try:
            if not reply.ok:
                for part in rendered.parts:
                    await self._client.chat_postEphemeral(
                        channel=channel, user=user, text=part.text, blocks=part.blocks,
                        thread_ts=thread_ts,
                    )  # fmt: skip
                return
            ts = await _post(self._client, channel, rendered, 0, thread_ts)
        except FAILURES as exc:
            if respond is None or _error_code(exc) not in NOT_POSTABLE:
                log.error("slack: reply to %s in %s not posted: %s", user, channel, _why(exc))
                return
            # A channel the bot is not in: the person still gets the answer, privately.
            note = f"(I am not in this channel: /invite @{self._bot_name} to see replies here)"
            first = rendered.parts[0]
            answer = respond(text=f"{first.text}\n{note}", blocks=[*first.blocks, _note(note)])
            await _quietly("responding", channel, answer)
            return
        await self._rest(self._client, channel, rendered, thread_ts or ts)

    async def _upload(
        self, channel: str, reply: Reply, header: str | None, thread_ts: str | None
    ) -> None:
        """A reply with a file: the file, its text as the comment (the ``files:write`` scope)."""
        assert reply.file is not None
        comment = "\n".join(p for p in (header, escape(reply.text)) if p)
        upload = self._client.files_upload_v2(
            channel=channel, thread_ts=thread_ts, content=reply.file.data,
            filename=reply.file.name, title=reply.file.name, initial_comment=comment,
        )  # fmt: skip
        await _quietly("uploading a file", channel, upload)

    async def _rest(
        self, client: AsyncWebClient, channel: str, rendered: Rendered, thread: str
    ) -> None:
        """Post what did not fit the first message into its thread; log what fails."""
        for index in range(1, len(rendered.parts)):
            await _quietly("posting more", channel, _post(client, channel, rendered, index, thread))
        if rendered.file is not None:
            upload = client.files_upload_v2(
                channel=channel, thread_ts=thread, content=rendered.file,
                filename="output.txt", title="the whole output",
            )  # fmt: skip
            await _quietly("uploading the output", channel, upload)

    async def _values(self, buttons: Buttons) -> Values:
        """Each button's value: its command, or ``a:<id>`` of it stored when too long (and
        always for a button that asks: its question is stored with it)."""
        now = self._clock()
        found = {b for row in buttons for b in row}
        return {
            b: await encode_action(self._actions, b.command, fits_value, now, b.asks) for b in found
        }

    async def _delivery_error(self, channel: str, exc: SlackApiError) -> DeliveryError:
        status, error = exc.response.status_code, _error_code(exc)
        where = f"slack channel {channel}"
        if status == 429 or error == "ratelimited":
            wait = parse_retry_after(_header(exc, "Retry-After"), self._clock())
            return DeliveryError(f"{where}: rate limited (HTTP 429)", retry_after=wait)
        if status >= 500 or error in TRANSIENT or not error:
            return DeliveryError(f"{where}: HTTP {status}" + (f" {error}" if error else ""))
        name = await self._name(channel) if error in ("not_in_channel", "is_archived") else None
        if name:
            where = f"slack channel {name} ({channel})"
        needed = exc.response.get("needed") if isinstance(exc.response.data, dict) else None
        fix = HINTS.get(error, "see https://api.slack.com/methods/chat.postMessage#errors")
        fix = fix.format(bot=f"@{self._bot_name}", name=name or "it", needed=needed or "?")
        self._problems[channel] = problem = f"{where}: {error}: {fix}"
        if error in ("invalid_blocks", "msg_too_long"):
            log.error("slack: %s refused a message: %s", channel, _why(exc))
        return PermanentDeliveryError(problem)

    async def _name(self, channel: str) -> str | None:
        """``#name`` of a channel, for a person reading the error; None if unknown."""
        with contextlib.suppress(*FAILURES):
            info = await self._alerts.conversations_info(channel=channel)
            return f"#{info['channel']['name']}"
        return None

    @contextlib.asynccontextmanager
    async def _track(self) -> AsyncIterator[None]:
        """Count the current listener as in progress (stop() waits for it)."""
        task = asyncio.current_task()
        assert task is not None  # listeners run in tasks
        self._inflight.add(task)
        try:
            yield
        finally:
            self._inflight.discard(task)

    def _web_client(self, retry_handlers: list[Any]) -> AsyncWebClient:
        return AsyncWebClient(
            token=self._config.bot_token,
            base_url=self._config.api_url,
            timeout=int(API_TIMEOUT),
            logger=SDK_LOG,
            retry_handlers=retry_handlers,
        )


async def _post(
    client: AsyncWebClient, channel: str, rendered: Rendered, index: int, thread: str | None
) -> str:
    part = rendered.parts[index]
    response = await client.chat_postMessage(
        channel=channel, text=part.text, blocks=part.blocks, thread_ts=thread,
        unfurl_links=False, unfurl_media=False,
    )  # fmt: skip
    return str(response["ts"])


async def _quietly(what: str, channel: str, call: Awaitable[Any]) -> None:
    """Await a best-effort API call; log, don't raise, when it fails."""
    try:
        await call
    except FAILURES as exc:
        log.error("slack: %s in %s failed: %s", what, channel, _why(exc))


def _seconds(ts: object) -> float | None:
    """Slack's "1700000000.000100" as epoch seconds; None when it is not one."""
    try:
        return float(str(ts)) if ts is not None else None
    except ValueError:
        return None


def _note(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": escape(text)}]}


def _error_code(exc: BaseException) -> str:
    data = exc.response.data if isinstance(exc, SlackApiError) else None
    return str(data.get("error") or "") if isinstance(data, dict) else ""


def _why(exc: BaseException) -> str:
    """A failed call in a few words (Slack's errors carry no token)."""
    if isinstance(exc, SlackApiError):
        data = exc.response.data
        error = _error_code(exc) or f"HTTP {exc.response.status_code}"
        meta = data.get("response_metadata", {}).get("messages") if isinstance(data, dict) else None
        return f"{error} {meta}" if meta else error
    return "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"


def _header(exc: SlackApiError, wanted: str) -> str | None:
    """A header of Slack's answer (whatever the case of its name)."""
    for name, value in (exc.response.headers or {}).items():
        if str(name).lower() == wanted.lower():
            return str(value)
    return None
