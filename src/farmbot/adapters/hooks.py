"""Claude Code hook events into farmbot: the HTTP endpoint, hook tokens and the spool.

Agents report through ``POST /hooks/claude/{agent}`` on farmbot's own web site, either
directly (Claude Code's ``http`` hook type) or through ``farmbot hook`` (``command``
hooks, see farmbot/hook.py). Each agent holds a token that only posts events for that
agent, so an agent cannot speak for another. What an event means is decided by the
injected ``ingest`` callback; this module only checks and translates.

The same token lets an agent say that its task is done: ``POST /agents/{agent}/task-done``
with ``{"note": "..."}`` (what ``farmbot task done`` sends). It can only ever finish the
task of the agent the token belongs to.

Events that could not be delivered wait in ``<state_dir>/spool/`` as one JSON file each,
``{"event": {...}, "received_at": <unix>, "agent": ..., "mac": ...}`` named
``<time_ns>-<pid>.json``; ``replay_spool`` feeds them to ``ingest`` on the next start --
only those whose MAC verifies with the named agent's hook token: the spool is a directory,
and a file someone dropped there while farmbot was down must not be applied. The others
are moved to ``spool/bad/`` and logged.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from farmbot.adapters.http import Request, Response, json_response
from farmbot.errors import CommandError, StorageError
from farmbot.hook import (  # they live in the light client module
    REFUSED_DIR,
    spool_event,
    valid_agent_id,
)
from farmbot.messages import WebRoute, holdable

__all__ = [
    "HookEndpoint",
    "Ingest",
    "hook_routes",
    "hook_token",
    "replay_spool",
    "spool_event",
    "valid_agent_id",
]

log = logging.getLogger(__name__)

# (agent, event) -> what the hook answers: a decision for a PermissionRequest, else {}
Ingest = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any] | None]]
TaskDone = Callable[[str, str], Awaitable[str]]  # (agent, note) -> what happened

TOKEN_HEADER = "X-Farmbot-Hook-Token"
BAD_DIR = "bad"
_EMPTY = b"{}"  # Claude Code reads an http hook's answer as hook output: {} decides nothing
_MAC_TAIL = re.compile(rb', "mac": "([0-9a-f]{64})"\}\s*\Z')  # how farmbot.hook ends a file
TokenFor = Callable[[str], str]  # agent id -> its hook token
# How a lone surrogate or a NUL can be in JSON that is valid UTF-8: as an escape.
_ESCAPED_UNHOLDABLE = re.compile(rb"\\u(?:[dD][89a-fA-F]|0000)")


def hook_token(key: str, agent_id: str) -> str:
    """The token that lets ``agent_id`` (and only it) post hook events."""
    digest = hmac.new(key.encode(), f"hook:{agent_id}".encode(), hashlib.sha256).hexdigest()
    return digest[:32]


def hook_routes(ingest: Ingest, key: str) -> list[WebRoute]:
    """The hook endpoint's routes, for ``WebInterface.add_route``."""
    return HookEndpoint(ingest, key).routes()


class HookEndpoint:
    """Checks hook requests (agent id, token, body) and hands the events to ``ingest``."""

    def __init__(self, ingest: Ingest, key: str, task_done: TaskDone | None = None) -> None:
        self._ingest = ingest
        self._key = key
        self._task_done = task_done
        self.received = 0
        self.rejected = 0

    def __repr__(self) -> str:
        return f"<HookEndpoint received={self.received} rejected={self.rejected}>"

    def routes(self) -> list[WebRoute]:
        routes: list[WebRoute] = [("POST", "/hooks/claude/{agent}", self.handle)]
        if self._task_done is not None:
            routes.append(("POST", "/agents/{agent}/task-done", self.handle_task_done))
        return routes

    def _refusal(self, request: Request) -> Response | None:
        """Why the request may not speak for the agent it names (None: it may)."""
        agent = request.match_info["agent"]
        if not valid_agent_id(agent):
            return self._reject(
                400,
                f"invalid agent id {agent!r}: expected 1-64 letters, digits, '_', '.' or '-', "
                "starting with a letter or digit",
            )
        given = request.query.get("token") or request.headers.get(TOKEN_HEADER) or ""
        if not hmac.compare_digest(given.encode(), hook_token(self._key, agent).encode()):
            return self._reject(
                401,
                f"missing or wrong hook token for agent '{agent}': send ?token=<token> or "
                f"'{TOKEN_HEADER}: <token>'",
            )
        return None

    async def handle_task_done(self, request: Request) -> Response:
        """An agent's task is done: 200 with what happens next, 409 when it has none."""
        refused = self._refusal(request)
        if refused is not None:
            return refused
        assert self._task_done is not None
        try:
            body = json.loads(await request.read() or b"{}")
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("note", ""), str):
            return self._reject(400, 'the body must be JSON like {"note": "what I did"}')
        try:
            note = holdable(body.get("note", ""))
            said = await self._task_done(request.match_info["agent"], note)
        except CommandError as exc:
            return self._reject(409, str(exc))
        except StorageError as exc:
            return self._reject(503, f"farmbot could not record it: {exc}")
        return json_response({"ok": True, "text": said})

    async def handle(self, request: Request) -> Response:
        """Accept one event: 200 ``{}``, or a JSON error naming what was wrong."""
        refused = self._refusal(request)
        if refused is not None:
            return refused
        agent = request.match_info["agent"]
        try:
            body = await request.read()
            payload = json.loads(body)
        except (ValueError, RecursionError):  # bad JSON, bad UTF-8, absurd nesting
            payload = None
        if _ESCAPED_UNHOLDABLE.search(body):  # a lone surrogate would fail every write of it
            payload = holdable(payload)
        if not isinstance(payload, dict) or not isinstance(payload.get("hook_event_name"), str):
            return self._reject(
                400,
                "the body must be a JSON object with a string 'hook_event_name' "
                "(the JSON Claude Code sends to hooks)",
            )
        try:
            answer = await self._ingest(agent, payload)
        except StorageError as exc:
            # 503 makes `farmbot hook` spool the event, so it is retried on the next start.
            log.error("hook event from %s not stored: %s", agent, exc)
            return self._reject(503, f"the event could not be stored: {exc}")
        self.received += 1
        if answer:
            return json_response(answer)
        return Response(body=_EMPTY, content_type="application/json")

    def _reject(self, status: int, error: str) -> Response:
        self.rejected += 1
        return json_response({"error": error}, status=status)


