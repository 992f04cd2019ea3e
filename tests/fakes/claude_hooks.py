"""A tiny receiver for Claude Code ``http`` hooks on 127.0.0.1, scriptable per event.

Claude Code POSTs each hook event's JSON to the hook's URL and reads a decision from a 2xx
JSON answer. Tests configure the answer per ``hook_event_name``: a JSON body, an HTTP
status, or a delay (to hold the request open). Every event is recorded in arrival order.
:func:`http_hooks` builds the ``hooks`` settings block that points every event here.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web

from tests.fakes.site import listen

Json = dict[str, Any]

EVENTS = (
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PermissionRequest",
    "PostToolUse",
    "Notification",
    "Stop",
    "SessionEnd",
)


@dataclass(frozen=True)
class Answer:
    """How to answer one event: ``body`` (JSON, or None for an empty body) with ``status``,
    after ``delay`` seconds (``float('inf')``: never, until the client gives up)."""

    body: Json | None = None
    status: int = 200
    delay: float = 0.0


def allow(updated_permissions: list[Json] | None = None) -> Answer:
    """A PermissionRequest answer that approves the tool call."""
    decision: Json = {"behavior": "allow"}
    if updated_permissions is not None:
        decision["updatedPermissions"] = updated_permissions
    return Answer(permission_output(decision))


def deny(message: str, *, interrupt: bool = False) -> Answer:
    """A PermissionRequest answer that refuses the tool call, telling the model why."""
    decision: Json = {"behavior": "deny", "message": message}
    if interrupt:
        decision["interrupt"] = True
    return Answer(permission_output(decision))


def permission_output(decision: Json) -> Json:
    """The JSON a PermissionRequest hook prints (command hook) or answers (http hook)."""
    return {"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": decision}}


@dataclass(frozen=True)
class Event:
    """One hook call as received."""

    name: str
    body: Json
    at: float


class HookReceiver:
    """The http hook endpoint for one test (``receiver.url``), as an async context manager."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.answers: dict[str, Answer] = {}
        self.finished: list[tuple[str, float]] = []  # (event, seconds until the client left)
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0

    async def __aenter__(self) -> HookReceiver:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner, self._port = await listen(app)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def url(self) -> str:
        """The URL to put in the hook's ``url``."""
        return f"http://127.0.0.1:{self._port}/hook"

    def names(self) -> list[str]:
        """Event names in arrival order."""
        return [event.name for event in self.events]

    async def wait_for(self, name: str, count: int = 1, timeout: float = 20.0) -> Event:
        """Wait for the ``count``-th event called ``name``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            found = [event for event in self.events if event.name == name]
            if len(found) >= count:
                return found[count - 1]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {name} hook event #{count}; got {self.names()}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    async def _hook(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        body = await request.json()
        name = str(body.get("hook_event_name", "?"))
        self.events.append(Event(name, body, time.time()))
        self._changed.set()
        answer = self.answers.get(name, Answer())
        try:
            if answer.delay == float("inf"):
                await asyncio.Event().wait()
            elif answer.delay:
                await asyncio.sleep(answer.delay)
        finally:
            self.finished.append((name, time.monotonic() - started))
        if answer.body is None:
            return web.Response(status=answer.status)
        return web.json_response(answer.body, status=answer.status)


def http_hooks(url: str, *, timeout: int = 30, events: tuple[str, ...] = EVENTS) -> Json:
    """A ``hooks`` settings block sending ``events`` to ``url``."""
    hooks: Json = {}
    for event in events:
        entry: Json = {"hooks": [{"type": "http", "url": url, "timeout": timeout}]}
        if event in {"PreToolUse", "PermissionRequest", "PostToolUse"}:
            entry["matcher"] = "*"
        hooks[event] = [entry]
    return {"hooks": hooks}


def command_hook(event: str, command: str, *, timeout: int = 30) -> Json:
    """A ``hooks`` settings block with one ``command`` hook for ``event``."""
    entry: Json = {"hooks": [{"type": "command", "command": command, "timeout": timeout}]}
    if event in {"PreToolUse", "PermissionRequest", "PostToolUse"}:
        entry["matcher"] = "*"
    return {"hooks": {event: [entry]}}


def dumps(value: Json) -> str:
    """Compact JSON, as a command hook would print it."""
    return json.dumps(value, separators=(",", ":"))
