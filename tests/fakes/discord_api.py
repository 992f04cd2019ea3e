"""A fake Discord on 127.0.0.1: the REST API (``/api/v10``) and the gateway WebSocket.

The real discord.py talks to it unchanged once pointed at ``api_base`` (and, through
``/gateway/bot``, at ``gateway_url``). It answers like Discord -- JSON errors with
Discord's codes (``10003`` Unknown Channel, ``50001`` Missing Access, ``50035`` Invalid
Form Body, ``40060`` already acknowledged, ``10062`` Unknown interaction), rate-limit
headers, zlib-stream gateway frames -- and validates what adapters commonly get wrong:
content over 2,000 characters, more than 5 rows of 5 buttons, a ``custom_id`` over 100
characters or repeated in one message, an empty message, an interaction acknowledged
twice or after Discord's 3 seconds, a followup before the acknowledgement.

Modals as Discord has them: a command or a button press may be answered with one
(callback type 9, checked: title, custom_id, at most 5 labelled text inputs within
Discord's lengths); ``submit`` then sends its MODAL_SUBMIT interaction (type 5) with the
values typed, the inputs nested as they were sent (in labels, type 18, or the older
action rows) and, for a modal opened from a button, that button's message -- which a
deferred update (type 6) then edits.

Tests push interactions (``slash``, ``press``, ``submit``) as a given user, read back
what the bot did (``calls``, ``messages``, ``responses``) and inject faults:
``fail_next`` (429 with ``retry_after``, per route or global, 5xx, any Discord error),
``go_down``/``come_up`` (connection refused), a changed ``token`` (401),
``ack_heartbeats = False``, ``drop_gateway`` (the bot resumes), ``delete_channel`` and
``forbid``.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dtm
import hashlib
import itertools
import json
import math
import re
import secrets
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import BodyPartReader, WSMsgType, web

from tests.fakes.site import listen

JSON = dict[str, Any]
APP_ID = 1_100_000_000_000_000_001  # the application; its bot user has the same id
API = "/api/v10"
MAX_CONTENT, MAX_ROWS, MAX_ROW_BUTTONS, MAX_CUSTOM_ID, MAX_LABEL = 2000, 5, 5, 100, 80
MAX_MODAL_LABEL, MAX_DESCRIPTION, MAX_INPUT = 45, 100, 4000  # a modal's title and labels
ACK_WINDOW = 3.0  # seconds Discord waits for an interaction's first response
EPHEMERAL, LOADING, GUILDS_INTENT = 64, 128, 1
_SNOWFLAKES = itertools.count(1_200_000_000_000_000_000)


class ApiError(Exception):
    """An error answer: HTTP status, Discord's JSON error code and message."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        errors: JSON | None = None,
        headers: dict[str, str] | None = None,
        body: JSON | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.errors, self.headers, self.body = errors, headers or {}, body

    def to_json(self) -> JSON:
        if self.body is not None:
            return self.body
        out: JSON = {"message": self.message, "code": self.code}
        if self.errors:
            out["errors"] = self.errors
        return out


def _invalid(field_name: str, code: str, message: str) -> ApiError:
    errors = {field_name: {"_errors": [{"code": code, "message": message}]}}
    return ApiError(400, 50035, "Invalid Form Body", errors=errors)


def unknown_channel() -> ApiError:
    return ApiError(404, 10003, "Unknown Channel")


@dataclass(frozen=True)
class Upload:
    """A file sent in a multipart body."""

    name: str  # the form field: files[0], ...
    filename: str
    content_type: str
    data: bytes


@dataclass
class Call:
    """One request the fake received."""

    method: str
    path: str  # below /api/v10, e.g. /channels/123/messages
    query: dict[str, str]
    json: Any
    files: list[Upload]
    authorized: bool  # it carried the right "Bot <token>"

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class Interaction:
    """One interaction the fake dispatched, and how the bot answered it."""

    id: int
    token: str
    type: int  # 2 application command, 3 component, 5 modal submit
    user_id: int
    channel_id: int
    guild_id: int | None
    data: JSON
    dispatched_at: float  # time.monotonic() when INTERACTION_CREATE was sent (or queued)
    message_id: int | None = None  # the component's message
    callbacks: list[JSON] = field(default_factory=list)  # the callback bodies, in order
    acked_at: float | None = None
    original_id: int | None = None  # the original response's message
    followups: list[int] = field(default_factory=list)
    expired: bool = False  # its token's 15 minutes are over
    modal: JSON | None = None  # the modal it was answered with (callback type 9)

    @property
    def ack_type(self) -> int | None:
        return self.callbacks[0]["type"] if self.callbacks else None

    @property
    def ack_delay(self) -> float | None:
        return None if self.acked_at is None else self.acked_at - self.dispatched_at


@dataclass
class _Session:
    id: str
    seq: int = 0
    events: list[JSON] = field(default_factory=list)  # every dispatch, for RESUME
    socket: web.WebSocketResponse | None = None
    compress: Any = None  # a zlib compressobj for zlib-stream, else None


@dataclass
class _Fault:
    route: re.Pattern[str]
    error: ApiError


