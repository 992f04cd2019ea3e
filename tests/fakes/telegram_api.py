"""A fake Telegram Bot API on 127.0.0.1 for driving the real python-telegram-bot in tests.

It answers like Telegram (``{"ok": ..., "result"/"description": ...}`` with the same HTTP
status), long-polls ``getUpdates``, validates what adapters commonly get wrong (message
length, HTML markup, callback data, unknown chats, no-op edits) and records every call.
People can send documents and photos (``push_document``), which the bot downloads like
from Telegram (``getFile``, then the file URL); ``stalled`` makes ``getUpdates`` hang.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any

from aiohttp import web

from tests.fakes.site import listen

Params = dict[str, Any]

MAX_TEXT, MAX_CAPTION = 4096, 1024
CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
_JSON_FIELDS = frozenset(
    "reply_markup allowed_updates commands scope entities caption_entities "
    "link_preview_options reply_parameters".split()
)
_INT_FIELDS = frozenset("chat_id message_id offset limit timeout message_thread_id".split())
_BOOL_FIELDS = frozenset("show_alert drop_pending_updates disable_notification".split())
_HIDDEN_UPDATES = frozenset("chat_member message_reaction message_reaction_count".split())
_BUTTON_ACTIONS = frozenset(
    "callback_data url web_app login_url pay callback_game copy_text switch_inline_query "
    "switch_inline_query_current_chat switch_inline_query_chosen_chat".split()
)
_TAGS = dict(
    pair.split(":")
    for pair in "b:bold strong:bold i:italic em:italic u:underline ins:underline "
    "s:strikethrough strike:strikethrough del:strikethrough code:code pre:pre a:text_link "
    "span:spoiler tg-spoiler:spoiler blockquote:blockquote".split()
)
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)([^<>]*)>")
_ATTR = re.compile(r"""([a-zA-Z-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")
_CHAR_REF = re.compile(r"&(?:(lt|gt|amp|quot)|#([0-9]{1,8})|#[xX]([0-9a-fA-F]{1,8}));")
_NAMED_REFS = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,})?")


class ApiError(Exception):
    """An error answer: HTTP status, Telegram description and optional ``parameters``."""

    def __init__(self, status: int, description: str, parameters: Params | None = None) -> None:
        super().__init__(description)
        self.status, self.description, self.parameters = status, description, parameters


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


