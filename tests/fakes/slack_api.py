"""A small fake Slack on 127.0.0.1: the Web API and Socket Mode on one aiohttp server.

The real slack_sdk ``AsyncWebClient`` (``base_url=slack.api_url``) and slack-bolt's
``AsyncSocketModeHandler`` talk to it unchanged. Tests push envelopes shaped like Slack's
(slash commands, app mentions, block actions), read back what the bot did (``calls``,
``messages()``, ``files``, ``acks``, ``response_url_posts``) and inject faults.

For HTTP mode, ``sign_request`` and the ``*_body`` helpers build signed request bodies.

Modals: ``views.open`` takes a ``trigger_id`` once, within 3 seconds of the interaction
that issued it, as Slack does, and checks the view the way Slack refuses one
(``invalid_arguments`` naming the field); ``views`` holds what was opened, and
``push_view_submission`` submits one with the given input values (as any user: Slack's
client only ever submits its own person's views, a forged request need not).

People share files (``share_file``) with a mention: the event lists them and their
``url_private_download`` serves them to the bot token, and, like Slack without the
``files:read`` scope (``files_read = False``), an HTML login page otherwise.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

JSON = dict[str, Any]
VERIFICATION_TOKEN = "fake-verification-token"
MAX_TEXT, MAX_BLOCKS, MAX_SECTION_TEXT = 40_000, 50, 3000
MAX_BUTTON_VALUE, MAX_ACTION_ID = 2000, 255
MAX_VIEW_TITLE, MAX_METADATA, MAX_VIEW_BLOCKS, MAX_LABEL = 24, 3000, 100, 2000
TRIGGER_WINDOW = 3.0  # seconds a trigger_id is good for


@dataclass
class Message:
    """A message as the fake holds it now (after any chat.update)."""

    channel: str
    ts: str
    text: str
    blocks: list[JSON] = field(default_factory=list)
    thread_ts: str | None = None
    user: str | None = None
    bot_id: str | None = None
    visible_to: str | None = None  # set for ephemeral messages
    edited: bool = False

    def to_slack(self) -> JSON:
        """Render the message the way Slack's APIs and payloads show it."""
        out: JSON = {
            "type": "message",
            "user": self.user,
            "bot_id": self.bot_id,
            "ts": self.ts,
            "text": self.text,
            "blocks": self.blocks,
        }
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.edited:
            out["edited"] = {"user": self.user, "ts": self.ts}
        return out


@dataclass
class UploadedFile:
    """A file shared through the files_upload_v2 flow."""

    id: str
    filename: str
    title: str | None
    content: bytes
    channel: str | None
    thread_ts: str | None
    initial_comment: str | None


@dataclass
class ResponseUrlPost:
    """A JSON body POSTed to the response_url of envelope ``envelope_id``."""

    envelope_id: str
    body: JSON


@dataclass
class _Fault:
    status: int
    error: str = ""
    retry_after: int = 1


@dataclass
class _Channel:
    name: str
    member: bool