class FakeDiscord:
    """One bot's view of Discord, as an async context manager."""

    def __init__(
        self,
        token: str = "MTEwMDAwMDAwMDAwMDAwMDAwMQ.GfAkEd.fake-discord-bot-token",
        *,
        heartbeat_interval: float = 0.25,
    ) -> None:
        self.token = token
        self.heartbeat_interval = heartbeat_interval  # seconds, sent in HELLO
        self.ack_heartbeats = True
        self.bot_user: JSON = _user(APP_ID, "farmbot", bot=True)
        self.calls: list[Call] = []
        self.gateway_log: list[tuple[str, Any]] = []  # ("identify", intents), ("resume", seq)
        self.heartbeats = 0
        self.commands: dict[int | None, list[JSON]] = {}  # guild id (None: global) -> commands
        self.interactions: dict[int, Interaction] = {}
        self.attachments: dict[int, bytes] = {}  # attachment id -> data
        self._guilds: dict[int, JSON] = {}
        self._channels: dict[int, JSON] = {}
        self._forbidden: set[int] = set()
        self._users: dict[int, JSON] = {}
        self._messages: dict[int, JSON] = {}  # id -> message, as it is now
        self._ephemeral: set[int] = set()
        self._faults: deque[_Fault] = deque()
        self._session: _Session | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0

    def __repr__(self) -> str:
        return (
            f"<FakeDiscord port={self._port} up={self._runner is not None} calls="
            f"{len(self.calls)} interactions={len(self.interactions)} "
            f"connected={self.connected}>"
        )

    # -- lifetime ------------------------------------------------------------------------

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
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", API + "/{tail:.*}", self._rest)
        app.router.add_get("/attachments/{id}/{name}", self._cdn)
        self._runner, self._port = await listen(app, self._port)

    async def go_down(self) -> None:
        """An outage: drop every connection and refuse new ones until ``come_up``."""
        runner, self._runner = self._runner, None
        for socket in list(self._sockets):
            await socket.close(code=1001, message=b"going away")
        if runner is not None:
            await runner.cleanup()
        self._notify()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self._port}{API}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/gateway"

    # -- the world -----------------------------------------------------------------------

    def add_guild(self, guild_id: int, name: str = "farm") -> JSON:
        return self._guilds.setdefault(guild_id, {"id": str(guild_id), "name": name})

    def add_channel(self, channel_id: int, guild_id: int, name: str = "ops") -> JSON:
        """A text channel the bot can see and post in."""
        self.add_guild(guild_id)
        channel = {
            "id": str(channel_id),
            "type": 0,
            "guild_id": str(guild_id),
            "name": name,
            "position": len(self._channels),
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
        }
        return self._channels.setdefault(channel_id, channel)

    def add_user(self, user_id: int, name: str) -> JSON:
        return self._users.setdefault(user_id, _user(user_id, name))

    def delete_channel(self, channel_id: int) -> None:
        """The channel (or thread) is deleted: posting to it is 404 Unknown Channel."""
        self._channels.pop(channel_id, None)

    def forbid(self, channel_id: int) -> None:
        """The bot loses access to the channel: 403 Missing Access."""
        self._forbidden.add(channel_id)

    def channel(self, channel_id: int) -> JSON | None:
        found = self._channels.get(channel_id)
        return copy.deepcopy(found) if found is not None else None

    def threads(self, parent_id: int) -> list[JSON]:
        return [
            copy.deepcopy(c)
            for c in self._channels.values()
            if c.get("parent_id") == str(parent_id) and c["type"] in (10, 11, 12)
        ]

    # -- faults --------------------------------------------------------------------------

    def fail_next(
        self,
        route: str,
        status: int,
        *,
        retry_after: float | None = None,
        scope: str = "user",
        code: int = 0,
        message: str | None = None,
        count: int = 1,
    ) -> None:
        """Answer the next ``count`` requests matching ``route`` with an error.

        ``route`` is like ``"POST /channels/{id}/messages"`` (``{...}`` matches one path
        segment; ``"* *"`` matches anything). A 429 carries Discord's headers and body;
        ``scope="global"`` makes it a global rate limit.
        """
        pattern = re.compile(
            re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(route)).replace(r"\*", ".*")
        )
        if status == 429:
            error = _rate_limited(retry_after or 1.0, scope)
        else:
            error = ApiError(status, code, message or _PHRASES.get(status, "Error"))
        self._faults.extend(_Fault(pattern, error) for _ in range(count))

    def drop_gateway(self, code: int = 4000) -> None:
        """Close the bot's gateway connection (the session stays resumable)."""
        session = self._session
        if session is not None and session.socket is not None:
            socket, session.socket = session.socket, None
            asyncio.get_running_loop().create_task(
                socket.close(code=code, message=b"dropped by the test")
            ).add_done_callback(lambda _: None)

    # -- interactions --------------------------------------------------------------------

    async def slash(
        self,
        user_id: int,
        name: str,
        *,
        channel_id: int,
        **options: Any,
    ) -> Interaction:
        """A person runs the slash command ``name`` with ``options`` in a guild channel."""
        channel = self._channels[channel_id]
        guild_id = int(channel.get("guild_id") or 0) or None
        command = self._command(name, guild_id)
        kinds = {o["name"]: o["type"] for o in command.get("options", [])}
        unknown = set(options) - set(kinds)
        if unknown:
            raise ValueError(f"/{name} has no options {sorted(unknown)}; it has {sorted(kinds)}")
        files = {k: v for k, v in options.items() if isinstance(v, dict)}  # attachments
        data: JSON = {
            "id": command["id"],
            "name": name,
            "type": 1,
            "options": [
                {"name": k, "type": kinds[k], "value": v["id"] if k in files else v}
                for k, v in options.items()
                if v is not None
            ],
        }
        if files:
            data["resolved"] = {"attachments": {v["id"]: v for v in files.values()}}
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        return self._interact(2, user_id, channel_id, data, None)

    def upload(self, filename: str, data: bytes) -> JSON:
        """A file a person attaches to a slash command's option (served by the fake's CDN)."""
        attachment_id = next(_SNOWFLAKES)
        self.attachments[attachment_id] = data
        url = f"http://127.0.0.1:{self._port}/attachments/{attachment_id}/{filename}"
        return {"id": str(attachment_id), "filename": filename, "size": len(data), "url": url,
                "proxy_url": url, "content_type": "application/octet-stream"}  # fmt: skip

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        self.calls.append(Call("GET", request.path, {}, None, [], False))
        self._notify()
        data = self.attachments.get(int(request.match_info["id"]))
        if data is None:
            raise web.HTTPNotFound(text="no such attachment")
        return web.Response(body=data, content_type="application/octet-stream")

    async def press(self, user_id: int, message: JSON, custom_id: str) -> Interaction:
        """A person presses the button with ``custom_id`` on a message the bot posted."""
        current = self._messages.get(int(message["id"]))
        if current is None:
            raise ValueError(f"unknown message {message['id']}")
        offered = [
            b.get("custom_id")
            for row in current.get("components", [])
            for b in row.get("components", [])
        ]
        if custom_id not in offered:
            raise ValueError(f"message has no button with custom_id {custom_id!r}: {offered}")
        data = {"custom_id": custom_id, "component_type": 2}
        return self._interact(3, user_id, int(current["channel_id"]), data, int(current["id"]))

    async def submit(
        self, user_id: int, opened: Interaction, values: dict[str, str] | None = None
    ) -> Interaction:
        """A person submits the modal ``opened`` was answered with, ``values`` typed into
        its inputs (by custom_id; others keep what they were filled in with, if anything).
        Any ``user_id`` may: Discord's client submits only its own person's modal, a
        forged request need not."""
        modal = opened.modal
        if modal is None:
            raise ValueError(f"interaction {opened.id} was not answered with a modal")
        typed = dict(values or {})
        ids = itertools.count(1)
        components = []
        for component in modal["components"]:
            inner = (
                component["component"] if component["type"] == 18 else component["components"][0]
            )
            value = typed.pop(inner["custom_id"], inner.get("value") or "")  # as prefilled
            if inner.get("required", True) and not value:
                raise ValueError(f"{inner['custom_id']!r} is required: the client would not submit")
            if len(value) > int(inner.get("max_length") or 4000):
                raise ValueError(f"{inner['custom_id']!r}: longer than its max_length")
            submitted = {
                "type": 4,
                "id": next(ids),
                "custom_id": inner["custom_id"],
                "value": value,
            }
            if component["type"] == 18:
                components.append({"type": 18, "id": next(ids), "component": submitted})
            else:
                components.append({"type": 1, "id": next(ids), "components": [submitted]})
        if typed:
            raise ValueError(f"the modal has no inputs {sorted(typed)}")
        data = {"custom_id": modal["custom_id"], "components": components}
        return self._interact(5, user_id, opened.channel_id, data, opened.message_id)

    def expire(self, interaction: Interaction) -> None:
        """An interaction's token runs out (Discord's 15 minutes): its webhook says 401."""
        interaction.expired = True

    async def wait_for(
        self,
        predicate: Callable[[], Any],
        *,
        timeout: float = 10.0,
        message: str = "condition",
    ) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every request); return it."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not (result := predicate()):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {message}; calls: "
                    f"{[c.route for c in self.calls[-12:]]}"
                )
            event = self._changed
            try:
                async with asyncio.timeout(min(remaining, 0.2)):
                    await event.wait()
            except TimeoutError:
                pass
        return result

    async def wait_identified(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until the bot has identified (or resumed) ``count`` times in all."""
        await self.wait_for(
            lambda: self.connected and len(self.gateway_log) >= count,
            timeout=timeout,
            message=f"{count} IDENTIFY/RESUME",
        )

    @property
    def connected(self) -> bool:
        session = self._session
        return session is not None and session.socket is not None and not session.socket.closed

    # -- inspection ----------------------------------------------------------------------

    def messages(self, channel_id: int | None = None, *, ephemeral: bool = False) -> list[JSON]:
        """The bot's messages, oldest first, as they are now (ephemeral ones only if asked)."""
        return [
            copy.deepcopy(m)
            for mid, m in sorted(self._messages.items())
            if (channel_id is None or m["channel_id"] == str(channel_id))
            and (mid in self._ephemeral) == ephemeral
            and not m["flags"] & LOADING
        ]

    def message(self, message_id: int) -> JSON:
        return copy.deepcopy(self._messages[message_id])

    def replies(self, interaction: Interaction) -> list[JSON]:
        """The messages that answer an interaction: the original response, then followups."""
        ids = [interaction.original_id] if interaction.ack_type in (4, 5) else []
        ids += interaction.followups
        found = [self._messages[i] for i in ids if i is not None]
        return [copy.deepcopy(m) for m in found if not m["flags"] & LOADING]

    def requests(self, route: str) -> list[Call]:
        """The calls matching a route like ``"POST /channels/{id}/messages"``."""
        pattern = re.compile(re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(route)))
        return [c for c in self.calls if pattern.fullmatch(c.route)]

    # -- gateway -------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        socket = web.WebSocketResponse(autoclose=True, max_msg_size=0)
        await socket.prepare(request)
        self._sockets.add(socket)
        compress = zlib.compressobj() if request.query.get("compress") == "zlib-stream" else None
        session: _Session | None = None
        try:
            await self._send(
                socket,
                compress,
                {"op": 10, "d": {"heartbeat_interval": int(self.heartbeat_interval * 1000)}},
            )
            async for frame in socket:
                if frame.type is not WSMsgType.TEXT:
                    continue
                payload = json.loads(frame.data)
                op, d = payload.get("op"), payload.get("d")
                if op == 1:
                    self.heartbeats += 1
                    if self.ack_heartbeats:
                        await self._send(socket, compress, {"op": 11})
                elif op == 2:
                    if d.get("token") != self.token:
                        await socket.close(code=4004, message=b"Authentication failed.")
                        break
                    session = _Session(id=secrets.token_hex(16), socket=socket, compress=compress)
                    self._session = session
                    self.gateway_log.append(("identify", d.get("intents")))
                    await self._ready(session, int(d.get("intents") or 0))
                elif op == 6:
                    known = self._session
                    if d.get("token") != self.token:
                        await socket.close(code=4004, message=b"Authentication failed.")
                        break
                    if known is None or known.id != d.get("session_id"):
                        await self._send(socket, compress, {"op": 9, "d": False})
                        continue
                    session, known.socket, known.compress = known, socket, compress
                    self.gateway_log.append(("resume", d.get("seq")))
                    for event in known.events:
                        if event["s"] > (d.get("seq") or 0):
                            await self._send(socket, compress, event)
                    await self._dispatch(known, "RESUMED", {})
                self._notify()
        finally:
            self._sockets.discard(socket)
            if session is not None and session.socket is socket:
                session.socket = None
            self._notify()
        return socket

    async def _ready(self, session: _Session, intents: int) -> None:
        ready = {
            "v": 10,
            "user": self.bot_user,
            "guilds": [{"id": g["id"], "unavailable": True} for g in self._guilds.values()],
            "session_id": session.id,
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(APP_ID), "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
        await self._dispatch(session, "READY", ready)
        if intents & GUILDS_INTENT:
            for guild in self._guilds.values():
                await self._dispatch(session, "GUILD_CREATE", self._guild_payload(guild))

    def _guild_payload(self, guild: JSON) -> JSON:
        gid = guild["id"]
        everyone = {"id": gid, "name": "@everyone", "permissions": "0", "position": 0,
                    "color": 0, "hoist": False, "managed": False, "mentionable": False}  # fmt: skip
        channels = [c for c in self._channels.values() if c.get("guild_id") == gid]
        return {
            **guild,
            "unavailable": False,
            "owner_id": "1",
            "member_count": 2,
            "large": False,
            "roles": [everyone],
            "emojis": [],
            "stickers": [],
            "features": [],
            "channels": [c for c in channels if c["type"] not in (10, 11, 12)],
            "threads": [],
            "members": [],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "joined_at": _now_iso(),
        }

    async def _dispatch(self, session: _Session, name: str, data: JSON) -> None:
        session.seq += 1
        event = {"op": 0, "t": name, "s": session.seq, "d": data}
        session.events.append(event)
        if session.socket is not None and not session.socket.closed:
            try:
                await self._send(session.socket, session.compress, event)
            except ConnectionError:  # dropped meanwhile: the event waits for a RESUME
                pass

    @staticmethod
    async def _send(socket: web.WebSocketResponse, compress: Any, payload: JSON) -> None:
        text = json.dumps(payload)
        if compress is None:
            await socket.send_str(text)
        else:
            await socket.send_bytes(
                compress.compress(text.encode()) + compress.flush(zlib.Z_SYNC_FLUSH)
            )

    def _interact(
        self, kind: int, user_id: int, channel_id: int, data: JSON, message_id: int | None
    ) -> Interaction:
        session = self._session
        if session is None:
            raise AssertionError("no gateway session: the bot never identified")
        channel = self._channels[channel_id]
        user = self._users.get(user_id) or self.add_user(user_id, f"user{user_id}")
        interaction = Interaction(
            id=next(_SNOWFLAKES),
            token=f"itok-{secrets.token_urlsafe(24)}",
            type=kind,
            user_id=user_id,
            channel_id=channel_id,
            guild_id=int(channel["guild_id"]) if channel.get("guild_id") else None,
            data=data,
            dispatched_at=time.monotonic(),
            message_id=message_id,
        )
        self.interactions[interaction.id] = interaction
        payload: JSON = {
            "id": str(interaction.id),
            "application_id": str(APP_ID),
            "type": kind,
            "data": data,
            "token": interaction.token,
            "version": 1,
            "channel_id": str(channel_id),
            "channel": {k: channel[k] for k in ("id", "type", "name", "guild_id") if k in channel},
            "app_permissions": "2248473465835073",
            "locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(interaction.guild_id or 0)},
            "context": 0,
            "attachment_size_limit": 10_485_760,
        }
        if interaction.guild_id is not None:
            payload["guild_id"] = str(interaction.guild_id)
            payload["guild_locale"] = "en-US"
            payload["member"] = {
                "user": user,
                "roles": [],
                "joined_at": _now_iso(),
                "deaf": False,
                "mute": False,
                "flags": 0,
                "permissions": "2248473465835073",
            }
        else:
            payload["user"] = user
        if message_id is not None:
            payload["message"] = copy.deepcopy(self._messages[message_id])
        asyncio.get_running_loop().create_task(
            self._dispatch(session, "INTERACTION_CREATE", payload)
        ).add_done_callback(lambda _: None)
        return interaction

    def _command(self, name: str, guild_id: int | None) -> JSON:
        for scope in (guild_id, None):
            for command in self.commands.get(scope, []):
                if command["name"] == name:
                    return command
        raise ValueError(f"no command /{name} synced for guild {guild_id} or globally")

    # -- REST ----------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        try:
            body, files = await _read_body(request)
        except ApiError as exc:
            return _error_response(exc)
        authorized = request.headers.get("Authorization") == f"Bot {self.token}"
        call = Call(request.method, path, dict(request.query), body, files, authorized)
        self.calls.append(call)
        self._notify()
        try:
            for fault in self._faults:
                if fault.route.fullmatch(call.route):
                    self._faults.remove(fault)
                    raise fault.error
            result = self._route(call)
        except ApiError as exc:
            return _error_response(exc)
        if result is None:
            return web.Response(status=204, headers=_bucket_headers(call))
        return _json(result, 200, _bucket_headers(call))

    def _route(self, call: Call) -> Any:
        webhook = not call.path.startswith(
            ("/users", "/oauth2", "/gateway", "/applications", "/channels")
        )
        if not webhook and not call.authorized:
            raise ApiError(401, 0, "401: Unauthorized")
        for pattern, method, handler in self._table():
            match = re.fullmatch(pattern, call.path)
            if match and method == call.method:
                return handler(call, *match.groups())
        raise ApiError(404, 0, "404: Not Found")

    def _table(self) -> list[tuple[str, str, Callable[..., Any]]]:
        return [
            (r"/users/@me", "GET", lambda c: self.bot_user),
            (r"/oauth2/applications/@me", "GET", lambda c: self._application()),
            (r"/gateway", "GET", lambda c: {"url": self.gateway_url}),
            (r"/gateway/bot", "GET", lambda c: self._gateway_bot()),
            (r"/applications/(\d+)/commands", "PUT", self._put_commands),
            (r"/applications/(\d+)/guilds/(\d+)/commands", "PUT", self._put_commands),
            (r"/interactions/(\d+)/([^/]+)/callback", "POST", self._callback),
            (r"/webhooks/(\d+)/([^/]+)", "POST", self._followup),
            (
                r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)",
                "PATCH",
                self._edit_webhook_message,
            ),
            (r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", "GET", self._get_webhook_message),
            (r"/channels/(\d+)", "GET", lambda c, cid: self._visible(int(cid))),
            (r"/channels/(\d+)/messages", "POST", self._create_message),
            (r"/channels/(\d+)/messages/(\d+)", "PATCH", self._edit_channel_message),
            (r"/channels/(\d+)/messages/(\d+)", "GET", self._get_channel_message),
            (r"/channels/(\d+)/messages/(\d+)/threads", "POST", self._thread_from_message),
            (r"/channels/(\d+)/threads", "POST", self._thread_without_message),
        ]

    def _application(self) -> JSON:
        return {
            "id": str(APP_ID),
            "name": "farmbot",
            "description": "",
            "icon": None,
            "bot_public": False,
            "bot_require_code_grant": False,
            "owner": _user(1, "owner"),
            "verify_key": "0" * 64,
            "flags": 0,
            "bot": self.bot_user,
        }

    def _gateway_bot(self) -> JSON:
        limit = {"total": 1000, "remaining": 999, "reset_after": 86_400_000, "max_concurrency": 1}
        return {"url": self.gateway_url, "shards": 1, "session_start_limit": limit}

    def _put_commands(self, call: Call, app_id: str, guild_id: str | None = None) -> list[JSON]:
        if int(app_id) != APP_ID:
            raise ApiError(403, 50001, "Missing Access")
        scope = int(guild_id) if guild_id else None
        if scope is not None and scope not in self._guilds:
            raise ApiError(403, 50001, "Missing Access")
        commands = call.json if isinstance(call.json, list) else []
        if len(commands) > 100:
            raise _invalid("_", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
        stored = []
        for command in commands:
            name = str(command.get("name", ""))
            if not re.fullmatch(r"[-_a-z0-9]{1,32}", name):
                raise _invalid("name", "APPLICATION_COMMAND_INVALID_NAME", f"invalid name {name!r}")
            if not 1 <= len(str(command.get("description", ""))) <= 100:
                raise _invalid("description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100")
            previous = next((c for c in self.commands.get(scope, []) if c["name"] == name), None)
            stored.append({
                **command,
                "id": previous["id"] if previous else str(next(_SNOWFLAKES)),
                "application_id": app_id,
                "version": str(next(_SNOWFLAKES)),
                **({"guild_id": guild_id} if guild_id else {}),
            })  # fmt: skip
        self.commands[scope] = stored
        return copy.deepcopy(stored)

    # interactions and webhooks

    def _interaction(self, interaction_id: int | None, token: str) -> Interaction:
        for interaction in self.interactions.values():
            if interaction.token == token and interaction_id in (None, interaction.id):
                if interaction.expired:
                    raise ApiError(401, 50027, "Invalid Webhook Token")
                return interaction
        raise ApiError(404, 10062 if interaction_id else 10015, "Unknown interaction")

    def _callback(self, call: Call, interaction_id: str, token: str) -> JSON:
        interaction = self._interaction(int(interaction_id), token)
        now = time.monotonic()
        if interaction.callbacks:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        if now - interaction.dispatched_at > ACK_WINDOW:
            raise ApiError(404, 10062, "Unknown interaction")
        body = call.json if isinstance(call.json, dict) else {}
        kind, data = int(body.get("type", 0)), body.get("data") or {}
        resource: JSON = {"type": kind}
        if kind in (4, 5):
            flags = int(data.get("flags") or 0) & EPHEMERAL
            if kind == 4:
                message = self._new_message(interaction.channel_id, data, call.files, flags=flags)
            else:
                message = self._store(
                    interaction.channel_id, {"content": "", "flags": flags | LOADING}
                )
            interaction.original_id = int(message["id"])
            if flags:
                self._ephemeral.add(int(message["id"]))
            resource["message"] = copy.deepcopy(message)
        elif kind == 9:
            if interaction.type not in (2, 3):
                raise _invalid(
                    "type", "INTERACTION_RESPONSE_TYPE_INVALID", "a modal answers no modal"
                )
            interaction.modal = _modal(data)
        elif kind in (6, 7):
            if interaction.message_id is None:
                raise _invalid("type", "INTERACTION_RESPONSE_TYPE_INVALID", "not a component")
            interaction.original_id = interaction.message_id
            if kind == 7:
                resource["message"] = self._edit(interaction.message_id, data, call.files)
        else:
            raise _invalid("type", "BASE_TYPE_CHOICES", f"unsupported callback type {kind}")
        interaction.callbacks.append(body)
        interaction.acked_at = now
        return {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                **({} if kind == 9 else {"response_message_id": str(interaction.original_id)}),
                "response_message_loading": kind == 5,
                "response_message_ephemeral": interaction.original_id in self._ephemeral,
            },
            "resource": resource,
        }

    def _acked(self, token: str) -> Interaction:
        interaction = self._interaction(None, token)
        if not interaction.callbacks:  # nothing to follow up yet
            raise ApiError(404, 10015, "Unknown Webhook")
        return interaction

    def _followup(self, call: Call, app_id: str, token: str) -> JSON:
        interaction = self._acked(token)
        data = call.json if isinstance(call.json, dict) else {}
        flags = int(data.get("flags") or 0) & EPHEMERAL
        original = self._messages.get(interaction.original_id or 0)
        if original is not None and original["flags"] & LOADING and interaction.ack_type == 5:
            # The first followup after a deferred "thinking" response replaces it.
            original["flags"] &= ~LOADING
            return self._edit(int(original["id"]), data, call.files)
        message = self._new_message(interaction.channel_id, data, call.files, flags=flags)
        if flags:
            self._ephemeral.add(int(message["id"]))
        interaction.followups.append(int(message["id"]))
        return message

    def _webhook_message_id(self, token: str, which: str) -> int:
        interaction = self._acked(token)
        if which == "@original":
            if interaction.original_id is None:
                raise ApiError(404, 10008, "Unknown Message")
            return interaction.original_id
        if int(which) not in interaction.followups:
            raise ApiError(404, 10008, "Unknown Message")
        return int(which)

    def _edit_webhook_message(self, call: Call, app_id: str, token: str, which: str) -> JSON:
        message_id = self._webhook_message_id(token, which)
        self._messages[message_id]["flags"] &= ~LOADING
        return self._edit(message_id, call.json or {}, call.files)

    def _get_webhook_message(self, call: Call, app_id: str, token: str, which: str) -> JSON:
        return copy.deepcopy(self._messages[self._webhook_message_id(token, which)])

    # channels and messages

    def _visible(self, channel_id: int) -> JSON:
        channel = self._channels.get(channel_id)
        if channel is None:
            raise unknown_channel()
        if channel_id in self._forbidden or int(channel.get("parent_id") or 0) in self._forbidden:
            raise ApiError(403, 50001, "Missing Access")
        return copy.deepcopy(channel)

    def _create_message(self, call: Call, channel_id: str) -> JSON:
        self._visible(int(channel_id))
        return self._new_message(int(channel_id), call.json or {}, call.files)

    def _get_channel_message(self, call: Call, channel_id: str, message_id: str) -> JSON:
        self._visible(int(channel_id))
        message = self._messages.get(int(message_id))
        if message is None or message["channel_id"] != channel_id:
            raise ApiError(404, 10008, "Unknown Message")
        return copy.deepcopy(message)

    def _edit_channel_message(self, call: Call, channel_id: str, message_id: str) -> JSON:
        self._get_channel_message(call, channel_id, message_id)
        return self._edit(int(message_id), call.json or {}, call.files)

    def _thread_from_message(self, call: Call, channel_id: str, message_id: str) -> JSON:
        self._get_channel_message(call, channel_id, message_id)
        if int(message_id) in self._channels:
            raise ApiError(400, 160004, "A thread has already been created for this message")
        return self._thread(int(channel_id), int(message_id), call.json or {})

    def _thread_without_message(self, call: Call, channel_id: str) -> JSON:
        self._visible(int(channel_id))
        return self._thread(int(channel_id), next(_SNOWFLAKES), call.json or {})

    def _thread(self, parent_id: int, thread_id: int, body: JSON) -> JSON:
        name = str(body.get("name", ""))
        if not 1 <= len(name) <= 100:
            raise _invalid("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        parent = self._channels[parent_id]
        thread = {
            "id": str(thread_id),
            "type": int(body.get("type") or 11),
            "guild_id": parent["guild_id"],
            "parent_id": str(parent_id),
            "name": name,
            "owner_id": self.bot_user["id"],
            "message_count": 0,
            "member_count": 1,
            "rate_limit_per_user": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": int(body.get("auto_archive_duration") or 4320),
                "archive_timestamp": _now_iso(),
                "locked": False,
            },
        }
        self._channels[thread_id] = thread
        return copy.deepcopy(thread)

    def _new_message(
        self, channel_id: int, data: JSON, files: list[Upload], *, flags: int = 0
    ) -> JSON:
        fields = _message_fields(data, files, self.attachments, creating=True)
        return self._store(channel_id, {**fields, "flags": flags | int(data.get("flags") or 0)})

    def _store(self, channel_id: int, fields: JSON) -> JSON:
        channel = self._channels.get(channel_id)
        if channel is None:
            raise unknown_channel()
        message_id = next(_SNOWFLAKES)
        message: JSON = {
            "id": str(message_id),
            "channel_id": str(channel_id),
            "author": self.bot_user,
            "content": "",
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": 0,
            "components": [],
            "flags": 0,
            **fields,
        }
        if channel.get("guild_id"):
            message["guild_id"] = channel["guild_id"]
        self._messages[message_id] = message
        return copy.deepcopy(message)

    def _edit(self, message_id: int, data: JSON, files: list[Upload]) -> JSON:
        message = self._messages[message_id]
        fields = _message_fields(data, files, self.attachments, creating=False)
        merged = {**message, **fields}
        if not (
            merged["content"] or merged["attachments"] or merged["components"] or merged["embeds"]
        ):
            raise ApiError(400, 50006, "Cannot send an empty message")
        if "flags" in data:  # only SUPPRESS_EMBEDS may change on an edit
            merged["flags"] = (message["flags"] & ~4) | (int(data["flags"] or 0) & 4)
        merged["edited_timestamp"] = _now_iso()
        message.clear()
        message.update(merged)
        return copy.deepcopy(message)


# -- helpers -----------------------------------------------------------------------------

_PHRASES = {
    400: "400: Bad Request",
    401: "401: Unauthorized",
    403: "403: Forbidden",
    404: "404: Not Found",
    500: "500: Internal Server Error",
    502: "502: Bad Gateway",
    503: "503: Service Unavailable",
}


def _user(user_id: int, name: str, *, bot: bool = False) -> JSON:
    user: JSON = {
        "id": str(user_id),
        "username": name,
        "global_name": name.title(),
        "discriminator": "0",
        "avatar": None,
        "public_flags": 0,
    }
    if bot:
        user.update(bot=True, verified=True, mfa_enabled=False, flags=0)
    return user


def _now_iso() -> str:
    return dtm.datetime.now(dtm.UTC).isoformat()


def _rate_limited(retry_after: float, scope: str) -> ApiError:
    headers = {
        "Retry-After": str(max(1, math.ceil(retry_after))),
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset-After": f"{retry_after:.3f}",
        "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
        "X-RateLimit-Scope": scope,
        "Via": "1.1 google",
    }
    if scope == "global":
        headers["X-RateLimit-Global"] = "true"
        del headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]
    else:
        headers["X-RateLimit-Bucket"] = "fakebucket429"
    body = {
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": scope == "global",
        "code": 0,
    }
    return ApiError(429, 0, "You are being rate limited.", headers=headers, body=body)


