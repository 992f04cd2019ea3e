"""The web interface: health checks, the status page and console, and the JSON API.

Embedded in the daemon's loop through aiohttp's AppRunner/TCPSite. Everything except
``/healthz`` (and the page's static shell, which holds no data) needs the local key as
``Authorization: Bearer <key>``. ``POST /api/command`` runs a command's text; ``POST
/api/tasks`` queues tasks from JSON (the same ``/task add``, authorized and audited alike).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from farmbot import __version__
from farmbot.messages import Incoming, OnIncoming, OutboundMessage, WebRoute

log = logging.getLogger(__name__)

StatusSource = Callable[[], Awaitable[dict[str, Any]]]
ProblemSource = Callable[[], Awaitable[dict[str, str]]]  # component -> what is wrong

PUBLIC = frozenset({"/healthz", "/"})
MAX_BODY = 1 << 20
LIVE_ALERTS = 100  # the console's live feed; the page reads older alerts from storage


class WebInterface:
    """Serves the page, the API and the health checks on one aiohttp site."""

    name = "web"

    def __init__(
        self,
        host: str,
        port: int,
        key: str,
        status: StatusSource,
        problems: ProblemSource | None = None,
        checks: Callable[[], list[str]] = list,
        extra_routes: list[WebRoute] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._key = key
        self._status = status
        self._problems = problems
        self._checks = checks
        self._extra_routes = extra_routes or []
        self._own_auth: set[web.AbstractRoute] = set()
        self._on_incoming: OnIncoming | None = None
        self._runner: web.AppRunner | None = None
        self.requests = 0
        self.alerts: deque[OutboundMessage] = deque(maxlen=LIVE_ALERTS)  # newest last

    def __repr__(self) -> str:
        return f"<WebInterface {self.host}:{self.port} requests={self.requests}>"

    def add_route(
        self,
        method: str,
        path: str,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> None:
        """Let another component (the hook receiver, a chat webhook) share the site.

        Such a route checks its own credentials (a hook token, a platform's signature or
        secret header): the local key is not asked for.
        """
        self._extra_routes.append((method, path, handler))

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth], client_max_size=MAX_BODY)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/", self._page)
        app.router.add_get("/api/status", self._api_status)
        app.router.add_post("/api/command", self._api_command)
        app.router.add_post("/api/tasks", self._api_tasks)
        self._own_auth = {
            app.router.add_route(method, path, handler)
            for method, path, handler in self._extra_routes
        }
        return app

    async def start(self, on_incoming: OnIncoming) -> None:
        self._on_incoming = on_incoming
        self._runner = web.AppRunner(self.build_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # tests ask for any free port
            self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def send(self, channel: str, message: OutboundMessage) -> None:
        """Add an alert to the console's live feed; never fails."""
        self.alerts.append(message)

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.requests += 1
        if request.path in PUBLIC or request.match_info.route in self._own_auth:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), self._key):
            return web.json_response(
                {
                    "error": "missing or wrong key: send 'Authorization: Bearer <key>'; the key "
                    "is in the file local-key in farmbot's state directory"
                },
                status=401,
            )
        return await handler(request)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "version": __version__})

    async def _readyz(self, request: web.Request) -> web.Response:
        problems = await self._problems() if self._problems is not None else {}
        if problems:
            reason = "; ".join(f"{k}: {v}" for k, v in problems.items())
            return web.json_response(
                {"ok": False, "reason": reason, "failing": problems}, status=503
            )
        return web.json_response({"ok": True, "checks": sorted(self._checks())})

    async def _page(self, request: web.Request) -> web.Response:
        page = resources.files("farmbot.adapters").joinpath("static/index.html").read_text("utf-8")
        return web.Response(
            text=page, content_type="text/html", headers={"Cache-Control": "no-store"}
        )

    async def _api_status(self, request: web.Request) -> web.Response:
        return web.json_response(await self._status(), dumps=_dumps)

    async def _api_command(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (ValueError, RecursionError):  # not JSON, not UTF-8, absurdly nested
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return web.json_response(
                {"error": 'the body must be JSON like {"text": "/status"}'}, status=400
            )
        assert self._on_incoming is not None
        client = request.headers.get("X-Farmbot-Client", "web")
        msg = Incoming(
            platform="cli" if client == "cli" else "web",
            user_id="local-key",
            chat="console" if client != "cli" else "cli",
            text=body["text"],
            button=bool(body.get("button")),
        )
        reply = await self._on_incoming(msg)
        return web.json_response(reply.to_json())

    async def _api_tasks(self, request: web.Request) -> web.Response:
        """Queue tasks from JSON: 201 with the tasks, or 400 saying what was wrong."""
        try:
            body = await request.json()
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):
            return web.json_response(
                {
                    "error": 'the body must be a JSON object like {"project": "web", "title": '
                    '"Add a login page", "body": "...", "priority": "high", "after": [3]} '
                    'or {"tasks": [{..., "ref": "a"}, {..., "after": ["a"]}]}'
                },
                status=400,
            )
        assert self._on_incoming is not None
        client = request.headers.get("X-Farmbot-Client", "web")
        msg = Incoming(
            platform="cli" if client == "cli" else "web",
            user_id="local-key",
            chat="api",
            text="/task add",
            data=body,
        )
        reply = await self._on_incoming(msg)
        if not reply.ok:
            return web.json_response({"error": reply.text}, status=400)
        return web.json_response(reply.to_json(), status=201)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)