class _ApiError(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.body: JSON = {"ok": False, "error": error, **extra}


class FakeSlack:
    """A fake Slack server; ``async with FakeSlack() as slack:`` starts it on a free port."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test",
        app_token: str = "xapp-test",
        team_id: str = "T1",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        app_id: str = "A1",
        channels: Iterable[str] = ("C1",),
    ) -> None:
        self.bot_token, self.app_token = bot_token, app_token
        self.team_id, self.app_id = team_id, app_id
        self.bot_user_id, self.bot_id = bot_user_id, bot_id
        self.port = 0
        self.calls: list[tuple[str, JSON]] = []
        self.acks: dict[str, JSON | None] = {}
        self.connections = 0
        self.files: list[UploadedFile] = []
        self.ephemerals: list[Message] = []
        self.response_url_posts: list[ResponseUrlPost] = []
        self._failed_calls: set[int] = set()
        self._channels = {cid: _Channel(cid.lower(), True) for cid in channels}
        self._messages: dict[tuple[str, str], Message] = {}
        self._faults: defaultdict[str, deque[_Fault]] = defaultdict(deque)
        self._uploads: dict[str, JSON] = {}
        self._tickets: set[str] = set()
        self._triggers: dict[str, tuple[str, float]] = {}  # trigger_id -> (user, issued at)
        self.views: dict[str, JSON] = {}  # view id -> the view as views.open answered it
        self._origins: dict[str, tuple[str, str]] = {}  # envelope_id -> (channel, message ts)
        self._shared: dict[str, bytes] = {}  # file id -> content, as people shared them
        self.files_read = True  # the app has the files:read scope
        self.downloads = 0
        self._sockets: list[web.WebSocketResponse] = []  # live, eligible for envelopes
        self._open: set[web.WebSocketResponse] = set()  # every open socket, for shutdown
        self._counter = itertools.count(1)
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._methods: dict[str, Callable[[JSON], JSON]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "apps.connections.open": self._connections_open,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
            "conversations.info": self._conversations_info,
            "users.info": self._users_info,
            "views.open": self._views_open,
        }

    # -- lifetime -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.come_up()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.go_down()

    async def come_up(self) -> None:
        """Start listening (again, on the same port once one was chosen)."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/files-pri/{file_id}/{name}", self._download)
        app.router.add_post("/response/{envelope_id}", self._response_url)
        app.router.add_get("/socket", self._socket)
        app.on_shutdown.append(self._close_sockets)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.port = self._runner.addresses[0][1]

    async def go_down(self) -> None:
        """Stop listening and close every socket, keeping all recorded state."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _close_sockets(self, _app: web.Application) -> None:
        for ws in list(self._open):
            await ws.close(code=1001, message=b"server going down")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def api_url(self) -> str:
        """The ``base_url`` for ``AsyncWebClient``."""
        return self.base_url + "api/"

    def __repr__(self) -> str:
        return (
            f"<FakeSlack port={self.port} up={self._runner is not None} calls={len(self.calls)}"
            f" messages={len(self._messages)} connections={self.connections}"
            f" live_sockets={len(self._sockets)} acks={len(self.acks)}>"
        )

    # -- test controls ----------------------------------------------------------

    def add_channel(self, channel_id: str, member: bool = True, name: str | None = None) -> None:
        """Make a channel exist; ``member=False`` means the bot is not in it."""
        self._channels[channel_id] = _Channel(name or channel_id.lower(), member)

    def fail_next(
        self, method: str, *, status: int = 429, retry_after: int = 1, count: int = 1
    ) -> None:
        """Answer the next ``count`` calls of ``method`` with HTTP ``status`` (429 rate-limits)."""
        self._faults[method].extend(_Fault(status, retry_after=retry_after) for _ in range(count))

    def ok_false_next(self, method: str, error: str, count: int = 1) -> None:
        """Answer the next ``count`` calls of ``method`` with ``{"ok": false, "error": error}``."""
        self._faults[method].extend(_Fault(200, error) for _ in range(count))

    def messages(self, channel: str | None = None) -> list[Message]:
        """Messages the bot posted (current text/blocks), oldest first, not ephemerals."""
        return [m for m in self._messages.values() if channel in (None, m.channel)]

    # The waits take timeout= (ASYNC109) because tests read better with it than wrapped
    # in asyncio.timeout(), and the failure message can then list what did happen.
    async def wait_for(
        self,
        method: str,
        predicate: Callable[[JSON], bool] | None = None,
        timeout: float = 5.0,
    ) -> JSON:
        """Return the params of the first successful ``method`` call matching ``predicate``."""

        def match() -> JSON | None:
            for i, (name, params) in enumerate(self.calls):
                ok = i not in self._failed_calls
                if ok and name == method and (predicate is None or predicate(params)):
                    return params
            return None

        if not await self._wait(lambda: match() is not None, timeout):
            listing = "\n  ".join(f"{m} {p!r}" for m, p in self.calls) or "(none)"
            raise AssertionError(f"no {method} call matched within {timeout}s; calls:\n  {listing}")
        found = match()
        assert found is not None
        return found

    async def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> JSON | None:
        """Return the ack payload (None for a bare ack) once ``envelope_id`` is acked."""
        if not await self._wait(lambda: envelope_id in self.acks, timeout):
            raise AssertionError(f"envelope {envelope_id} not acked within {timeout}s; {self!r}")
        return self.acks[envelope_id]

    async def wait_for_connections(self, count: int, timeout: float = 5.0) -> None:
        """Wait until ``count`` WebSocket connections have been made in total and one is live."""
        if not await self._wait(lambda: self.connections >= count and bool(self._sockets), timeout):
            raise AssertionError(f"expected {count} Socket Mode connections; {self!r}")

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,
        what: str = "condition",
    ) -> None:
        """Wait until ``predicate()`` holds; it is re-checked whenever the fake's state changes."""
        if not await self._wait(predicate, timeout):
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; {self!r}")

    async def _wait(self, predicate: Callable[[], bool], limit: float) -> bool:
        try:
            async with asyncio.timeout(limit):
                while not predicate():
                    await self._changed.wait()
        except TimeoutError:
            return predicate()
        return True

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _next_ts(self) -> str:
        micros = 1_700_000_000_000_000 + next(self._counter) * 100
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    # -- Socket Mode -------------------------------------------------------------

    async def push_slash_command(
        self,
        user_id: str,
        text: str,
        *,
        command: str = "/farm",
        channel_id: str = "C1",
        team_id: str = "T1",
    ) -> str:
        """Send a ``slash_commands`` envelope; return its envelope_id."""
        envelope_id = str(uuid.uuid4())
        payload = slash_command_payload(
            user_id,
            text,
            command=command,
            channel_id=channel_id,
            team_id=team_id,
            api_app_id=self.app_id,
            response_url=self._response_url_for(envelope_id),
            trigger_id=self._trigger_id(user_id),
        )
        return await self._push(
            envelope_id, "slash_commands", payload, accepts_response_payload=True
        )

    def share_file(self, name: str, content: bytes) -> JSON:
        """A file a person uploads, as a message event lists it (for ``push_mention``)."""
        file_id = f"F{next(self._counter):08d}"
        self._shared[file_id] = content
        url = f"{self.base_url}files-pri/{self.team_id}-{file_id}/{name}"
        return {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": "application/octet-stream",
            "size": len(content),
            "url_private": url,
            "url_private_download": url + "?download=1",
        }

    async def push_mention(
        self,
        user_id: str,
        text: str,
        *,
        channel: str = "C1",
        thread_ts: str | None = None,
        files: list[JSON] | None = None,
        ts: str | None = None,
    ) -> str:
        """Send an ``events_api`` ``app_mention`` envelope; ``<@BOT>`` is prefixed if absent."""
        payload = app_mention_payload(
            user_id,
            text,
            channel=channel,
            ts=ts or self._next_ts(),
            thread_ts=thread_ts,
            bot_user_id=self.bot_user_id,
            team_id=self.team_id,
            api_app_id=self.app_id,
        )
        if files:
            payload["event"]["files"] = files
        return await self._push(
            str(uuid.uuid4()), "events_api", payload, retry_attempt=0, retry_reason=""
        )

    async def push_block_action(
        self,
        user_id: str,
        *,
        channel: str,
        message_ts: str,
        action_id: str,
        value: str | None = None,
        block_id: str | None = None,
    ) -> str:
        """Send an ``interactive`` ``block_actions`` envelope: a click on a posted button.

        The message must have been posted and must hold an element with ``action_id``;
        ``value`` and ``block_id`` default to that element's.
        """
        message = self._messages.get((channel, message_ts))
        if message is None:
            raise AssertionError(f"no message {message_ts} in {channel}; have {self.messages()}")
        found = _find_element(message.blocks, action_id)
        if found is None:
            raise AssertionError(f"message {message_ts} has no element {action_id!r}: {message}")
        element, found_block_id = found
        action: JSON = {
            "action_id": action_id,
            "block_id": block_id or found_block_id or "b1",
            "text": element.get("text", {"type": "plain_text", "text": ""}),
            "value": value if value is not None else element.get("value", ""),
            "type": element.get("type", "button"),
            "action_ts": self._next_ts(),
        }
        envelope_id = str(uuid.uuid4())
        self._origins[envelope_id] = (channel, message_ts)
        payload = block_actions_payload(
            user_id,
            channel=channel,
            channel_name=self._channels[channel].name,
            message=message.to_slack(),
            action=action,
            team_id=self.team_id,
            api_app_id=self.app_id,
            response_url=self._response_url_for(envelope_id),
            trigger_id=self._trigger_id(user_id),
        )
        return await self._push(envelope_id, "interactive", payload)

    async def push_view_submission(
        self, user_id: str, view_id: str, values: dict[str, dict[str, str | None]]
    ) -> str:
        """Send a ``view_submission`` envelope: ``user_id`` submits the open view ``view_id``
        with ``values`` (block_id -> action_id -> the text typed, None for nothing)."""
        view = self.views.get(view_id)
        if view is None:
            raise AssertionError(f"no open view {view_id}; have {sorted(self.views)}")
        inputs = {
            b.get("block_id"): b["element"]
            for b in view["blocks"]
            if b.get("type") == "input" and isinstance(b.get("element"), dict)
        }
        state: JSON = {}
        for block_id, actions in values.items():
            element = inputs.get(block_id)
            if element is None:
                raise AssertionError(f"view {view_id} has no input block {block_id!r}")
            for action_id, value in actions.items():
                if element.get("action_id") != action_id:
                    raise AssertionError(f"input {block_id!r} has no element {action_id!r}")
                kind = str(element.get("type"))
                state.setdefault(block_id, {})[action_id] = {"type": kind, "value": value}
        submitted = {**view, "state": {"values": state}}
        envelope_id = str(uuid.uuid4())
        payload = view_submission_payload(
            user_id,
            view=submitted,
            team_id=self.team_id,
            api_app_id=self.app_id,
            trigger_id=self._trigger_id(user_id),
        )
        self.views.pop(view_id, None)  # a submitted view closes
        return await self._push(envelope_id, "interactive", payload)

    async def disconnect(self, reason: str = "refresh_requested", *, grace: float = 1.0) -> None:
        """Send ``disconnect`` to live sockets; close any the client keeps after ``grace`` s."""
        live, self._sockets = self._sockets, []
        for ws in live:
            if not ws.closed:
                await ws.send_json(
                    {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-slack"}}
                )
        await self._wait(lambda: not self._open.intersection(live), grace)
        for ws in live:
            await ws.close()

    async def _push(
        self,
        envelope_id: str,
        kind: str,
        payload: JSON,
        *,
        accepts_response_payload: bool = False,
        **extra: Any,
    ) -> str:
        if not await self._wait(lambda: bool(self._sockets), 5.0):
            raise AssertionError(f"no live Socket Mode connection to push {kind}; {self!r}")
        await self._sockets[-1].send_json(
            {
                "envelope_id": envelope_id,
                "payload": payload,
                "type": kind,
                "accepts_response_payload": accepts_response_payload,
                **extra,
            }
        )
        return envelope_id

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("ticket") not in self._tickets:
            raise web.HTTPUnauthorized(text="invalid ticket")
        ws = web.WebSocketResponse(timeout=2.0)
        await ws.prepare(request)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self._sockets) + 1,
                "debug_info": {
                    "host": "fake-slack",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": self.app_id},
            }
        )
        self.connections += 1
        self._sockets.append(ws)
        self._open.add(ws)
        self._notify()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    if "envelope_id" in data:
                        self.acks[data["envelope_id"]] = data.get("payload")
                        self._notify()
        finally:
            if ws in self._sockets:
                self._sockets.remove(ws)
            self._open.discard(ws)
            self._notify()
        return ws

    async def _download(self, request: web.Request) -> web.StreamResponse:
        self.downloads += 1
        self._notify()
        file_id = request.match_info["file_id"].split("-", 1)[-1]
        header = request.headers.get("Authorization", "")
        if not self.files_read or header != f"Bearer {self.bot_token}":
            # What Slack does: a login page, 200, for a token without files:read.
            return web.Response(text="<html>Sign in to Slack</html>", content_type="text/html")
        if file_id not in self._shared:
            raise web.HTTPNotFound(text="no such file")
        return web.Response(body=self._shared[file_id], content_type="application/octet-stream")

    def _response_url_for(self, envelope_id: str) -> str:
        return f"{self.base_url}response/{envelope_id}"

    def _trigger_id(self, user_id: str = "") -> str:
        trigger = f"{next(self._counter)}.{uuid.uuid4().hex[:12]}"
        self._triggers[trigger] = (user_id, time.monotonic())
        return trigger

    async def _response_url(self, request: web.Request) -> web.StreamResponse:
        envelope_id = request.match_info["envelope_id"]
        body = await request.json()
        self.response_url_posts.append(ResponseUrlPost(envelope_id, body))
        origin = self._origins.get(envelope_id)
        if origin is not None and body.get("delete_original"):
            self._messages.pop(origin, None)
        elif origin in self._messages and body.get("replace_original"):
            message = self._messages[origin]
            message.text, message.blocks = body.get("text", ""), body.get("blocks", [])
        self._notify()
        return web.Response(text="ok")

    # -- Web API -------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params = await _read_params(request)
        header = request.headers.get("Authorization", "")
        token = params.pop("token", None)
        if header.startswith("Bearer "):
            token = header.removeprefix("Bearer ").strip()
        index = len(self.calls)
        self.calls.append((method, params))
        self._failed_calls.add(index)
        self._notify()
        queue = self._faults.get(method)
        if queue:
            fault = queue.popleft()
            if fault.status == 429:
                return web.json_response(
                    {"ok": False, "error": "ratelimited"},
                    status=429,
                    headers={"Retry-After": str(fault.retry_after)},
                )
            if fault.status != 200:
                return web.Response(status=fault.status, text=f"fake Slack error {fault.status}")
            return web.json_response({"ok": False, "error": fault.error})
        try:
            handler = self._methods.get(method)
            if handler is None:
                raise _ApiError("unknown_method")
            self._check_token(method, token)
            body = {"ok": True, **handler(params)}
        except _ApiError as exc:
            return web.json_response(exc.body)
        self._failed_calls.discard(index)
        self._notify()
        return web.json_response(body)

    def _check_token(self, method: str, token: str | None) -> None:
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if not token:
            raise _ApiError("not_authed")
        if token != expected:
            known = token in (self.bot_token, self.app_token)
            raise _ApiError("not_allowed_token_type" if known else "invalid_auth")

    def _channel(self, channel_id: Any, *, write: bool = False) -> str:
        channel = self._channels.get(str(channel_id))
        if channel is None:
            raise _ApiError("channel_not_found")
        if write and not channel.member:
            raise _ApiError("not_in_channel")
        return str(channel_id)

    def _views_open(self, params: JSON) -> JSON:
        trigger = str(params.get("trigger_id") or "")
        issued = self._triggers.pop(trigger, None)
        if issued is None:
            raise _ApiError("invalid_trigger_id")
        user, at = issued
        if time.monotonic() - at > TRIGGER_WINDOW:
            raise _ApiError("expired_trigger_id")
        view: Any = params.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        errors = list(_view_errors(view))
        if errors:
            raise _ApiError(
                "invalid_arguments",
                response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
            )
        view_id = f"V{next(self._counter):08d}"
        opened = {
            "id": view_id,
            "team_id": self.team_id,
            "app_id": self.app_id,
            "bot_id": self.bot_id,
            "type": "modal",
            "callback_id": view.get("callback_id", ""),
            "private_metadata": view.get("private_metadata", ""),
            "title": view["title"],
            "submit": view.get("submit"),
            "close": view.get("close"),
            "blocks": view["blocks"],
            "state": {"values": {}},
            "hash": uuid.uuid4().hex[:16],
            "root_view_id": view_id,
            "previous_view_id": None,
            "external_id": "",
            "user": user,
        }
        self.views[view_id] = opened
        return {"view": opened}

    def _auth_test(self, _params: JSON) -> JSON:
        return {
            "url": "https://fake-farm.slack.com/",
            "team": "Fake Farm",
            "user": "farmbot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, params: JSON) -> JSON:
        channel = self._channel(params.get("channel"), write=True)
        text, blocks = _checked_content(params.get("text"), params.get("blocks"))
        message = Message(
            channel,
            self._next_ts(),
            text,
            blocks,
            params.get("thread_ts"),
            user=self.bot_user_id,
            bot_id=self.bot_id,
        )
        self._messages[(channel, message.ts)] = message
        return {"channel": channel, "ts": message.ts, "message": message.to_slack()}

    def _update(self, params: JSON) -> JSON:
        channel = self._channel(params.get("channel"), write=True)
        message = self._messages.get((channel, str(params.get("ts"))))
        if message is None:
            raise _ApiError("message_not_found")
        message.text, message.blocks = _checked_content(
            params.get("text", message.text), params.get("blocks", message.blocks)
        )
        message.edited = True
        return {
            "channel": channel,
            "ts": message.ts,
            "text": message.text,
            "message": message.to_slack(),
        }

    def _post_ephemeral(self, params: JSON) -> JSON:
        channel = self._channel(params.get("channel"), write=True)
        if not params.get("user"):
            raise _ApiError("user_not_found")
        text, blocks = _checked_content(params.get("text"), params.get("blocks"))
        message = Message(
            channel,
            self._next_ts(),
            text,
            blocks,
            params.get("thread_ts"),
            user=self.bot_user_id,
            bot_id=self.bot_id,
            visible_to=params["user"],
        )
        self.ephemerals.append(message)
        return {"message_ts": message.ts}

    def _connections_open(self, _params: JSON) -> JSON:
        ticket = str(next(self._counter))
        self._tickets.add(ticket)
        return {"url": f"ws://127.0.0.1:{self.port}/socket?ticket={ticket}"}

    def _get_upload_url(self, params: JSON) -> JSON:
        if not params.get("filename") or not str(params.get("length", "")).isdigit():
            raise _ApiError("invalid_arguments")
        file_id = f"F{next(self._counter):08d}"
        self._uploads[file_id] = {"filename": params["filename"], "content": None}
        return {"upload_url": f"{self.base_url}upload/{file_id}", "file_id": file_id}

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        upload = self._uploads.get(request.match_info["file_id"])
        if upload is None:
            raise web.HTTPNotFound(text="unknown upload")
        upload["content"] = await request.read()
        return web.Response(text=f"OK - {len(upload['content'])}")

    def _complete_upload(self, params: JSON) -> JSON:
        channel = params.get("channel_id")
        if channel is not None:
            channel = self._channel(channel, write=True)
        entries = params.get("files")
        if not isinstance(entries, list) or not entries:
            raise _ApiError("invalid_arguments")
        shared: list[JSON] = []
        for entry in entries:
            upload = self._uploads.get(str(entry.get("id")))
            if upload is None or upload["content"] is None:
                raise _ApiError("file_not_found")
            file = UploadedFile(
                entry["id"],
                upload["filename"],
                entry.get("title"),
                upload["content"],
                channel,
                params.get("thread_ts"),
                params.get("initial_comment"),
            )
            self.files.append(file)
            shared.append(
                {
                    "id": file.id,
                    "name": file.filename,
                    "title": file.title or file.filename,
                    "size": len(file.content),
                }
            )
        return {"files": shared}

    def _conversations_info(self, params: JSON) -> JSON:
        channel_id = self._channel(params.get("channel"))
        channel = self._channels[channel_id]
        return {
            "channel": {
                "id": channel_id,
                "name": channel.name,
                "is_channel": True,
                "is_private": False,
                "is_im": False,
                "is_member": channel.member,
            }
        }

    def _users_info(self, params: JSON) -> JSON:
        user_id = params.get("user")
        if not user_id:
            raise _ApiError("user_not_found")
        is_bot = user_id == self.bot_user_id
        name = "farmbot" if is_bot else _user_name(user_id)
        return {
            "user": {
                "id": user_id,
                "team_id": self.team_id,
                "name": name,
                "real_name": name,
                "is_bot": is_bot,
                "deleted": False,
                "tz": "UTC",
                "profile": {"display_name": name, "real_name": name},
            }
        }


async def _read_params(request: web.Request) -> JSON:
    """Merge query string, JSON and form bodies the ways slack_sdk sends them."""
    params: JSON = dict(request.query)
    if request.content_type == "application/json":
        params.update(await request.json())
    elif request.body_exists:
        params.update(await request.post())
    for key in ("blocks", "files", "attachments", "metadata"):
        if isinstance(params.get(key), str):
            params[key] = json.loads(params[key])
    return params


def _checked_content(text: Any, blocks: Any) -> tuple[str, list[JSON]]:
    """Validate message text and Block Kit the way chat.postMessage does."""
    text, blocks = text or "", blocks or []
    if not text and not blocks:
        raise _ApiError("no_text")
    if len(text) > MAX_TEXT:
        raise _ApiError("msg_too_long")
    errors = list(_block_errors(blocks))
    if errors:
        raise _ApiError(
            "invalid_blocks",
            errors=errors,
            response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
        )
    return str(text), list(blocks)


def _block_errors(blocks: Any) -> Iterator[str]:
    if not isinstance(blocks, list):
        yield "must be an array [json-pointer:/blocks]"
        return
    if len(blocks) > MAX_BLOCKS:
        yield f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]"
    yield from _element_errors(blocks, "/blocks")