def _bucket_headers(call: Call) -> dict[str, str]:
    """Discord's rate-limit headers on a successful answer: plenty left in the bucket."""
    template = re.sub(r"\d{15,}", "{id}", call.route)
    return {
        "X-RateLimit-Limit": "50",
        "X-RateLimit-Remaining": "49",
        "X-RateLimit-Reset-After": "1.000",
        "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
        "X-RateLimit-Bucket": hashlib.sha1(template.encode()).hexdigest()[:16],
        "Via": "1.1 google",
    }


def _error_response(exc: ApiError) -> web.Response:
    return _json(exc.to_json(), exc.status, exc.headers)


def _json(body: Any, status: int, headers: dict[str, str]) -> web.Response:
    """A JSON answer with Discord's exact content type (discord.py parses no other)."""
    data = json.dumps(body).encode()
    return web.Response(
        body=data, status=status, headers={**headers, "Content-Type": "application/json"}
    )


async def _read_body(request: web.Request) -> tuple[Any, list[Upload]]:
    if request.content_type == "application/json":
        try:
            return await request.json(), []
        except ValueError:
            raise ApiError(400, 50109, "The request body contains invalid JSON.") from None
    if request.content_type.startswith("multipart/"):
        body: Any = None
        files: list[Upload] = []
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            data = await part.read()
            if part.name == "payload_json":
                body = json.loads(data)
            elif part.filename is not None:
                kind = part.headers.get("Content-Type", "application/octet-stream")
                files.append(Upload(part.name, part.filename, kind, bytes(data)))
        return body, files
    return None, []


