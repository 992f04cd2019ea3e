"""The web interface: health checks, the status page and console, and the JSON API.

Embedded in the daemon's loop through aiohttp's AppRunner, listening through a
``ConnectionGuard`` (farmbot/adapters/web_guard.py) that caps connections and times out
slow or idle ones. Everything except ``/healthz`` (and the page's static shell, which
holds no data) needs the local key as ``Authorization: Bearer <key>``; the live stream
(farmbot/adapters/web_live.py) takes a one-use ticket bought with it instead, since a
browser's EventSource cannot send headers. Every response says it may not be framed or
sniffed; the page's Content-Security-Policy allows its own inline script and style only.
No input is answered with a traceback: what is wrong with a request is a 4xx that says
so, and a failure inside farmbot is a reply that names an incident id.
``POST /api/command`` runs a command's text; ``POST /api/tasks`` queues tasks from JSON
(the same ``/task add``, authorized and audited alike).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any

from aiohttp import web

from farmbot import __version__
from farmbot.adapters.web_guard import (
    PROTOCOL_LOG,
    ConnectionGuard,
    FailedLogins,
    Limits,
    MalformedRequests,
    exposure,
    page_policy,
    security_headers,
)
from farmbot.adapters.web_live import LiveFeed, Tickets, present
from farmbot.messages import Incoming, OnIncoming, OutboundMessage, Reply, WebRoute

__all__ = ["Limits", "WebInterface"]

log = logging.getLogger(__name__)

StatusSource = Callable[[], Awaitable[dict[str, Any]]]
ProblemSource = Callable[[], Awaitable[dict[str, str]]]  # component -> what is wrong
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC = frozenset({"/healthz", "/"})
STREAM = "/api/stream"  # checks its own ticket
MAX_BODY = 1 << 20
LIVE_ALERTS = 100  # the console's live feed; the page reads older alerts from storage
BAD_BODY = 'the body must be JSON like {"text": "/status"}'
KEY_HELP = (
    "send 'Authorization: Bearer <key>'; the key is in the file local-key in farmbot's "
    "state directory"
)
UTF8 = frozenset({"", "utf-8", "utf8"})


class WebInterface:
    """Serves the page, the API and the health checks on one aiohttp server."""

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
        *,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self._key = key.encode()
        self._status = status
        self._problems = problems
        self._checks = checks
        self._extra_routes = extra_routes or []
        self.limits = limits or Limits()
        self._own_auth: set[web.AbstractRoute] = set()
        self._on_incoming: OnIncoming | None = None
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._page_text: str | None = None
        self._page_policy = ""
        self.guard = ConnectionGuard(self.limits, clock)
        self.failed_logins = FailedLogins(self.limits.log_interval, clock)
        self.malformed = MalformedRequests(self.limits.log_interval, clock)
        self.tickets = Tickets(clock=clock)
        self.live = LiveFeed(self._status, max_streams=self.limits.max_streams, clock=clock)
        self.requests = 0
        self.alerts: deque[OutboundMessage] = deque(maxlen=LIVE_ALERTS)  # newest last

    def __repr__(self) -> str:
        return f"<WebInterface {self.host}:{self.port} requests={self.requests}>"

    def statistics(self) -> dict[str, int | float | str]:
        return {
            "requests": self.requests,
            "failed_logins": self.failed_logins.count,
            "malformed_requests": self.malformed.count,
            "stream_tickets": self.tickets.issued,
            **self.guard.statistics(),
            **self.live.statistics(),
        }

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """Let another component (the hook receiver, a chat webhook) share the site.

        Such a route checks its own credentials (a hook token, a platform's signature or
        secret header): the local key is not asked for.
        """
        self._extra_routes.append((method, path, handler))

    def on_event(self, record: object, event: object, alerts: Sequence[object]) -> None:
        """The event bus's listener: tell the live streams something changed."""
        self.live.notify()

    def build_app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._answer, self._track, self._auth], client_max_size=MAX_BODY
        )
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/", self._page)
        app.router.add_get("/api/status", self._api_status)
        app.router.add_post("/api/command", self._api_command)
        app.router.add_post("/api/stream-ticket", self._api_ticket)
        app.router.add_get(STREAM, self._api_stream)
        app.router.add_post("/api/tasks", self._api_tasks)
        self._own_auth = {
            app.router.add_route(method, path, handler)
            for method, path, handler in self._extra_routes
        }
        app.on_response_prepare.append(self._headers)
        app.on_shutdown.append(self._end_streams)
        return app

    async def start(self, on_incoming: OnIncoming) -> None:
        self._on_incoming = on_incoming
        self.live.open()
        warning = exposure(self.host)
        if warning is not None:
            log.warning("%s", warning)
        protocol_log = logging.getLogger(PROTOCOL_LOG)
        protocol_log.addFilter(self.malformed)
        runner = web.AppRunner(
            self.build_app(),
            access_log=None,
            logger=protocol_log,
            keepalive_timeout=self.limits.keepalive_timeout,
        )
        await runner.setup()
        self._runner = runner
        assert runner.server is not None
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                self.guard.factory(runner.server),
                self.host or None,
                self.port,
                backlog=self.limits.backlog,
                reuse_address=True,
            )
        except BaseException:  # e.g. the port is taken
            self._runner = None
            await runner.cleanup()
            protocol_log.removeFilter(self.malformed)
            raise
        if self.port == 0:  # tests ask for any free port
            self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening, end the live streams, close every connection. Safe twice."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.live.close()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        self.guard.close_all()
        if server is not None:
            await server.wait_closed()
        logging.getLogger(PROTOCOL_LOG).removeFilter(self.malformed)

    async def send(self, channel: str, message: OutboundMessage) -> None:
        """Add an alert to the console's live feed; never fails (and leaves no handle)."""
        self.alerts.append(message)

    # -- middlewares, outermost first ---------------------------------------------------

    @web.middleware
    async def _answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The one funnel: a bug in a handler is logged, never shown as a traceback."""
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception:
            incident = secrets.token_hex(4)
            log.exception("incident %s: %s %r failed", incident, request.method, request.path)
            return web.json_response(
                {"error": f"farmbot failed on this request (incident {incident}); the log "
                 "has the details"},
                status=500,
            )  # fmt: skip

    @web.middleware
    async def _track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Tell the guard a request runs on its connection (so it is not idle)."""
        self.requests += 1
        conn = self.guard.connection_of(request.transport)
        if conn is None:
            return await handler(request)
        conn.started()
        try:
            return await handler(request)
        finally:
            conn.finished()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            request.path in PUBLIC
            or request.path == STREAM
            or request.match_info.route in self._own_auth
        ):
            return await handler(request)
        refused = self._refusal(request.headers.get("Authorization", ""))
        if refused is not None:
            return self._refuse(request, refused)
        return await handler(request)

    def _refusal(self, header: str) -> str | None:
        """Why the ``Authorization`` header does not carry the key; None when it does."""
        scheme, _, given = header.partition(" ")
        if not header:
            return "no key"
        if scheme.lower() != "bearer":
            return "not a bearer key"
        if not given.isascii():
            return "a key with characters no key has"
        if not hmac.compare_digest(given.strip().encode(), self._key):
            return "wrong key"
        return None

    def _refuse(self, request: web.Request, reason: str) -> web.Response:
        self.failed_logins.record(request.remote, request.path, reason)
        return web.json_response({"error": f"missing or wrong key: {KEY_HELP}"}, status=401)

    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        page = request.path == "/" and response.content_type == "text/html"
        headers = security_headers(self._page_policy) if page else security_headers()
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        if request.path.startswith("/api/") or request.path == "/readyz":
            response.headers.setdefault("Cache-Control", "no-store")

    async def _end_streams(self, app: web.Application) -> None:
        self.live.close()

    # -- handlers -------------------------------------------------------------------------

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
        if self._page_text is None:
            self._page_text = (
                resources.files("farmbot.adapters").joinpath("static/index.html").read_text("utf-8")
            )
            self._page_policy = page_policy(self._page_text)
        return web.Response(
            text=self._page_text, content_type="text/html", headers={"Cache-Control": "no-store"}
        )

    async def _api_status(self, request: web.Request) -> web.Response:
        return web.json_response(present(await self._status()), dumps=_dumps)

    async def _api_command(self, request: web.Request) -> web.Response:
        body, refused = await self._json_body(request)
        if refused is not None:
            return refused
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return web.json_response({"error": BAD_BODY}, status=400)
        assert self._on_incoming is not None
        client = request.headers.get("X-Farmbot-Client", "web")
        msg = Incoming(
            platform="cli" if client == "cli" else "web",
            user_id="local-key",
            chat="console" if client != "cli" else "cli",
            text=body["text"],
            button=bool(body.get("button")),
        )
        try:
            reply = await self._on_incoming(msg)
        except Exception:  # the router has its own funnel; this is the one behind it
            incident = secrets.token_hex(4)
            log.exception("incident %s: %r from the web console failed", incident, msg.text[:200])
            reply = Reply(
                f"Something went wrong inside farmbot (incident {incident}); "
                "the farmbot log has the details.",
                ok=False,
            )
        self.live.notify()  # e.g. /retry changes the outbox without an event
        return web.json_response(reply.to_json(), dumps=_dumps)

    async def _json_body(self, request: web.Request) -> tuple[Any, web.Response | None]:
        """The request's JSON body, or the answer that says what is wrong with it."""
        charset = (request.charset or "").strip().lower()
        if charset not in UTF8:
            error = f"charset {charset[:40]!r} is not supported: send UTF-8 JSON"
            return None, web.json_response({"error": error}, status=400)
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                raw = await request.read()
        except TimeoutError:
            error = f"the body did not arrive within {self.limits.body_timeout:.0f} s"
            return None, web.json_response({"error": error}, status=408)
        try:
            return json.loads(raw.decode("utf-8")), None
        except (ValueError, RecursionError):  # not JSON, not UTF-8, absurdly nested
            return None, web.json_response({"error": BAD_BODY}, status=400)

    async def _api_ticket(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"ticket": self.tickets.issue(), "expires_in": self.tickets.ttl, "stream": STREAM}
        )

    async def _api_stream(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket")
        if ticket is not None:
            if not self.tickets.redeem(ticket):
                self.failed_logins.record(request.remote, request.path, "a spent or old ticket")
                return web.json_response(
                    {"error": "that stream ticket is spent or expired: POST /api/stream-ticket "
                     "with the key for a new one"},
                    status=401,
                )  # fmt: skip
        else:
            refused = self._refusal(request.headers.get("Authorization", ""))
            if refused is not None:
                return self._refuse(request, refused)
        return await self.live.stream(request)

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