def _element_errors(node: Any, pointer: str) -> Iterator[str]:
    if isinstance(node, list):
        for i, child in enumerate(node):
            yield from _element_errors(child, f"{pointer}/{i}")
        return
    if not isinstance(node, dict):
        return
    text = node.get("text")
    if node.get("type") == "section" and isinstance(text, dict):
        if len(str(text.get("text", ""))) > MAX_SECTION_TEXT:
            limit = MAX_SECTION_TEXT + 1
            yield f"must be less than {limit} characters [json-pointer:{pointer}/text/text]"
    if len(str(node.get("action_id", ""))) > MAX_ACTION_ID:
        yield f"must be less than {MAX_ACTION_ID + 1} characters [json-pointer:{pointer}/action_id]"
    if node.get("type") == "button" and len(str(node.get("value", ""))) > MAX_BUTTON_VALUE:
        yield f"must be less than {MAX_BUTTON_VALUE + 1} characters [json-pointer:{pointer}/value]"
    for key, child in node.items():
        if isinstance(child, (dict, list)):
            yield from _element_errors(child, f"{pointer}/{key}")


def _view_errors(view: Any) -> Iterator[str]:
    """What Slack's views.open says about a modal it refuses."""
    if not isinstance(view, dict) or view.get("type") != "modal":
        yield "must be a modal view [json-pointer:/view/type]"
        return
    for key in ("title", "submit", "close"):
        label = view.get(key)
        if label is None and key != "title":
            continue
        if not isinstance(label, dict) or label.get("type") != "plain_text":
            yield f"must be a plain_text object [json-pointer:/view/{key}]"
        elif not 1 <= len(str(label.get("text", ""))) <= MAX_VIEW_TITLE:
            yield f"must be 1 to {MAX_VIEW_TITLE} characters [json-pointer:/view/{key}/text]"
    if len(str(view.get("private_metadata", ""))) > MAX_METADATA:
        yield f"must be at most {MAX_METADATA} characters [json-pointer:/view/private_metadata]"
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= MAX_VIEW_BLOCKS:
        yield f"must have 1 to {MAX_VIEW_BLOCKS} blocks [json-pointer:/view/blocks]"
        return
    inputs = [b for b in blocks if isinstance(b, dict) and b.get("type") == "input"]
    if inputs and view.get("submit") is None:
        yield "a view with input blocks needs a submit [json-pointer:/view/submit]"
    for i, block in enumerate(inputs):
        where = f"/view/blocks/{i}"
        label, element = block.get("label"), block.get("element")
        if not isinstance(label, dict) or not 1 <= len(str(label.get("text", ""))) <= MAX_LABEL:
            yield f"must be 1 to {MAX_LABEL} characters [json-pointer:{where}/label/text]"
        if not isinstance(element, dict) or element.get("type") != "plain_text_input":
            yield f"must be a supported element [json-pointer:{where}/element]"
        elif not element.get("action_id"):
            yield f"must have an action_id [json-pointer:{where}/element/action_id]"