def _message_fields(
    data: JSON, files: list[Upload], store: dict[int, bytes], *, creating: bool
) -> JSON:
    """Validate a message body (create or edit) the way Discord does; the fields it sets."""
    out: JSON = {}
    if "content" in data:
        content = data["content"] or ""
        if len(content) > MAX_CONTENT:
            raise _invalid("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        out["content"] = content
    if "components" in data:
        out["components"] = _components(data["components"] or [])
    if "allowed_mentions" in data:
        out["allowed_mentions"] = data["allowed_mentions"]
    if "embeds" in data:
        out["embeds"] = data["embeds"] or []
    attachments = _attachments(data, files, store)
    if attachments is not None:
        out["attachments"] = attachments
    if creating and not (
        out.get("content") or out.get("attachments") or out.get("components") or out.get("embeds")
    ):
        raise ApiError(400, 50006, "Cannot send an empty message")
    return out


def _components(rows: Any) -> list[JSON]:
    if not isinstance(rows, list) or len(rows) > MAX_ROWS:
        raise _invalid("components", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
    seen: set[str] = set()
    for r, row in enumerate(rows):
        buttons = row.get("components") if isinstance(row, dict) else None
        if (
            row.get("type") != 1
            or not isinstance(buttons, list)
            or not 1 <= len(buttons) <= MAX_ROW_BUTTONS
        ):
            raise _invalid(f"components.{r}", "COMPONENT_LAYOUT_WIDTH_EXCEEDED", "bad action row")
        for b, button in enumerate(buttons):
            where = f"components.{r}.components.{b}"
            custom_id = button.get("custom_id")
            if button.get("type") != 2:
                raise _invalid(where, "UNION_TYPE_CHOICES", "not a button")
            if len(str(button.get("label") or "")) > MAX_LABEL:
                raise _invalid(f"{where}.label", "BASE_TYPE_MAX_LENGTH", "Must be 80 or fewer.")
            if button.get("style") == 5:
                continue
            if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= MAX_CUSTOM_ID:
                raise _invalid(f"{where}.custom_id", "BASE_TYPE_BAD_LENGTH", "1 to 100 long")
            if custom_id in seen:
                raise _invalid(f"{where}.custom_id", "COMPONENT_CUSTOM_ID_DUPLICATED", "duplicated")
            seen.add(custom_id)
    return copy.deepcopy(rows)


def _modal(data: JSON) -> JSON:
    """Validate a modal (callback type 9) the way Discord does; return it as sent."""
    custom_id, title = data.get("custom_id"), data.get("title")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= MAX_CUSTOM_ID:
        raise _invalid("data.custom_id", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100")
    if not isinstance(title, str) or not 1 <= len(title) <= MAX_MODAL_LABEL:
        raise _invalid("data.title", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 45")
    components = data.get("components")
    if not isinstance(components, list) or not 1 <= len(components) <= MAX_ROWS:
        raise _invalid("data.components", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5")
    seen: set[str] = set()
    for i, component in enumerate(components):
        where = f"data.components.{i}"
        kind = component.get("type") if isinstance(component, dict) else None
        if kind == 18:  # a label around one input
            label, described = component.get("label"), component.get("description")
            if not isinstance(label, str) or not 1 <= len(label) <= MAX_MODAL_LABEL:
                raise _invalid(f"{where}.label", "BASE_TYPE_BAD_LENGTH", "1 to 45 long")
            if described is not None and len(str(described)) > MAX_DESCRIPTION:
                raise _invalid(f"{where}.description", "BASE_TYPE_MAX_LENGTH", "100 or fewer")
            inner, labelled = component.get("component"), True
        elif kind == 1:  # the older way: an action row holding one labelled input
            row = component.get("components")
            inner = row[0] if isinstance(row, list) and len(row) == 1 else None
            labelled = False
        else:
            raise _invalid(where, "UNION_TYPE_CHOICES", "a modal holds labels or action rows")
        _text_input(inner, f"{where}.component", labelled=labelled, seen=seen)
    return copy.deepcopy(data)


def _text_input(item: Any, where: str, *, labelled: bool, seen: set[str]) -> None:
    if not isinstance(item, dict) or item.get("type") != 4:
        raise _invalid(where, "UNION_TYPE_CHOICES", "not a text input")
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= MAX_CUSTOM_ID:
        raise _invalid(f"{where}.custom_id", "BASE_TYPE_BAD_LENGTH", "1 to 100 long")
    if custom_id in seen:
        raise _invalid(f"{where}.custom_id", "COMPONENT_CUSTOM_ID_DUPLICATED", "duplicated")
    seen.add(custom_id)
    if item.get("style") not in (1, 2):
        raise _invalid(f"{where}.style", "BASE_TYPE_CHOICES", "1 (short) or 2 (paragraph)")
    label = item.get("label")
    if labelled and label is not None:
        raise _invalid(f"{where}.label", "COMPONENT_INVALID", "a labelled input has no label")
    if not labelled and (not isinstance(label, str) or not 1 <= len(label) <= MAX_MODAL_LABEL):
        raise _invalid(f"{where}.label", "BASE_TYPE_BAD_LENGTH", "1 to 45 long")
    for key, top in (("min_length", MAX_INPUT), ("max_length", MAX_INPUT)):
        number = item.get(key)
        if number is not None and not (isinstance(number, int) and 0 <= number <= top):
            raise _invalid(f"{where}.{key}", "NUMBER_TYPE_MAX", f"0 to {top}")
    if len(str(item.get("value") or "")) > MAX_INPUT:
        raise _invalid(f"{where}.value", "BASE_TYPE_MAX_LENGTH", f"{MAX_INPUT} or fewer")
    if len(str(item.get("placeholder") or "")) > MAX_CUSTOM_ID:
        raise _invalid(f"{where}.placeholder", "BASE_TYPE_MAX_LENGTH", "100 or fewer")


def _attachments(data: JSON, files: list[Upload], store: dict[int, bytes]) -> list[JSON] | None:
    if not files and "attachments" not in data:
        return None
    described = {str(a.get("id")): a for a in data.get("attachments") or []}
    out: list[JSON] = []
    for upload in files:
        index = upload.name.removeprefix("files[").removesuffix("]")
        meta = described.get(index, {})
        attachment_id = next(_SNOWFLAKES)
        store[attachment_id] = upload.data
        out.append({
            "id": str(attachment_id),
            "filename": meta.get("filename") or upload.filename,
            "size": len(upload.data),
            "url": f"https://cdn.example.invalid/attachments/{attachment_id}",
            "proxy_url": f"https://media.example.invalid/attachments/{attachment_id}",
            "content_type": upload.content_type,
        })  # fmt: skip
    return out
