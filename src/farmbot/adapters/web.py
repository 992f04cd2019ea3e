"""The web interface: health checks, the status page and console, and the JSON API.

Embedded in the daemon's loop on farmbot's own HTTP server (farmbot/adapters/http.py),
whose ``ConnectionGuard`` (farmbot/adapters/web_guard.py) caps connections and times out
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

import hmac
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any

from farmbot import __version__
from farmbot.adapters.http import (
    Request,
    Response,
    Route,
    Router,
    Server,
    json_response,
)
from farmbot.adapters.web_guard import (
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
Handler = Callable[[Request], Awaitable[Response]]

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
    """Serves the page, the API and the health checks on one HTTP server."""

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
        self._own_auth: set[Route] = set()
        self._router = Router()
        self._on_incoming: OnIncoming | None = None
        self._server: Server | None = None
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

    def _make_router(self) -> Router:
        """Every route: farmbot's own, then those of other components (``add_route``)."""
        router = Router()
        router.add("GET", "/healthz", self._healthz)
        router.add("GET", "/readyz", self._readyz)
        router.add("GET", "/", self._page)
        router.add("GET", "/api/status", self._api_status)
        router.add("POST", "/api/command", self._api_command)
        router.add("POST", "/api/stream-ticket", self._api_ticket)
        router.add("GET", STREAM, self._api_stream)
        router.add("POST", "/api/tasks", self._api_tasks)
        self._own_auth = {router.add(*route) for route in self._extra_routes}
        return router

    async def start(self, on_incoming: OnIncoming) -> None:
        self._on_incoming = on_incoming
        self._router = self._make_router()
        self.live.open()
        warning = exposure(self.host)
        if warning is not None:
            log.warning("%s", warning)
        server = Server(
            self._handle,
            self.guard,
            max_body=MAX_BODY,
            on_prepare=self._headers,
            on_malformed=self.malformed.record,
        )
        await server.start(self.host or None, self.port)  # raises when the port is taken
        self._server = server
        self.port = server.port  # tests ask for any free port (0)

    async def stop(self) -> None:
        """Stop listening, end the live streams, close every connection. Safe twice."""
        self.live.close()
        server, self._server = self._server, None
        if server is not None:
            await server.close()

    async def send(self, channel: str, message: OutboundMessage) -> None:
        """Add an alert to the console's live feed; never fails (and leaves no handle)."""
        self.alerts.append(message)

    # -- every request --------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        """Route, check the key, run the handler. A bug in a handler is logged, never shown
        as a traceback. Without the key, a path that does not exist is a 401 too."""
        self.requests += 1
        route, allowed = self._router.resolve(request)
        if not (request.path in PUBLIC or request.path == STREAM or route in self._own_auth):
            refused = self._refusal(request.headers.get("Authorization", ""))
            if refused is not None:
                return self._refuse(request, refused)
        if route is None:
            return _not_routed(request, allowed)
        try:
            return await route.handler(request)
        except Exception:
            incident = secrets.token_hex(4)
            log.exception("incident %s: %s %r failed", incident, request.method, request.path)
            return json_response(
                {"error": f"farmbot failed on this request (incident {incident}); the log "
                 "has the details"},
                status=500,
            )  # fmt: skip

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

    def _refuse(self, request: Request, reason: str) -> Response:
        self.failed_logins.record(request.remote, request.path, reason)
        return json_response({"error": f"missing or wrong key: {KEY_HELP}"}, status=401)

    def _headers(self, request: Request, response: Response) -> None:
        page = request.path == "/" and response.content_type == "text/html"
        headers = security_headers(self._page_policy) if page else security_headers()
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        if request.path.startswith("/api/") or request.path == "/readyz":
            response.headers.setdefault("Cache-Control", "no-store")

    # -- handlers -------------------------------------------------------------------------

    async def _healthz(self, request: Request) -> Response:
        return json_response({"ok": True, "version": __version__})

    async def _readyz(self, request: Request) -> Response:
        problems = await self._problems() if self._problems is not None else {}
        if problems:
            reason = "; ".join(f"{k}: {v}" for k, v in problems.items())
            return json_response({"ok": False, "reason": reason, "failing": problems}, status=503)
        return json_response({"ok": True, "checks": sorted(self._checks())})

    async def _page(self, request: Request) -> Response:
        if self._page_text is None:
            self._page_text = (
                resources.files("farmbot.adapters").joinpath("static/index.html").read_text("utf-8")
            )
            self._page_policy = page_policy(self._page_text)
        return Response(
            text=self._page_text, content_type="text/html", headers={"Cache-Control": "no-store"}
        )

    async def _api_status(self, request: Request) -> Response:
        return json_response(present(await self._status()), dumps=_dumps)

    async def _api_command(self, request: Request) -> Response:
        body, refused = await self._json_body(request)
        if refused is not None:
            return refused
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return json_response({"error": BAD_BODY}, status=400)
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
        return json_response(reply.to_json(), dumps=_dumps)

    async def _json_body(self, request: Request) -> tuple[Any, Response | None]:
        """The request's JSON body, or the answer that says what is wrong with it."""
        charset = (request.charset or "").strip().lower()
        if charset not in UTF8:
            error = f"charset {charset[:40]!r} is not supported: send UTF-8 JSON"
            return None, json_response({"error": error}, status=400)
        try:
            return json.loads((await request.read()).decode("utf-8")), None
        except (ValueError, RecursionError):  # not JSON, not UTF-8, absurdly nested
            return None, json_response({"error": BAD_BODY}, status=400)

    async def _api_ticket(self, request: Request) -> Response:
        return json_response(
            {"ticket": self.tickets.issue(), "expires_in": self.tickets.ttl, "stream": STREAM}
        )

    async def _api_stream(self, request: Request) -> Response:
        ticket = request.query.get("ticket")
        if ticket is not None:
            if not self.tickets.redeem(ticket):
                self.failed_logins.record(request.remote, request.path, "a spent or old ticket")
                return json_response(
                    {"error": "that stream ticket is spent or expired: POST /api/stream-ticket "
                     "with the key for a new one"},
                    status=401,
                )  # fmt: skip
        else:
            refused = self._refusal(request.headers.get("Authorization", ""))
            if refused is not None:
                return self._refuse(request, refused)
        return await self.live.stream(request)

    async def _api_tasks(self, request: Request) -> Response:
        """Queue tasks from JSON: 201 with the tasks, or 400 saying what was wrong."""
        try:
            body = await request.json()
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):
            return json_response(
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
            return json_response({"error": reply.text}, status=400)
        return json_response(reply.to_json(), status=201)


def _not_routed(request: Request, allowed: list[str]) -> Response:
    """404 for a path farmbot does not serve, 405 for a method its path does not take."""
    path = request.path[:200]
    if not allowed:
        return json_response({"error": f"there is no {path!r} here"}, status=404)
    methods = ", ".join(sorted(set(allowed)))
    return json_response(
        {"error": f"{request.method[:20]} is not allowed on {path!r}: use {methods}"},
        status=405,
        headers={"Allow": methods},
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)