async def replay_spool(spool_dir: Path, ingest: Ingest, token_for: TokenFor) -> int:
    """Ingest spooled events oldest first, deleting each once ingested; return how many.

    A file that cannot be read, is not a spooled event, or whose MAC does not verify with
    the hook token of the agent it names (``token_for``) moves to ``spool_dir/bad/``. An
    exception from ``ingest`` stops the replay and leaves that file for next time.
    """
    paths = _spooled_files(spool_dir)
    replayed = 0
    for path in paths:
        try:
            agent, event = _read_spooled(path, token_for)
        except FileNotFoundError:  # replayed meanwhile by someone else
            continue
        except (OSError, ValueError, RecursionError) as exc:
            _quarantine(path, spool_dir / BAD_DIR, exc)
            continue
        try:
            await ingest(agent, event)
        except StorageError as exc:  # the file stays for the next start
            log.warning("replaying spooled hook events stopped: %s", exc)
            break
        path.unlink(missing_ok=True)
        replayed += 1
    if replayed:
        log.info("replayed %d spooled hook events from %s", replayed, spool_dir)
    return replayed


def _spooled_files(spool_dir: Path) -> list[Path]:
    """The spooled events, oldest first: in the spool, and in an agent's own directory of
    it (agents running as another Unix user spool to ``spool/<agent>/``)."""
    found: list[Path] = []
    try:
        entries = list(spool_dir.iterdir())
    except FileNotFoundError:
        return []
    for entry in entries:
        if entry.is_file() and entry.name.endswith(".json"):
            found.append(entry)
        elif entry.is_dir() and entry.name not in (BAD_DIR, REFUSED_DIR):
            with contextlib.suppress(OSError):
                found += [f for f in entry.iterdir() if f.is_file() and f.name.endswith(".json")]
    return sorted(found, key=lambda f: f.name)


def _read_spooled(path: Path, token_for: TokenFor) -> tuple[str, dict[str, Any]]:
    raw = path.read_bytes()
    record = json.loads(raw)
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    agent, event = record.get("agent"), record.get("event")
    if not isinstance(agent, str) or not valid_agent_id(agent):
        raise ValueError(f"no valid agent id (got {agent!r})")
    if not isinstance(event, dict) or not isinstance(event.get("hook_event_name"), str):
        raise ValueError("'event' is not a hook event with a string 'hook_event_name'")
    tail = _MAC_TAIL.search(raw)
    if tail is None or record.get("mac") != tail.group(1).decode():
        raise ValueError("it carries no MAC (not written by `farmbot hook` with a token)")
    expected = hmac.new(token_for(agent).encode(), raw[: tail.start()], hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest().encode(), tail.group(1)):
        raise ValueError(f"its MAC does not verify with {agent}'s hook token (forged?)")
    return agent, holdable(event)


def _quarantine(path: Path, bad: Path, reason: Exception) -> None:
    bad.mkdir(mode=0o700, exist_ok=True)
    path.replace(bad / path.name)
    log.warning("spooled hook event %s is unusable (%s); moved to %s", path.name, reason, bad)
