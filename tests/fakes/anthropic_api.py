"""A fake Anthropic Messages API on 127.0.0.1 that the real Claude Code CLI talks to.

Point Claude Code at it with ``ANTHROPIC_BASE_URL`` (see ``tests/agent_clis.py``). Tests
script the model: a queue of turns (:class:`Text`, :class:`ToolUse`, :class:`Failure`),
each consumed by the next *main* request (one that offers tools: the agent loop). The
request that carries a tool's result gets the next scripted turn, so ``[ToolUse(...),
Text("done")]`` is a whole tool round trip. Side requests (session title, summaries,
quota probes: no tools offered) are answered on their own and never use the queue.

Every request is recorded (:attr:`FakeAnthropic.requests`) so a test can assert what the
CLI sent, e.g. that the ``tool_result`` after a deny carries the reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.model_api import Request, ScriptedApi

Json = dict[str, Any]

MODEL = "claude-sonnet-4-5"
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class Text:
    """Answer with this text and end the turn (``stop_reason: end_turn``).

    ``chunk_delay`` seconds pass between words, so a test can catch the CLI streaming.
    """

    text: str
    chunk_delay: float = 0.0


@dataclass(frozen=True)
class ToolUse:
    """Call a tool (``stop_reason: tool_use``), optionally after some text.

    ``input`` is the tool's arguments, e.g. ``{"command": "touch a.txt"}`` for ``Bash``.
    """

    name: str
    input: Json
    text: str = ""


def bash(command: str, description: str = "Run the requested command") -> ToolUse:
    """A ``Bash`` tool call."""
    return ToolUse("Bash", {"command": command, "description": description})


@dataclass(frozen=True)
class Failure:
    """Answer the next ``times`` main requests with an API error (the CLI's retries count).

    ``status`` 429 (rate limit), 500 (api_error), 529 (overloaded) ...; ``headers`` are
    added to the answer, e.g. ``{"retry-after": "1"}``.
    """

    status: int
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


@dataclass(frozen=True)
class Hang:
    """Start the answer (with ``text``, if any), then send nothing until
    :meth:`FakeAnthropic.release`."""

    text: str = ""


Turn = Text | ToolUse | Failure | Hang


@dataclass(frozen=True)
class Recorded(Request):
    """One request as the fake received it."""

    @property
    def is_main(self) -> bool:
        """True for an agent-loop request (it offers tools); False for side requests."""
        return self.path == "/v1/messages" and bool(self.body.get("tools"))

    @property
    def last_user_content(self) -> list[Json]:
        """The content blocks of the last user message (strings become one text block)."""
        for message in reversed(self.body.get("messages", [])):
            if message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, str):
                    return [{"type": "text", "text": content}]
                return list(content or [])
        return []

    def tool_results(self) -> list[Json]:
        """The ``tool_result`` blocks of the last user message."""
        return [b for b in self.last_user_content if b.get("type") == "tool_result"]

    def text(self) -> str:
        """All text of the last user message, tool results included, for ``in`` checks."""
        parts: list[str] = []
        for block in self.last_user_content:
            parts.append(_block_text(block))
        return "\n".join(parts)


def _block_text(block: Json) -> str:
    if block.get("type") == "text":
        return str(block.get("text", ""))
    content = block.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_block_text(b) for b in content if isinstance(b, dict))
    return ""


def tool_result_text(block: Json) -> str:
    """The text inside one ``tool_result`` block."""
    return _block_text(block)


class FakeAnthropic(ScriptedApi[Turn, Failure, Recorded]):
    """The Messages API for one test, as an async context manager (``fake.url``)."""

    def __init__(self, turns: list[Turn] | None = None, *, model: str = MODEL) -> None:
        super().__init__(turns, model=model, name="Anthropic", record=Recorded)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_route("*", "/{tail:.*}", self._other)

    async def _other(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        self.unhandled.append(recorded)
        return _error(404, f"fake Anthropic: no route {request.method} {request.path}")

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        return web.json_response({"input_tokens": max(1, len(json.dumps(recorded.body)) // 4)})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        turn: Turn
        if not recorded.is_main:
            turn = Text(self._side_answer(recorded))
        elif self._failures:
            failure = self._failures[0]
            remaining = failure.times - 1
            self._failures.popleft()
            if remaining > 0:
                self._failures.appendleft(
                    Failure(failure.status, failure.message, failure.headers, remaining)
                )
            return _error(failure.status, failure.message, failure.headers)
        elif self._turns:
            turn = self._turns.popleft()
            if isinstance(turn, Failure):
                if turn.times > 1:
                    self._failures.append(
                        Failure(turn.status, turn.message, turn.headers, turn.times - 1)
                    )
                return _error(turn.status, turn.message, turn.headers)
        else:
            turn = Text(self.default_text)
        if recorded.body.get("stream"):
            return await self._stream(request, turn)
        return web.json_response(self._message(turn))

    def _side_answer(self, recorded: Recorded) -> str:
        """A sensible answer to a request that is not the agent loop."""
        blob = json.dumps(recorded.body)
        if "title" in blob.lower():
            return json.dumps({"title": "Fake session"})
        return "Fake summary."

    def _message(self, turn: Turn) -> Json:
        content: list[Json] = []
        stop = "end_turn"
        if isinstance(turn, Text | Hang):
            content.append({"type": "text", "text": turn.text})
        elif isinstance(turn, ToolUse):
            if turn.text:
                content.append({"type": "text", "text": turn.text})
            content.append(
                {
                    "type": "tool_use",
                    "id": self._id("toolu"),
                    "name": turn.name,
                    "input": turn.input,
                }
            )
            stop = "tool_use"
        return {
            "id": self._id("msg"),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": _usage(),
        }

    def _id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    async def _stream(self, request: web.Request, turn: Turn) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        response.headers["request-id"] = self._id("req")
        await response.prepare(request)
        async for event, data in self._events(turn):
            await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
        await response.write_eof()
        return response

    async def _events(self, turn: Turn) -> AsyncIterator[tuple[str, Json]]:
        start = {**self._message(turn), "content": [], "stop_reason": None}
        start["usage"] = {**_usage(), "output_tokens": 1}
        yield "message_start", {"type": "message_start", "message": start}
        yield "ping", {"type": "ping"}
        if isinstance(turn, Hang) and not turn.text:
            await self._released.wait()
        index = 0
        text = turn.text if isinstance(turn, Text | ToolUse | Hang) else ""
        if text:
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            delay = turn.chunk_delay if isinstance(turn, Text) else 0.0
            for word in _chunks(text, 1 if delay else 8):
                if delay:
                    await asyncio.sleep(delay)
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": word},
                    },
                )
            if isinstance(turn, Hang):
                await self._released.wait()
            yield "content_block_stop", {"type": "content_block_stop", "index": index}
            index += 1
        stop = "end_turn"
        if isinstance(turn, ToolUse):
            stop = "tool_use"
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {
                        "type": "tool_use",
                        "id": self._id("toolu"),
                        "name": turn.name,
                        "input": {},
                    },
                },
            )
            arguments = json.dumps(turn.input)
            for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
            yield "content_block_stop", {"type": "content_block_stop", "index": index}
        yield (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 12},
            },
        )
        yield "message_stop", {"type": "message_stop"}


def _chunks(text: str, words: int) -> list[str]:
    pieces = text.split(" ")
    out = [" ".join(pieces[i : i + words]) for i in range(0, len(pieces), words)]
    return [p + (" " if i < len(out) - 1 else "") for i, p in enumerate(out)]


def _usage() -> Json:
    return {
        "input_tokens": 25,
        "output_tokens": 12,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    kind = ERROR_TYPES.get(status, "api_error")
    body = {"type": "error", "error": {"type": kind, "message": message or kind}}
    return web.json_response(body, status=status, headers=headers or {})
