"""A real daemon with its loops running, and an HTTP client logged in to its web interface."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
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
