"""A fake OpenAI Responses API on 127.0.0.1 that the real Codex CLI talks to.

Codex reaches it through a custom provider in ``$CODEX_HOME/config.toml`` with
``wire_api = "responses"`` and ``base_url = fake.url`` (see ``tests/agent_clis.py``). Tests
script the model as a queue of turns (:class:`Text`, :class:`FunctionCall`,
:class:`Failure`, :class:`Hang`), each consumed by the next main request (a
``POST /v1/responses`` that offers tools); the request that carries a
``function_call_output`` gets the next turn. Requests that offer no tools (titles,
summaries, compaction) are answered with a short text and never use the queue.

Every request is recorded (:attr:`FakeOpenAI.requests`), e.g. to assert that the
``function_call_output`` after a refusal says why.

``POST /v1/chat/completions`` (streaming or not) serves the same queue as text, for aider.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.model_api import Request, ScriptedApi

Json = dict[str, Any]

MODEL = "gpt-5-codex"


@dataclass(frozen=True)
class Text:
    """Answer with an assistant message and end the turn; ``chunk_delay`` between words."""

    text: str
    chunk_delay: float = 0.0


@dataclass(frozen=True)
class FunctionCall:
    """Call a tool; ``arguments`` is the JSON object the tool takes."""

    name: str
    arguments: Json
    text: str = ""


def exec_command(
    command: str, justification: str | None = "Run the requested command?", **extra: Any
) -> FunctionCall:
    """Codex 0.171.0's shell tool: ``exec_command`` with ``cmd`` (a shell string).

    With a ``justification`` the call asks to run outside the sandbox
    (``sandbox_permissions: "require_escalated"``), which is what makes Codex show its
    approval dialog under ``approval_policy = "on-request"``; the justification is shown
    as ``Reason:``. ``justification=None`` runs it in the sandbox with no question.
    """
    arguments: Json = {"cmd": command}
    if justification is not None:
        arguments.update(sandbox_permissions="require_escalated", justification=justification)
    arguments.update(extra)
    return FunctionCall("exec_command", arguments)


@dataclass(frozen=True)
class Failure:
    """Answer the next ``times`` main requests with an HTTP error.

    ``body`` defaults to ``{"error": {"message", "type", "code"}}`` as OpenAI sends it.
    """

    status: int
    message: str = ""
    error_type: str = ""
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    body: Json | None = None

    def answer(self) -> web.Response:
        """The HTTP error response."""
        body = self.body or {
            "error": {
                "message": self.message or f"fake OpenAI error {self.status}",
                "type": self.error_type or _ERROR_TYPES.get(self.status, "server_error"),
                "param": None,
                "code": self.code,
            }
        }
        return web.json_response(body, status=self.status, headers=self.headers)


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}


@dataclass(frozen=True)
class Hang:
    """Start the answer (with ``text``, if any), then send nothing until
    :meth:`FakeOpenAI.release`."""

    text: str = ""


Turn = Text | FunctionCall | Failure | Hang


@dataclass(frozen=True)
class Recorded(Request):
    """One request as the fake received it."""

    @property
    def is_main(self) -> bool:
        """True for an agent-loop request: ``/responses`` offering tools, or any
        ``/chat/completions`` (aider's API)."""
        if self.path.endswith("/chat/completions"):
            return True
        return self.path.endswith("/responses") and bool(self.body.get("tools"))

    def tool_names(self) -> list[str]:
        """Names of the tools offered (function tools by name, others by type)."""
        return [str(t.get("name") or t.get("type")) for t in self.body.get("tools", [])]

    def inputs(self, kind: str) -> list[Json]:
        """Input items of one ``type`` (``message``, ``function_call_output`` ...)."""
        items = self.body.get("input", [])
        return [i for i in items if isinstance(i, dict) and i.get("type", "message") == kind]

    def function_outputs(self) -> list[str]:
        """The ``output`` of every ``function_call_output`` item, as text."""
        outputs: list[str] = []
        for item in self.inputs("function_call_output"):
            output = item.get("output")
            outputs.append(output if isinstance(output, str) else json.dumps(output))
        return outputs

    def user_texts(self) -> list[str]:
        """Text of every user message in the input."""
        texts: list[str] = []
        for item in self.inputs("message"):
            if item.get("role") != "user":
                continue
            content = item.get("content")
            if isinstance(content, str):
                texts.append(content)
                continue
            for part in content or []:
                if isinstance(part, dict) and "text" in part:
                    texts.append(str(part["text"]))
        return texts


class FakeOpenAI(ScriptedApi[Turn, Failure, Recorded]):
    """The Responses API for one test, as an async context manager (``fake.url``)."""

    def __init__(self, turns: list[Turn] | None = None, *, model: str = MODEL) -> None:
        super().__init__(
            turns, model=model, name="OpenAI", record=Recorded, url_path="/v1", raw_shown=2000
        )

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._other)

    async def _other(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        self.unhandled.append(recorded)
        return web.json_response(
            {"error": {"message": f"fake OpenAI: no route {request.path}", "type": "not_found"}},
            status=404,
        )

    async def _models(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "openai"}],
            }
        )

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        turn: Turn
        if not recorded.is_main:
            turn = Text(_side_answer(recorded))
        else:
            scripted = self._next_turn(recorded)
            if isinstance(scripted, web.Response):
                return scripted
            turn = scripted
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        response.headers["x-request-id"] = self._id("req")
        await response.prepare(request)
        sequence = itertools.count()
        async for data in self._events(turn):
            data["sequence_number"] = next(sequence)
            payload = f"event: {data['type']}\ndata: {json.dumps(data)}\n\n"
            await response.write(payload.encode())
        await response.write_eof()
        return response

    def _next_turn(self, recorded: Recorded) -> Turn | web.Response:
        """The scripted turn for a main request, or the error answer to send instead."""
        if self._failures:
            failure = self._failures.popleft()
            if failure.times > 1:
                self._failures.appendleft(_fewer(failure))
            return failure.answer()
        if not self._turns:
            return Text(self.default_text)
        turn = self._turns.popleft()
        if isinstance(turn, Failure):
            if turn.times > 1:
                self._failures.append(_fewer(turn))
            return turn.answer()
        return turn

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        """Chat Completions, text only (tool turns are sent as their text)."""
        recorded = await self._record(request)
        turn = self._next_turn(recorded)
        if isinstance(turn, web.Response):
            return turn
        text = turn.text if isinstance(turn, Text | FunctionCall | Hang) else ""
        chat_id, created = self._id("chatcmpl"), int(time.time())
        if not recorded.body.get("stream"):
            message = {"role": "assistant", "content": text}
            return web.json_response(
                {
                    "id": chat_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": self.model,
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 25, "completion_tokens": 12, "total_tokens": 37},
                }
            )
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)

        async def send(delta: Json, finish: str | None = None) -> None:
            chunk = {
                "id": chat_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await send({"role": "assistant", "content": ""})
        delay = turn.chunk_delay if isinstance(turn, Text) else 0.0
        for piece in _chunks(text, 1 if delay else 8) if text else []:
            if delay:
                await asyncio.sleep(delay)
            await send({"content": piece})
        if isinstance(turn, Hang):
            await self._released.wait()
        await send({}, "stop")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def _id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    async def _events(self, turn: Turn) -> AsyncIterator[Json]:
        response_id = self._id("resp")
        envelope: Json = {
            "id": response_id,
            "object": "response",
            "created_at": int(time.time()),
            "status": "in_progress",
            "model": self.model,
            "output": [],
        }
        yield {"type": "response.created", "response": envelope}
        yield {"type": "response.in_progress", "response": envelope}
        if isinstance(turn, Hang) and not turn.text:
            await self._released.wait()
        output: list[Json] = []
        text = turn.text if isinstance(turn, Text | FunctionCall | Hang) else ""
        if text:
            index = len(output)
            item_id = self._id("msg")
            item: Json = {
                "id": item_id,
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            yield {"type": "response.output_item.added", "output_index": index, "item": item}
            part = {"type": "output_text", "text": "", "annotations": []}
            yield {
                "type": "response.content_part.added",
                "item_id": item_id,
                "output_index": index,
                "content_index": 0,
                "part": part,
            }
            delay = turn.chunk_delay if isinstance(turn, Text) else 0.0
            for piece in _chunks(text, 1 if delay else 8):
                if delay:
                    await asyncio.sleep(delay)
                yield {
                    "type": "response.output_text.delta",
                    "item_id": item_id,
                    "output_index": index,
                    "content_index": 0,
                    "delta": piece,
                }
            if isinstance(turn, Hang):
                await self._released.wait()
            done_part = {"type": "output_text", "text": text, "annotations": []}
            yield {
                "type": "response.output_text.done",
                "item_id": item_id,
                "output_index": index,
                "content_index": 0,
                "text": text,
            }
            yield {
                "type": "response.content_part.done",
                "item_id": item_id,
                "output_index": index,
                "content_index": 0,
                "part": done_part,
            }
            item = {**item, "status": "completed", "content": [done_part]}
            yield {"type": "response.output_item.done", "output_index": index, "item": item}
            output.append(item)
        if isinstance(turn, FunctionCall):
            index = len(output)
            item_id, call_id = self._id("fc"), self._id("call")
            arguments = json.dumps(turn.arguments)
            call: Json = {
                "id": item_id,
                "type": "function_call",
                "status": "in_progress",
                "name": turn.name,
                "call_id": call_id,
                "arguments": "",
            }
            yield {"type": "response.output_item.added", "output_index": index, "item": call}
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                yield {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item_id,
                    "output_index": index,
                    "delta": piece,
                }
            yield {
                "type": "response.function_call_arguments.done",
                "item_id": item_id,
                "output_index": index,
                "arguments": arguments,
            }
            call = {**call, "status": "completed", "arguments": arguments}
            yield {"type": "response.output_item.done", "output_index": index, "item": call}
            output.append(call)
        usage = {
            "input_tokens": 25,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 12,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 37,
        }
        done = {**envelope, "status": "completed", "output": output, "usage": usage}
        yield {"type": "response.completed", "response": done}


def _side_answer(recorded: Recorded) -> str:
    """Codex asks for a task title with a JSON schema ``{"title": ...}``; others get text."""
    text_format = recorded.body.get("text", {}).get("format", {})
    properties = text_format.get("schema", {}).get("properties", {})
    if "title" in properties:
        return json.dumps({"title": "Fake task"})
    return "Fake summary."


def _fewer(failure: Failure) -> Failure:
    return Failure(
        failure.status,
        failure.message,
        failure.error_type,
        failure.code,
        failure.headers,
        failure.times - 1,
        failure.body,
    )


def _chunks(text: str, words: int) -> list[str]:
    pieces = text.split(" ")
    out = [" ".join(pieces[i : i + words]) for i in range(0, len(pieces), words)]
    return [p + (" " if i < len(out) - 1 else "") for i, p in enumerate(out)]
