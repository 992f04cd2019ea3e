"""A real daemon with its loops running, and an HTTP client logged in to its web interface."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from farmbot.config.schema import Config
from farmbot.daemon import Daemon


@dataclasses.dataclass
class Web:
    app: Daemon
    http: aiohttp.ClientSession
    key: str

    @property
    def url(self) -> str:
        return self.app.url

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def command(self, text: str) -> dict[str, Any]:
        async with self.http.post("/api/command", json={"text": text}, headers=self.auth) as r:
            assert r.status == 200, await r.text()
            reply: dict[str, Any] = await r.json()
            return reply

    async def status(self) -> dict[str, Any]:
        async with self.http.get("/api/status", headers=self.auth) as r:
            assert r.status == 200, await r.text()
            result: dict[str, Any] = await r.json()
            return result

    @asynccontextmanager
    async def stream(self) -> AsyncIterator[Stream]:
        """The page's live stream, opened the page's way: a ticket, then the stream."""
        async with self.http.post("/api/stream-ticket", headers=self.auth) as r:
            assert r.status == 200, await r.text()
            ticket = (await r.json())["ticket"]
        async with self.http.get("/api/stream", params={"ticket": ticket}) as r:
            assert r.status == 200, await r.text()
            assert r.content_type == "text/event-stream"
            yield Stream(r)


class Stream:
    """Server-Sent Events as they arrive: (event name, JSON data, size in bytes)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, timeout: float = 10) -> tuple[str, dict[str, Any], int]:
        name, data, size = "", "", 0
        while True:
            line = await asyncio.wait_for(self.response.content.readline(), timeout)
            assert line, "the stream ended"
            size += len(line)
            text = line.decode().rstrip("\n")
            if text.startswith("event: "):
                name = text.removeprefix("event: ")
            elif text.startswith("data: "):
                data += text.removeprefix("data: ")
            elif not text and name:
                return name, json.loads(data), size

    async def until(
        self, name: str, check: Callable[[dict[str, Any]], object], timeout: float = 15
    ) -> tuple[dict[str, Any], int]:
        """Read events until one called ``name`` whose data passes ``check``."""
        async with asyncio.timeout(timeout):
            while True:
                got, data, size = await self.next(timeout)
                if got == name and check(data):
                    return data, size


@asynccontextmanager
async def running(config: Config) -> AsyncIterator[Web]:
    """``Daemon(config)`` started and running its loops until the block ends."""
    async with Daemon(config) as app:
        stop = asyncio.Event()
        loops = asyncio.create_task(app.run(stop))
        try:
            async with aiohttp.ClientSession(base_url=app.url) as http:
                yield Web(app, http, app.farm.key)
        finally:
            stop.set()
            await loops
