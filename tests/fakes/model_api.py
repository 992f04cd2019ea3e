"""What the fake model APIs share (``anthropic_api``, ``openai_api``): an aiohttp server on
127.0.0.1, for one test, that records every request and answers the agent loop's from a
script of turns. Each fake adds its routes and its wire format."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

from aiohttp import web

from tests.fakes.site import listen

Json = dict[str, Any]


@dataclass(frozen=True)
class Request:
    """One request as a fake received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Json
    at: float


class Main(Protocol):
    @property
    def is_main(self) -> bool:
        """True for an agent-loop request (it uses the script), False for side requests."""
        ...


TurnT = TypeVar("TurnT")
FailureT = TypeVar("FailureT")
RecordedT = TypeVar("RecordedT", bound=Main)


class ScriptedApi(ABC, Generic[TurnT, FailureT, RecordedT]):
    """The server, the script and the record; subclasses route requests (``add_routes``)."""

    def __init__(
        self,
        turns: Iterable[TurnT] | None,
        *,
        model: str,
        name: str,
        record: Callable[..., RecordedT],
        url_path: str = "",
        raw_shown: int | None = None,
    ) -> None:
        self.model = model
        self.requests: list[RecordedT] = []
        self.unhandled: list[RecordedT] = []
        self.default_text = "OK."
        self._name = name  # "fake Anthropic: ..." in its errors
        self._make_record = record
        self._url_path = url_path
        self._raw_shown = raw_shown  # of a body that is not JSON, what is kept
        self._turns: deque[TurnT] = deque(turns or [])
        self._failures: deque[FailureT] = deque()
        self._ids = itertools.count(1)
        self._released = asyncio.Event()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0

    @abstractmethod
    def add_routes(self, app: web.Application) -> None:
        """Route the API's requests (and ``self._other`` for the rest, say)."""

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.add_routes(app)
        self._runner, self._port = await listen(app)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def url(self) -> str:
        """The base URL the CLI is pointed at."""
        return f"http://127.0.0.1:{self._port}{self._url_path}"

    # -- scripting ---------------------------------------------------------------------

    def script(self, *turns: TurnT) -> None:
        """Append turns to the queue."""
        self._turns.extend(turns)

    def release(self) -> None:
        """Let a ``Hang`` answer finish."""
        self._released.set()

    @property
    def pending(self) -> int:
        """Scripted turns not yet used."""
        return len(self._turns)

    def main_requests(self) -> list[RecordedT]:
        """The agent-loop requests so far."""
        return [r for r in self.requests if r.is_main]

    async def wait_for(self, count: int, timeout: float = 30.0) -> RecordedT:
        """Wait until at least ``count`` main requests arrived; return the ``count``-th."""
        deadline = time.monotonic() + timeout
        while len(self.main_requests()) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"fake {self._name}: {len(self.main_requests())} main requests, wanted {count}"
                )
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass
        return self.main_requests()[count - 1]

    # -- handlers ----------------------------------------------------------------------

    async def _record(self, request: web.Request) -> RecordedT:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_raw": raw[: self._raw_shown].decode(errors="replace")}
        recorded = self._make_record(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body if isinstance(body, dict) else {"_json": body},
            at=time.time(),
        )
        self.requests.append(recorded)
        self._changed.set()
        return recorded