def _find_element(
    node: Any, action_id: str, block_id: str | None = None
) -> tuple[JSON, str | None] | None:
    """Find the interactive element with ``action_id`` and the block_id around it."""
    if isinstance(node, list):
        for child in node:
            if (found := _find_element(child, action_id, block_id)) is not None:
                return found
    elif isinstance(node, dict):
        if node.get("action_id") == action_id:
            return node, block_id
        inner = node.get("block_id", block_id)
        for child in node.values():
            if (found := _find_element(child, action_id, inner)) is not None:
                return found
    return None


def _user_name(user_id: str) -> str:
    return f"user-{user_id.lower()}"


# -- payload shapes shared by Socket Mode and HTTP mode ------------------------------


def slash_command_payload(
    user_id: str,
    text: str,
    *,
    command: str = "/farm",
    channel_id: str = "C1",
    team_id: str = "T1",
    api_app_id: str = "A1",
    response_url: str = "https://hooks.slack.com/commands/T1/1/fake",
    trigger_id: str = "1.fake",
) -> dict[str, str]:
    """A slash command payload as Slack sends it (all values are strings)."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": "fake-farm",
        "channel_id": channel_id,
        "channel_name": channel_id.lower(),
        "user_id": user_id,
        "user_name": _user_name(user_id),
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }


def app_mention_payload(
    user_id: str,
    text: str,
    *,
    channel: str = "C1",
    ts: str = "1700000000.000100",
    thread_ts: str | None = None,
    bot_user_id: str = "UBOT",
    team_id: str = "T1",
    api_app_id: str = "A1",
) -> JSON:
    """An ``event_callback`` with an ``app_mention``; ``<@BOT>`` is prefixed if absent."""
    mention = f"<@{bot_user_id}>"
    event: JSON = {
        "client_msg_id": str(uuid.uuid4()),
        "type": "app_mention",
        "text": text if mention in text else f"{mention} {text}",
        "user": user_id,
        "ts": ts,
        "team": team_id,
        "channel": channel,
        "event_ts": ts,
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    authorization = {"enterprise_id": None, "team_id": team_id, "user_id": bot_user_id}
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()),
        "authorizations": [{**authorization, "is_bot": True, "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
        "event_context": f"4-{uuid.uuid4().hex}",
    }


def block_actions_payload(
    user_id: str,
    *,
    channel: str,
    message: JSON,
    action: JSON,
    channel_name: str | None = None,
    team_id: str = "T1",
    api_app_id: str = "A1",
    response_url: str = "https://hooks.slack.com/actions/T1/1/fake",
    trigger_id: str = "1.fake",
) -> JSON:
    """A ``block_actions`` payload for a click of ``action`` on ``message`` (a Slack dict)."""
    name = _user_name(user_id)
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": name, "name": name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": trigger_id,
        "team": {"id": team_id, "domain": "fake-farm"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": channel_name or channel.lower()},
        "message": message,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }


def view_submission_payload(
    user_id: str,
    *,
    view: JSON,
    team_id: str = "T1",
    api_app_id: str = "A1",
    trigger_id: str = "1.fake",
) -> JSON:
    """A ``view_submission`` payload: ``user_id`` submitted ``view`` (with its state)."""
    name = _user_name(user_id)
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": "fake-farm"},
        "user": {"id": user_id, "username": name, "name": name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id,
        "view": view,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def sign_request(body: bytes, signing_secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers that make ``body`` pass Slack's v0 request signature check."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def slash_command_body(user_id: str, text: str, **fields: str) -> bytes:
    """A form-encoded slash command body (``fields`` as for ``slash_command_payload``)."""
    return urlencode(slash_command_payload(user_id, text, **fields)).encode()


def interactive_body(payload: JSON) -> bytes:
    """A ``payload=<json>`` form body as Slack POSTs interactivity requests."""
    return urlencode({"payload": json.dumps(payload)}).encode()