@dataclass(frozen=True)
class Upload:
    """A file sent in a multipart body."""

    filename: str
    content_type: str
    data: bytes


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's limits and entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def parse_html(source: str) -> tuple[str, list[Params]]:
    """Parse Telegram's HTML subset into (plain text, entities); raise ApiError like Telegram."""

    def fail(reason: str) -> ApiError:
        return _bad(f"can't parse entities: {reason}")

    def at(index: int) -> str:
        return f"at byte offset {len(source[:index].encode())}"

    out: list[str] = []
    pos = 0  # UTF-16 offset into the plain text
    stack: list[tuple[str, int, dict[str, str], str]] = []
    entities: list[Params] = []
    i = 0
    while i < len(source):
        char = source[i]
        if char == "<":
            m = _TAG.match(source, i)
            if m is None:
                raise fail(f"Can't find end of the tag {at(i)}")
            closing, name, rest = m.group(1) == "/", m.group(2).lower(), m.group(3)
            if name not in _TAGS:
                raise fail(f'Unsupported {"end" if closing else "start"} tag "{name}" {at(i)}')
            if not closing:
                attrs = {k.lower(): a or b or c for k, a, b, c in _ATTR.findall(rest)}
                if name == "span" and attrs.get("class") != "tg-spoiler":
                    raise fail(f'Tag "span" must have class "tg-spoiler" {at(i)}')
                stack.append((name, pos, attrs, rest))
            elif not stack:
                raise fail(f'Unexpected end tag "{name}" {at(i)}')
            elif stack[-1][0] != name:
                expected = stack[-1][0]
                raise fail(
                    f'Unmatched end tag {at(i)}, expected "</{expected}>", found "</{name}>"'
                )
            else:
                _, start, attrs, rest = stack.pop()
                entity: Params = {"type": _TAGS[name], "offset": start, "length": pos - start}
                lang = attrs.get("class", "")
                if name == "code" and stack and stack[-1][0] == "pre":
                    if lang.startswith("language-"):
                        stack[-1][2]["language"] = lang.removeprefix("language-")
                    entity = {}
                elif name == "pre" and "language" in attrs:
                    entity["language"] = attrs["language"]
                elif name == "a":
                    entity = {**entity, "url": attrs["href"]} if attrs.get("href") else {}
                elif name == "blockquote" and re.search(r"\bexpandable\b", rest):
                    entity["type"] = "expandable_blockquote"
                if entity and entity["length"] > 0:
                    entities.append(entity)
            i = m.end()
            continue
        if char == "&":
            ref = _CHAR_REF.match(source, i)
            if ref is None:
                raise fail(f"Character entity expected {at(i)}; escape '&' as &amp;")
            named, dec, hexa = ref.groups()
            code = int(dec) if dec else int(hexa, 16) if hexa else -1
            if code > 0x10FFFF or 0xD800 <= code < 0xE000:
                raise fail(f"Invalid character entity {at(i)}")
            char = _NAMED_REFS[named] if named else chr(code)
            i = ref.end()
        else:
            i += 1
        out.append(char)
        pos += utf16_len(char)
    if stack:
        raise fail(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


class FakeTelegram:
    """A Telegram Bot API server for one bot, as an async context manager."""

    def __init__(
        self,
        token: str = "123:ABC",
        *,
        bot_username: str = "farmbot_test_bot",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self.bot_user: Params = {
            "id": int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": "FarmBot",
            "username": bot_username,
        }
        self.calls: list[tuple[str, Params]] = []
        self.documents: list[Params] = []
        self.answered_callbacks: list[Params] = []
        self.webhook_url = ""
        self._clock = clock
        self._chats: dict[int, Params] = {}
        self._users: dict[int, Params] = {}
        self._messages: dict[tuple[int, int], Params] = {}
        self._bot_messages: list[tuple[int, int]] = []
        self._next_message_id: dict[int, int] = {}
        self._updates: deque[Params] = deque()
        self._update_ids = itertools.count(1)
        self._allowed_updates: list[str] | None = None
        self._open_callbacks: set[str] = set()
        self._callback_ids = itertools.count(1)
        self._commands: dict[tuple[str, str], list[Params]] = {}
        self._faults: dict[str, deque[ApiError]] = {}
        self._conflict = False
        self._stalled = False
        self._files: dict[str, bytes] = {}
        self._held: dict[int, int] = {}  # chat id -> retry_after of the 429 it answers
        self._poll_generation = 0
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._methods: dict[str, Callable[[Params], Any]] = {
            "getMe": lambda p: self.bot_user,
            "deleteWebhook": self._delete_webhook,
            "setWebhook": self._set_webhook,
            "getWebhookInfo": lambda p: {
                "url": self.webhook_url,
                "has_custom_certificate": False,
                "pending_update_count": len(self._updates),
            },
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_reply_markup,
            "editMessageCaption": self._edit_caption,
            "getFile": self._get_file,
            "answerCallbackQuery": self._answer_callback,
            "setMyCommands": self._set_commands,
            "getMyCommands": lambda p: self._commands.get(self._scope_key(p), []),
            "sendDocument": self._send_document,
            "sendChatAction": lambda p: bool(self._chat(p)),
            "close": lambda p: True,
            "logOut": lambda p: True,
        }
        self._by_lower = {name.lower(): name for name in [*self._methods, "getUpdates"]}

    def __repr__(self) -> str:
        return (
            f"<FakeTelegram port={self._port} up={self._runner is not None} "
            f"calls={len(self.calls)} pending_updates={len(self._updates)} "
            f"bot_messages={len(self._bot_messages)}>"
        )

    # -- lifetime ------------------------------------------------------------------------

    async def __aenter__(self) -> FakeTelegram:
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
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.*}", self._download)
        self._runner, self._port = await listen(app, self._port)

    async def go_down(self) -> None:
        """Stop listening and drop open connections; waiting getUpdates calls answer []."""
        runner, self._runner = self._runner, None
        self._notify()
        if runner is not None:
            await runner.cleanup()

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder().base_url()`` / ``Bot(base_url=)``; PTB appends the token."""
        return f"http://127.0.0.1:{self._port}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``base_file_url``; what people sent is downloaded from here."""
        return f"http://127.0.0.1:{self._port}/file/bot"

    # -- scripting -----------------------------------------------------------------------

    def add_chat(
        self,
        chat_id: int,
        *,
        type: str = "private",
        title: str | None = None,
        username: str | None = None,
        first_name: str = "Tester",
    ) -> Params:
        """Register a chat the bot may send to; return its Chat object."""
        chat: Params = {"id": chat_id, "type": type}
        if type == "private":
            chat["first_name"] = first_name
        else:
            chat["title"] = title or f"Test {type} {chat_id}"
        if username:
            chat["username"] = username
        return self._chats.setdefault(chat_id, chat)

    def push_message(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
        message_thread_id: int | None = None,
        first_name: str = "Tester",
        username: str | None = None,
        reply_to: Params | None = None,
    ) -> Params:
        """Queue an update for a user's text message (registering chat and user); return it.

        ``reply_to``: a message in the same chat this one replies to (as a person's client
        sends it when they answer a ForceReply).
        """
        user = self._users[user_id] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        cid = user_id if chat_id is None else chat_id
        if cid == user_id:
            chat = self.add_chat(cid, username=username, first_name=first_name)
        else:
            chat = self.add_chat(cid, type=chat_type)
        replied = None
        if reply_to is not None:
            replied = self._replied(chat, int(reply_to["message_id"]), fallback=False)
        message = self._store(
            chat, user, text=text, thread_id=message_thread_id, reply_to_message=replied
        )
        if m := _COMMAND.match(text):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(m[0])}]
        self._push({"message": message})
        return copy.deepcopy(message)

    def _replied(self, chat: Params, message_id: int, *, fallback: bool) -> Params | None:
        """The message replied to, as a reply carries it (without its own reply)."""
        found = self._messages.get((chat["id"], message_id))
        if found is None:
            if fallback:  # allow_sending_without_reply: sent as a plain message
                return None
            raise _bad("message to be replied not found")
        replied = copy.deepcopy(found)
        replied.pop("reply_to_message", None)
        return replied

    def push_document(
        self,
        user_id: int,
        caption: str,
        filename: str,
        data: bytes,
        *,
        photo: bool = False,
        chat_id: int | None = None,
    ) -> Params:
        """Queue a user's document (or photo) with ``caption``; return the message."""
        user = self._users.setdefault(
            user_id, {"id": user_id, "is_bot": False, "first_name": "Tester"}
        )
        cid = user_id if chat_id is None else chat_id
        chat = self.add_chat(cid) if cid == user_id else self.add_chat(cid, type="group")
        file_id = f"FILE{len(self._files) + 1}"
        self._files[file_id] = data
        unique = f"U{file_id}"
        fields: Params = {"caption": caption}
        if photo:  # the sizes Telegram made, smallest first; the largest is the upload
            small = {"file_id": f"{file_id}s", "file_unique_id": f"{unique}s", "width": 90}
            self._files[f"{file_id}s"] = data[:16]
            fields["photo"] = [
                {**small, "height": 90, "file_size": len(data[:16])},
                {"file_id": file_id, "file_unique_id": unique, "width": 800, "height": 600,
                 "file_size": len(data)},
            ]  # fmt: skip
        else:
            fields["document"] = {
                "file_id": file_id,
                "file_unique_id": unique,
                "file_name": filename,
                "mime_type": "application/octet-stream",
                "file_size": len(data),
            }
        message = self._store(chat, user, **fields)
        if m := _COMMAND.match(caption):
            message["caption_entities"] = [
                {"type": "bot_command", "offset": 0, "length": len(m[0])}
            ]
        self._push({"message": message})
        return copy.deepcopy(message)

    @property
    def stalled(self) -> bool:
        """While true, getUpdates never answers (Telegram stopped delivering)."""
        return self._stalled

    @stalled.setter
    def stalled(self, value: bool) -> None:
        self._stalled = value
        self._notify()

    def push_callback(self, user_id: int, message: Params, data: str) -> str:
        """Queue a press of the button with ``data`` on a bot message; return the query id."""
        current = self._messages.get((message["chat"]["id"], message["message_id"]))
        if current is None:
            raise ValueError(f"unknown message {message['message_id']}")
        rows = current.get("reply_markup", {}).get("inline_keyboard", [])
        offered = [b.get("callback_data") for row in rows for b in row]
        if data not in offered:
            raise ValueError(f"message has no button with callback_data {data!r}: {offered}")
        query_id = str(next(self._callback_ids))
        self._open_callbacks.add(query_id)
        query = {"id": query_id, "message": copy.deepcopy(current), "data": data}
        query["from"] = self._users.get(
            user_id, {"id": user_id, "is_bot": False, "first_name": "Tester"}
        )
        query["chat_instance"] = str(current["chat"]["id"])
        self._push({"callback_query": query})
        return query_id

    def fail_next(
        self,
        method: str,
        status: int,
        *,
        retry_after: int | None = None,
        count: int = 1,
        description: str | None = None,
    ) -> None:
        """Answer the next ``count`` calls of ``method`` with an error (429 gets retry_after)."""
        params = {"retry_after": retry_after or 1} if status == 429 else None
        if description is None and params:
            description = f"Too Many Requests: retry after {params['retry_after']}"
        error = ApiError(status, description or HTTPStatus(status).phrase, params)
        self._faults.setdefault(method.lower(), deque()).extend([error] * count)

    def hold(self, chat_id: int, retry_after: int) -> None:
        """Answer every message to ``chat_id`` with 429 (``retry_after``) until released."""
        self._held[chat_id] = retry_after

    def release(self, chat_id: int) -> None:
        """Take messages to ``chat_id`` again."""
        self._held.pop(chat_id, None)

    @property
    def conflict(self) -> bool:
        """While true, getUpdates answers 409 Conflict (another instance is polling)."""
        return self._conflict

    @conflict.setter
    def conflict(self, value: bool) -> None:
        self._conflict = value
        self._notify()

    # -- inspection ----------------------------------------------------------------------

    def sent_messages(self, chat_id: int | None = None) -> list[Params]:
        """The bot's messages, oldest first, as they are now (after edits)."""
        keys = [k for k in self._bot_messages if chat_id is None or k[0] == chat_id]
        return [copy.deepcopy(self._messages[k]) for k in keys]

    @property
    def commands(self) -> list[Params]:
        """The command list for the default scope and language."""
        return copy.deepcopy(self._commands.get(self._scope_key({}), []))

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[Params], bool] | None = None,
        timeout: float = 5.0,
    ) -> Params:
        """Return the params of the first (possibly past) call of ``method`` that matches."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for name, params in self.calls:
                if name == method and (predicate is None or predicate(params)):
                    return params
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                called = [name for name, _ in self.calls]
                raise AssertionError(
                    f"no matching {method} call within {timeout}s; calls: {called}"
                )
            await self._wait_change(remaining)

    # -- HTTP plumbing -------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, seconds: float) -> None:
        """Sleep until the next call, pushed update or state change, at most ``seconds``."""
        event = self._changed
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            pass

    async def _handle(self, request: web.Request) -> web.Response:
        raw_method = request.match_info["method"]
        method = self._by_lower.get(raw_method.lower(), raw_method)
        try:
            params = await self._read_params(request)
            self.calls.append((method, params))
            self._notify()
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            if faults := self._faults.get(method.lower()):
                raise faults.popleft()
            if method == "getUpdates":
                result: Any = await self._get_updates(params)
            elif method in self._methods:
                result = self._methods[method](params)
            else:
                raise ApiError(404, "Not Found")
        except ApiError as exc:
            body: Params = {"ok": False, "error_code": exc.status, "description": exc.description}
            if exc.parameters:
                body["parameters"] = exc.parameters
            return web.json_response(body, status=exc.status)
        return web.json_response({"ok": True, "result": result})

    async def _read_params(self, request: web.Request) -> Params:
        raw: Params = dict(request.query)
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _bad("can't parse JSON body") from None
            if not isinstance(body, dict):
                raise _bad("parameters must be a JSON object")
            raw.update(body)
        elif request.method == "POST":
            for key, field in (await request.post()).items():
                if isinstance(field, web.FileField):
                    raw[key] = Upload(field.filename, field.content_type, field.file.read())
                else:
                    raw[key] = field
        for key, value in raw.items():
            if isinstance(value, str) and value.startswith("attach://"):
                raw[key] = raw.get(value.removeprefix("attach://"), value)
        return {key: _coerce(key, value) for key, value in raw.items()}

    # -- updates -------------------------------------------------------------------------

    def _push(self, update: Params) -> None:
        self._updates.append({"update_id": next(self._update_ids), **update})
        self._notify()

    def _pending(self, limit: int) -> list[Params]:
        def allowed(update: Params) -> bool:
            kind = next(k for k in update if k != "update_id")
            if self._allowed_updates is None:
                return kind not in _HIDDEN_UPDATES
            return kind in self._allowed_updates

        return [u for u in self._updates if allowed(u)][:limit]

    async def _get_updates(self, params: Params) -> list[Params]:
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()  # an older long poll still waiting is now terminated with 409
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = params.get("offset")
        if isinstance(offset, int) and offset < 0:
            while len(self._updates) > -offset:
                self._updates.popleft()
        elif isinstance(offset, int):
            while self._updates and self._updates[0]["update_id"] < offset:
                self._updates.popleft()
        if "allowed_updates" in params:
            self._allowed_updates = list(params["allowed_updates"] or []) or None
        limit = max(1, min(100, params.get("limit") or 100))
        deadline = asyncio.get_running_loop().time() + float(params.get("timeout") or 0)
        while True:
            if self._conflict or generation != self._poll_generation:
                raise ApiError(409, CONFLICT)
            if self._stalled and self._runner is not None:
                await self._wait_change(3600)
                continue
            batch = self._pending(limit)
            remaining = deadline - asyncio.get_running_loop().time()
            if batch or remaining <= 0 or self._runner is None:
                return batch
            await self._wait_change(remaining)

    def _delete_webhook(self, params: Params) -> bool:
        self.webhook_url = ""
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _set_webhook(self, params: Params) -> bool:
        self.webhook_url = str(params.get("url") or "")
        return True

    # -- messages ------------------------------------------------------------------------

    def _chat(self, params: Params) -> Params:
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            raise _bad("chat_id is empty")
        if isinstance(chat_id, str):
            found = [c for c in self._chats.values() if f"@{c.get('username')}" == chat_id]
            chat = found[0] if found else None
        else:
            chat = self._chats.get(chat_id)
        if chat is None:
            raise _bad("chat not found")
        return chat

    def _store(
        self, chat: Params, sender: Params, *, thread_id: int | None = None, **fields: Any
    ) -> Params:
        message_id = self._next_message_id.get(chat["id"], 1)
        self._next_message_id[chat["id"]] = message_id + 1
        message: Params = {
            "message_id": message_id,
            "date": int(self._clock()),
            "chat": chat,
            "from": sender,
        }
        if thread_id is not None:
            message.update(message_thread_id=thread_id, is_topic_message=True)
        message.update({k: v for k, v in fields.items() if v})
        self._messages[chat["id"], message_id] = message
        return message

    def _send_message(self, params: Params) -> Params:
        text, entities = _formatted(params, "text", MAX_TEXT, "message is too long")
        return self._send(params, text=text, entities=entities)

    def _send(self, params: Params, **fields: Any) -> Params:
        chat = self._chat(params)
        if chat["id"] in self._held:
            wait = self._held[chat["id"]]
            raise ApiError(429, f"Too Many Requests: retry after {wait}", {"retry_after": wait})
        markup = _inline_markup(params.get("reply_markup"))
        thread_id = params.get("message_thread_id")
        replying = params.get("reply_parameters")
        replied = None
        if replying is not None:
            if not isinstance(replying, dict) or not isinstance(replying.get("message_id"), int):
                raise _bad("can't parse reply parameters JSON object")
            fallback = bool(replying.get("allow_sending_without_reply"))
            replied = self._replied(chat, replying["message_id"], fallback=fallback)
        message = self._store(
            chat,
            self.bot_user,
            thread_id=thread_id,
            reply_markup=markup,
            reply_to_message=replied,
            **fields,
        )
        self._bot_messages.append((chat["id"], message["message_id"]))
        return message

    def _editable(self, params: Params) -> Params:
        if params.get("inline_message_id"):
            raise _bad("inline messages are not supported by FakeTelegram")
        chat = self._chat(params)
        if params.get("message_id") is None:
            raise _bad("message identifier is not specified")
        message = self._messages.get((chat["id"], params["message_id"]))
        if message is None:
            raise _bad("message to edit not found")
        if message["from"]["id"] != self.bot_user["id"]:
            raise _bad("message can't be edited")
        return message

    def _apply_edit(self, message: Params, changes: Params) -> Params:
        if all((message.get(k) or None) == (v or None) for k, v in changes.items()):
            raise _bad(
                "message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup "
                "of the message"
            )
        for key, value in changes.items():
            if value:
                message[key] = value
            else:
                message.pop(key, None)
        message["edit_date"] = int(self._clock())
        return message

    def _edit_message_text(self, params: Params) -> Params:
        message = self._editable(params)
        if "text" not in message:
            raise _bad("there is no text in the message to edit")
        text, entities = _formatted(params, "text", MAX_TEXT, "message is too long")
        markup = _inline_markup(params.get("reply_markup"))
        return self._apply_edit(
            message, {"text": text, "entities": entities, "reply_markup": markup}
        )

    def _edit_reply_markup(self, params: Params) -> Params:
        message = self._editable(params)
        markup = _inline_markup(params.get("reply_markup"))
        return self._apply_edit(message, {"reply_markup": markup})

    def _edit_caption(self, params: Params) -> Params:
        message = self._editable(params)
        if "document" not in message and "photo" not in message:
            raise _bad("there is no caption in the message to edit")
        caption, entities = _formatted(
            params, "caption", MAX_CAPTION, "message caption is too long"
        )
        markup = _inline_markup(params.get("reply_markup"))
        changes = {"caption": caption, "caption_entities": entities, "reply_markup": markup}
        return self._apply_edit(message, changes)

    def _get_file(self, params: Params) -> Params:
        file_id = str(params.get("file_id") or "")
        if file_id not in self._files:
            raise _bad("invalid file_id")
        size = len(self._files[file_id])
        path = f"documents/{file_id}"
        return {"file_id": file_id, "file_unique_id": f"U{file_id}", "file_size": size,
                "file_path": path}  # fmt: skip

    async def _download(self, request: web.Request) -> web.Response:
        self.calls.append(("download", {"path": request.match_info["path"]}))
        self._notify()
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401}, status=401)
        file_id = request.match_info["path"].removeprefix("documents/")
        if file_id not in self._files:
            return web.json_response({"ok": False, "error_code": 404}, status=404)
        return web.Response(body=self._files[file_id], content_type="application/octet-stream")

    def _send_document(self, params: Params) -> Params:
        self._chat(params)
        upload = params.get("document")
        if not isinstance(upload, Upload):  # file_id / URL re-sends are not modelled
            raise _bad("wrong file identifier/HTTP URL specified")
        caption, entities = _formatted(
            params, "caption", MAX_CAPTION, "message caption is too long"
        )
        file_id = f"DOC{len(self.documents) + 1}"
        document = {
            "file_id": file_id,
            "file_unique_id": f"U{file_id}",
            "file_size": len(upload.data),
        }
        document.update(file_name=upload.filename, mime_type=upload.content_type)
        message = self._send(params, document=document, caption=caption, caption_entities=entities)
        record = {"chat_id": message["chat"]["id"], "message_id": message["message_id"]}
        record.update(filename=upload.filename, caption=caption, data=upload.data)
        self.documents.append(record)
        return message

    def _answer_callback(self, params: Params) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        if query_id not in self._open_callbacks:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        if len(str(params.get("text", ""))) > 200:
            raise _bad("MESSAGE_TOO_LONG")
        self._open_callbacks.discard(query_id)
        self.answered_callbacks.append(params)
        return True

    @staticmethod
    def _scope_key(params: Params) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    def _set_commands(self, params: Params) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad("commands must be a list of at most 100 BotCommand objects")
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        self._commands[self._scope_key(params)] = commands
        return True


def _coerce(key: str, value: Any) -> Any:
    """Turn a form field (always a string) into what a JSON body would have carried."""
    if not isinstance(value, str):
        return value
    if key in _JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError:
            raise _bad(f"can't parse {key} JSON object") from None
    if key in _INT_FIELDS:
        try:
            return float(value) if key == "timeout" else int(value)
        except ValueError:
            if key == "chat_id":  # "@channelusername"
                return value
            raise _bad(f"invalid {key} specified") from None
    if key in _BOOL_FIELDS:
        return value.lower() in ("true", "1")
    return value


def _formatted(params: Params, field: str, limit: int, too_long: str) -> tuple[str, list[Params]]:
    """Apply ``parse_mode`` to a text field and enforce Telegram's length limit."""
    raw = params.get(field)
    mode = str(params.get("parse_mode") or "")
    if raw is None or (field == "text" and not str(raw).strip()):
        if field == "text":
            raise _bad("message text is empty")
        return "", []
    if mode.lower() == "html":
        text, entities = parse_html(str(raw))
    elif mode.lower() in ("", "markdown", "markdownv2"):  # Markdown is passed through unparsed
        text = str(raw)
        entities = list(params.get("entities" if field == "text" else "caption_entities") or [])
    else:
        raise _bad(f"unsupported parse_mode {mode!r}")
    if field == "text" and not text.strip():
        raise _bad("message text is empty")
    if utf16_len(text) > limit:
        raise _bad(too_long)
    return text, entities


def _inline_markup(markup: Any) -> Params | None:
    """Validate reply_markup; return it when it is an inline keyboard (echoed on the message)."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    if "force_reply" in markup:
        placeholder = markup.get("input_field_placeholder")
        if markup["force_reply"] is not True:
            raise _bad("can't parse ForceReply: force_reply must be true")
        if placeholder is not None and not 1 <= len(str(placeholder)) <= 64:
            raise _bad("can't parse ForceReply: input_field_placeholder must be 1-64 characters")
        return None  # a Message never shows it
    rows = markup.get("inline_keyboard")
    if rows is None:
        return None
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise _bad("can't parse inline keyboard: expected an Array of Arrays of buttons")
    for button in (b for row in rows for b in row):
        if not isinstance(button, dict) or not button.get("text"):
            raise _bad("can't parse inline keyboard button: Text is empty")
        if not _BUTTON_ACTIONS & button.keys():
            reason = "Text buttons are unallowed in the inline keyboard"
            raise _bad(f"can't parse inline keyboard button: {reason}")
        data = button.get("callback_data")
        if data is not None and not 1 <= len(str(data).encode()) <= 64:
            raise _bad("BUTTON_DATA_INVALID")
    return markup if rows else None
