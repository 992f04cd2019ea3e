"""Live updates for the status page: Server-Sent Events that carry what changed.

``GET /api/stream`` is an ``text/event-stream``. It opens with a ``snapshot`` (the whole
status, as ``/api/status`` has it), then sends a ``patch`` whenever something the page
shows changed: only the agent rows, gates, alerts, events, ... that differ, the ids that
went away, and the new order when it changed (``diff``). A bus listener (``notify``)
wakes the streams after every committed event; the status is then read once for all of
them (single flight), a burst of events making one patch. Things that change without an
event (outbox counters, readiness) are picked up by a periodic re-read; a full snapshot
goes out every ``snapshot_every`` seconds as a fallback, and a ``ping`` keeps a quiet
stream from looking dead to the page (which reconnects when it hears nothing).

EventSource cannot send an ``Authorization`` header, so the page first trades its key
for a ticket (``POST /api/stream-ticket`` with the bearer key): 32 random bytes, good
for one stream, for 30 seconds. The key itself never appears in a URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from farmbot.adapters.http import Request, Response, StreamResponse, json_response

log = logging.getLogger("farmbot.adapters.web")

StatusSource = Callable[[], Awaitable[dict[str, Any]]]

# The lists the page shows, and the field that identifies an item in each.
KEYED = {
    "nodes": "name",
    "agents": "id",
    "gates": "id",
    "alerts": "id",
    "events": "id",
    "dead_letters": "id",
    "qa_runs": "id",
    "projects": "name",
}
NOT_STREAMED = frozenset({"stats", "now"})  # counters change on every read; now is sent apart
_GATE_BUTTON = re.compile(r"^/(?:approve|reject)\s+(\d+)\b")


def present(status: dict[str, Any]) -> dict[str, Any]:
    """``status`` as the page shows it: alerts of gates no longer pending lose their buttons.

    Such an alert keeps its other buttons (Tail), lists the gates in ``closed_gates`` and
    says who decided each, and when, in ``decided`` (from the status' ``decided_gates``).
    """
    pending = {g.get("id") for g in status.get("gates", [])}
    notes = status.get("decided_gates") or {}
    alerts = []
    for alert in status.get("alerts", []):
        closed: list[int] = []
        rows = []
        for row in alert.get("buttons") or []:
            kept = []
            for button in row:
                found = _GATE_BUTTON.match(str(button.get("command", "")))
                if found and int(found[1]) not in pending:
                    closed.append(int(found[1]))
                else:
                    kept.append(button)
            if kept:
                rows.append(kept)
        if closed:
            gates = sorted(set(closed))
            said = [notes.get(str(g), "decided") for g in gates]
            alert = {**alert, "buttons": rows, "closed_gates": gates, "decided": said}
        alerts.append(alert)
    return {**status, "alerts": alerts}


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """What changed from ``old`` to ``new``: per list, ``upsert``/``remove``/``order``;
    any other value whole. Empty when nothing the page shows changed."""
    changes: dict[str, Any] = {}
    for name, value in new.items():
        if name in NOT_STREAMED:
            continue
        before = old.get(name)
        if name in KEYED and isinstance(value, list) and isinstance(before, list):
            key = KEYED[name]
            was = {item[key]: item for item in before}
            keys = [item[key] for item in value]
            change: dict[str, Any] = {}
            upsert = [item for item in value if was.get(item[key]) != item]
            remove = [k for k in was if k not in set(keys)]
            if upsert:
                change["upsert"] = upsert
            if remove:
                change["remove"] = remove
            if keys != [item[key] for item in before]:
                change["order"] = keys
            if change:
                changes[name] = change
        elif before != value:
            changes[name] = value
    return changes


def event(name: str, data: dict[str, Any]) -> bytes:
    """One Server-Sent Event; JSON on one line (``json.dumps`` escapes every newline)."""
    return f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n".encode()


class Tickets:
    """One-use, short-lived tickets that open one stream each."""

    def __init__(
        self, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic, most: int = 64
    ) -> None:
        self._ttl = ttl
        self._clock = clock
        self._most = most
        self._open: OrderedDict[str, float] = OrderedDict()  # ticket -> expiry, oldest first
        self.issued = 0

    @property
    def ttl(self) -> float:
        return self._ttl

    def issue(self) -> str:
        self._purge()
        while len(self._open) >= self._most:
            self._open.popitem(last=False)
        ticket = secrets.token_urlsafe(32)
        self._open[ticket] = self._clock() + self._ttl
        self.issued += 1
        return ticket

    def redeem(self, ticket: str) -> bool:
        """True once for a ticket issued less than ``ttl`` ago; it is spent either way."""
        self._purge()
        expiry = self._open.pop(ticket, None)
        return expiry is not None and self._clock() < expiry

    def _purge(self) -> None:
        now = self._clock()
        while self._open and next(iter(self._open.values())) <= now:
            self._open.popitem(last=False)


class LiveFeed:
    """The page's live streams; ``notify`` is the bus listener's half."""

    def __init__(
        self,
        status: StatusSource,
        *,
        max_streams: int = 16,
        debounce: float = 0.25,
        refresh: float = 5.0,
        snapshot_every: float = 60.0,
        ping_every: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._status = status
        self._max_streams = max_streams
        self._debounce = debounce
        self._refresh = refresh
        self._snapshot_every = snapshot_every
        self._ping_every = ping_every
        self._clock = clock
        self._wakers: set[asyncio.Event] = set()
        self._version = 0
        self._cached: tuple[int, float, dict[str, Any]] | None = None
        self._reading: asyncio.Lock | None = None
        self._closing = False
        self.patches = 0
        self.snapshots = 0
        self.refused = 0

    def statistics(self) -> dict[str, int]:
        return {
            "streams": len(self._wakers),
            "stream_patches": self.patches,
            "stream_snapshots": self.snapshots,
            "streams_refused": self.refused,
        }

    def notify(self) -> None:
        """Something the page may show changed: wake every stream. Quick; never raises."""
        self._version += 1
        for wake in self._wakers:
            wake.set()

    def open(self) -> None:
        """Take streams (again): the server is starting."""
        self._closing = False

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        self._closing = True
        for wake in self._wakers:
            wake.set()

    async def current(self) -> dict[str, Any]:
        """The presented status; read again only when changed or older than ``refresh``."""
        if self._reading is None:
            self._reading = asyncio.Lock()
        async with self._reading:  # one read serves every stream waiting for it
            cached = self._cached
            if (
                cached is not None
                and cached[0] == self._version
                and self._clock() - cached[1] < self._refresh
            ):
                return cached[2]
            version, at = self._version, self._clock()
            status = present(await self._status())
            status.pop("stats", None)
            self._cached = (version, at, status)
            return status

    async def stream(self, request: Request) -> Response:
        """Serve one stream until the client goes or the server stops."""
        if len(self._wakers) >= self._max_streams:
            self.refused += 1
            return json_response(
                {"error": f"too many live streams open (at most {self._max_streams})"},
                status=429,
                headers={"Retry-After": "5"},
            )
        response = StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # a proxy must pass each event on at once
            }
        )
        wake = asyncio.Event()
        self._wakers.add(wake)
        try:
            await response.prepare(request)
            await self._serve(response, wake)
        except ConnectionError:
            pass  # the page went away (closed, reloaded, lost the network)
        finally:
            self._wakers.discard(wake)
        return response

    async def _serve(self, response: StreamResponse, wake: asyncio.Event) -> None:
        shown = await self.current()
        await self._send(response, "snapshot", {"now": shown.get("now"), "status": shown})
        snapshot_at = sent_at = self._clock()
        while not self._closing:
            try:
                await asyncio.wait_for(wake.wait(), min(self._refresh, self._ping_every))
            except TimeoutError:
                pass
            if self._closing:
                break
            if wake.is_set():
                await asyncio.sleep(self._debounce)  # a burst of events: one patch
            wake.clear()
            now = self._clock()
            current = await self.current()
            if now - snapshot_at >= self._snapshot_every:
                await self._send(
                    response, "snapshot", {"now": current.get("now"), "status": current}
                )
                snapshot_at = sent_at = now
            elif changes := diff(shown, current):
                await self._send(response, "patch", {"now": current.get("now"), "changes": changes})
                sent_at = now
            elif now - sent_at >= self._ping_every:
                await self._send(response, "ping", {"now": current.get("now")})
                sent_at = now
            shown = current

    async def _send(self, response: StreamResponse, name: str, data: dict[str, Any]) -> None:
        await response.write(event(name, data))
        if name == "patch":
            self.patches += 1
        elif name == "snapshot":
            self.snapshots += 1
