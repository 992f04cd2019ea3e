"""farmbot's HTTP/1.1 server: h11's parser over asyncio streams, kept by the guard.

The daemon serves a few JSON routes, one Server-Sent Events stream, hook calls and chat
webhooks, on loopback or behind a TLS proxy. aiohttp's server did that, but importing it
costs more than farmbot's whole start budget (~170 ms of CPU and ~15 MiB here: the
package always loads its client, which builds two TLS contexts at import), so the server
is this module on ``h11`` (a small, strict, sans-I/O HTTP/1.1 parser) instead.

- ``Server(handler)`` listens; ``handler(request) -> Response`` answers each request.
  ``on_prepare(request, response)`` sees every response before its head is sent (the
  web interface adds its security headers there), errors the server makes included.
- A request reaches the handler whole: its head within ``Limits.header_timeout``, its
  body (at most ``max_body`` bytes, else 413) within ``Limits.body_timeout`` (else 408).
  Keep-alive and pipelining are h11's; a connection is answered one request at a time.
- ``StreamResponse`` streams (``prepare`` then ``write``): chunked, ended when the handler
  returns. Writing to a client that went away raises ``ConnectionResetError``.
- Connections are admitted, timed out and evicted by ``ConnectionGuard``
  (farmbot/adapters/web_guard.py). A request that cannot be parsed is answered with its
  4xx and reported to ``on_malformed`` (one log line per interval, no traceback).
- ``close()`` stops listening, gives running requests ``grace`` seconds, then closes
  every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote

import h11

from farmbot.adapters.web_guard import Connection, ConnectionGuard, Limits

__all__ = [
    "Headers",
    "Request",
    "Response",
    "Route",
    "Router",
    "Server",
    "StreamResponse",
    "json_response",
]

log = logging.getLogger("farmbot.adapters.web")

MAX_HEAD = 16 * 1024  # a request line and headers, all told
MAX_FIELD = 8190  # one header line (aiohttp's and nginx's limit)
MAX_FIELDS = 100
READ_SIZE = 64 * 1024
JSON = "application/json"
NO_BODY = frozenset({204, 304})
LINGER = 2.0  # a refused body is read and dropped this long, so the answer is not reset

Handler = Callable[["Request"], Awaitable["Response"]]
OnPrepare = Callable[["Request", "Response"], None]
OnMalformed = Callable[[int, str], None]
HeaderItems = Mapping[str, str] | Iterable[tuple[str, str]]


class Headers(MutableMapping[str, str]):
    """Header names matched without case; the first of repeated request headers wins."""

    __slots__ = ("_items",)

    def __init__(self, items: HeaderItems = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}  # lower name -> (name, value)
        pairs = items.items() if isinstance(items, Mapping) else items
        for name, value in pairs:
            self._items.setdefault(name.lower(), (name, value))

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __setitem__(self, name: str, value: str) -> None:
        self._items[name.lower()] = (name, value)

    def __delitem__(self, name: str) -> None:
        del self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self._items.values())!r})"


def _parameters(content_type: str) -> tuple[str, dict[str, str]]:
    """``text/html; charset=utf-8`` -> (``text/html``, {``charset``: ``utf-8``})."""
    kind, *rest = content_type.split(";")
    params: dict[str, str] = {}
    for part in rest:
        name, _, value = part.partition("=")
        params.setdefault(name.strip().lower(), value.strip().strip('"'))
    return kind.strip().lower(), params


class Request:
    """One request, whole: its head, its body, and the route it matched."""

    __slots__ = (
        "_body",
        "_exchange",
        "headers",
        "match_info",
        "method",
        "path",
        "query",
        "remote",
        "version",
    )

    def __init__(
        self,
        method: str,
        target: str,
        headers: Headers,
        body: bytes = b"",
        *,
        remote: str | None = None,
        version: str = "1.1",
    ) -> None:
        self.method = method
        raw_path, _, raw_query = target.partition("?")
        self.path = unquote(raw_path, errors="replace")
        self.query: dict[str, str] = {}
        for name, value in parse_qsl(raw_query, keep_blank_values=True, errors="replace"):
            self.query.setdefault(name, value)
        self.headers = headers
        self.remote = remote
        self.version = version
        self.match_info: dict[str, str] = {}  # the route's {name} parts
        self._body = body
        self._exchange: _Exchange | None = None  # the server's, while it serves this

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path[:100]!r}>"

    @property
    def content_type(self) -> str:
        return _parameters(self.headers.get("Content-Type", ""))[0]

    @property
    def charset(self) -> str | None:
        return _parameters(self.headers.get("Content-Type", ""))[1].get("charset")

    async def read(self) -> bytes:
        return self._body

    async def json(self) -> Any:
        """The body as JSON (UTF-8); ``ValueError`` when it is not."""
        return json.loads(self._body.decode("utf-8"))


class Response:
    """A whole response: status, headers and body."""

    def __init__(
        self,
        *,
        status: int = 200,
        body: bytes = b"",
        text: str | None = None,
        content_type: str | None = None,
        headers: HeaderItems | None = None,
    ) -> None:
        self.status = status
        self.headers = Headers(headers or ())
        if text is not None:
            body = text.encode("utf-8")
            content_type = content_type or "text/plain"
        if content_type is not None:
            charset = "; charset=utf-8" if text is not None or content_type == JSON else ""
            self.headers["Content-Type"] = content_type + charset
        self.body = body

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status}>"

    @property
    def content_type(self) -> str:
        return _parameters(self.headers.get("Content-Type", ""))[0]


def json_response(
    data: Any,
    *,
    status: int = 200,
    headers: HeaderItems | None = None,
    dumps: Callable[[Any], str] = json.dumps,
) -> Response:
    return Response(status=status, text=dumps(data), content_type=JSON, headers=headers)


class StreamResponse(Response):
    """A response written as it goes: ``await prepare(request)``, then ``write`` parts."""

    def __init__(self, *, status: int = 200, headers: HeaderItems | None = None) -> None:
        super().__init__(status=status, headers=headers)
        self._exchange: _Exchange | None = None

    @property
    def prepared(self) -> bool:
        return self._exchange is not None

    async def prepare(self, request: Request) -> None:
        exchange = request._exchange
        if exchange is None:
            raise RuntimeError(f"{request!r} is not being served")
        self._exchange = exchange
        await exchange.send_head(self)

    async def write(self, data: bytes) -> None:
        if self._exchange is None:
            raise RuntimeError("write before prepare")
        await self._exchange.send_data(data)


class _Exchange:
    """One request and its response on one connection's h11 state."""

    def __init__(
        self, server: Server, h: h11.Connection, writer: asyncio.StreamWriter, request: Request
    ) -> None:
        self._server = server
        self._h = h
        self._writer = writer
        self.request = request
        self.head_sent = False

    async def send_head(self, response: Response, length: int | None = None) -> None:
        await self._emit(self._head(response, length))

    async def send_data(self, data: bytes) -> None:
        if data and self.request.method != "HEAD":
            await self._emit(h11.Data(data=data))

    async def send(self, response: Response) -> None:
        """The whole response, in one write."""
        events: list[h11.Event] = [self._head(response, len(response.body))]
        if response.body and self.request.method != "HEAD":
            events.append(h11.Data(data=response.body))
        await self._emit(*events, h11.EndOfMessage())

    async def end(self) -> None:
        await self._emit(h11.EndOfMessage())

    def _head(self, response: Response, length: int | None) -> h11.Response:
        self._server.prepare(self.request, response)
        self.head_sent = True
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
        if length is not None and response.status not in NO_BODY:
            headers.append((b"Content-Length", str(length).encode()))
        if self._server.closing:
            headers.append((b"Connection", b"close"))
        return h11.Response(
            status_code=response.status, headers=headers, reason=_reason(response.status)
        )

    async def _emit(self, *events: h11.Event) -> None:
        if self._writer.is_closing():
            raise ConnectionResetError("the client went away")
        data = b"".join(self._h.send(event) or b"" for event in events)
        if data:
            self._writer.write(data)
            await self._writer.drain()


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class Server:
    """Listens and serves; see the module docstring."""

    def __init__(
        self,
        handler: Handler,
        guard: ConnectionGuard,
        *,
        max_body: int,
        on_prepare: OnPrepare | None = None,
        on_malformed: OnMalformed | None = None,
        grace: float = 5.0,
    ) -> None:
        self._handler = handler
        self.guard = guard
        self.limits: Limits = guard.limits
        self._max_body = max_body
        self._on_prepare = on_prepare
        self._on_malformed = on_malformed
        self._grace = grace
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._busy: set[asyncio.Task[None]] = set()  # connections running a handler now
        self.closing = False
        self.port = 0

    async def start(self, host: str | None, port: int) -> None:
        self.closing = False
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Protocol(asyncio.StreamReader(READ_SIZE), self._connected),
            host,
            port,
            backlog=self.limits.backlog,
            reuse_address=True,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening; let running requests end within ``grace``; close the rest."""
        self.closing = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for conn in self.guard.idle():
            conn.close()  # nothing runs on them: no need to wait
        if self._busy:
            await asyncio.wait(list(self._busy), timeout=self._grace)
        self.guard.close_all()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=self._grace)
        if server is not None:
            await server.wait_closed()

    def _lost(self, conn: Connection, done: asyncio.Future[None]) -> None:
        if not done.cancelled():
            done.exception()  # a reset is how clients go; nothing to report
        self.guard.forget(conn)

    def prepare(self, request: Request, response: Response) -> None:
        if self._on_prepare is not None:
            self._on_prepare(request, response)

    # -- one connection -----------------------------------------------------------------

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        transport = writer.transport
        assert isinstance(transport, asyncio.Transport)
        conn = None if self.closing else self.guard.admit(transport)
        if conn is None:
            transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        # The guard forgets a connection as soon as it is lost, even while a handler (a
        # live stream, a held hook) still runs on it.
        lost = asyncio.ensure_future(writer.wait_closed())
        lost.add_done_callback(lambda done: self._lost(conn, done))
        peer = writer.get_extra_info("peername")
        remote = str(peer[0]) if isinstance(peer, tuple) and peer else None
        h = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        try:
            while not self.closing:
                if not await self._one(h, reader, writer, conn, remote):
                    break
                if h.our_state is not h11.DONE or h.their_state is not h11.DONE:
                    break  # h11 says this connection ends here (Connection: close, 1.0, ...)
                h.start_next_cycle()
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:  # farmbot's bug (a header it cannot encode, ...): this one ends
            log.exception("web: serving a request failed; its connection is closed")
        finally:
            self._connections.discard(task)
            self.guard.forget(conn)
            conn.transport = None
            transport.abort()

    async def _one(
        self,
        h: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: Connection,
        remote: str | None,
    ) -> bool:
        """Serve one request; False when the connection should close."""
        try:
            head = await self._event(h, reader, conn)
            if head is None:
                return False  # the client closed, or timed out between requests
            conn.started()
            try:
                self._check(head)
                body = await self._body(h, reader, writer, head)
            except _Refusal as refusal:
                await self._refuse(h, reader, writer, refusal, self._request(head, remote))
                return False
            await self._serve(h, writer, self._request(head, remote, body))
            conn.finished()
            return True
        except h11.RemoteProtocolError as exc:
            await self._malformed(h, writer, exc.error_status_hint, str(exc))
            return False

    async def _event(
        self, h: h11.Connection, reader: asyncio.StreamReader, conn: Connection
    ) -> h11.Request | None:
        """The next request's head; None when the client closed or took too long."""
        loop = asyncio.get_running_loop()
        while True:
            event = h.next_event()
            if isinstance(event, h11.Request):
                return event
            if event is not h11.NEED_DATA:
                return None  # closed (PAUSED cannot happen at a cycle's start)
            when, why = conn.deadline()
            try:
                async with asyncio.timeout_at(when):
                    data = await reader.read(READ_SIZE)
            except TimeoutError:
                if loop.time() < when:
                    continue  # the deadline moved (a request started meanwhile)
                self.guard.timed_out(why)
                return None
            if not data:
                return None  # the client closed (mid-request, it gets no answer either)
            conn.receiving()
            h.receive_data(data)

    @staticmethod
    def _check(head: h11.Request) -> None:
        if len(head.headers) > MAX_FIELDS:
            raise _Refusal(431, f"more than {MAX_FIELDS} header fields")
        for name, value in head.headers:
            if len(name) + len(value) + 2 > MAX_FIELD:
                raise _Refusal(431, f"a header field longer than {MAX_FIELD} bytes")

    @staticmethod
    def _request(head: h11.Request, remote: str | None, body: bytes = b"") -> Request:
        headers = Headers((n.decode("latin-1"), v.decode("latin-1")) for n, v in head.headers)
        return Request(
            head.method.decode("ascii", "replace").upper(),
            head.target.decode("latin-1"),
            headers,
            body,
            remote=remote,
            version=head.http_version.decode("ascii", "replace"),
        )

    async def _body(
        self,
        h: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        head: h11.Request,
    ) -> bytes:
        length = dict(head.headers).get(b"content-length")
        if length is not None and int(length) > self._max_body:
            raise _Refusal(413, f"the body is larger than {self._max_body} bytes")
        if h.they_are_waiting_for_100_continue:
            writer.write(
                h.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
            )
        parts: list[bytes] = []
        size = 0
        timeout = self.limits.body_timeout
        try:
            async with asyncio.timeout(timeout):
                while True:
                    event = h.next_event()
                    if event is h11.NEED_DATA:
                        h.receive_data(await reader.read(READ_SIZE))
                    elif isinstance(event, h11.Data):
                        size += len(event.data)
                        if size > self._max_body:
                            raise _Refusal(413, f"the body is larger than {self._max_body} bytes")
                        parts.append(bytes(event.data))
                    elif isinstance(event, h11.EndOfMessage):
                        return b"".join(parts)
                    else:  # ConnectionClosed mid-body
                        raise ConnectionResetError("the client went away mid-body")
        except TimeoutError:
            raise _Refusal(408, f"the body did not arrive within {timeout:.0f} s") from None

    async def _serve(
        self, h: h11.Connection, writer: asyncio.StreamWriter, request: Request
    ) -> None:
        exchange = _Exchange(self, h, writer, request)
        task = asyncio.current_task()
        assert task is not None
        self._busy.add(task)
        request._exchange = exchange
        try:
            response = await self._handler(request)
        except Exception:  # the handler's own funnel missed it: still no traceback out
            log.exception("web: %s %r failed", request.method, request.path[:200])
            response = json_response({"error": "farmbot failed on this request"}, status=500)
            if exchange.head_sent:
                raise
        finally:
            request._exchange = None
            self._busy.discard(task)
        if isinstance(response, StreamResponse) and response.prepared:
            await exchange.end()
        else:
            await exchange.send(response)

    async def _refuse(
        self,
        h: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        refusal: _Refusal,
        request: Request,
    ) -> None:
        """Answer a request that is not served (too big, too slow), then close: what the
        client still sends is read and dropped for a moment, as closing a socket with
        unread data resets it, and the client might lose the answer."""
        response = json_response({"error": refusal.error}, status=refusal.status)
        response.headers["Connection"] = "close"
        with contextlib.suppress(h11.LocalProtocolError, ConnectionError):
            await _Exchange(self, h, writer, request).send(response)
            if writer.can_write_eof():
                writer.write_eof()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LINGER):
                    while await reader.read(READ_SIZE):
                        pass

    async def _malformed(
        self, h: h11.Connection, writer: asyncio.StreamWriter, status: int, what: str
    ) -> None:
        """Answer what could not be parsed, when an answer can still be sent, and say so."""
        if self._on_malformed is not None:
            self._on_malformed(status, what)
        if h.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        response = json_response({"error": f"malformed request: {what}"}, status=status)
        response.headers["Connection"] = "close"
        self.prepare(Request("GET", "/", Headers()), response)
        head = b"HTTP/1.1 %d %s\r\n" % (status, _reason(status))
        lines = b"".join(
            b"%s: %s\r\n" % (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in response.headers.items()
        )
        length = b"Content-Length: %d\r\n" % len(response.body)
        with contextlib.suppress(ConnectionError):
            writer.write(head + lines + length + b"\r\n" + response.body)
            await writer.drain()


class _Protocol(asyncio.StreamReaderProtocol):
    """asyncio's stream protocol, except that the client's end of its sending closes the
    connection: no HTTP client half-closes and then waits for an answer, while one that
    went away (a closed page, a killed hook) must stop counting as open at once."""

    def eof_received(self) -> bool:
        super().eof_received()
        return False


class _Refusal(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


class Route:
    """One method and path pattern; ``{name}`` matches one path segment."""

    __slots__ = ("_parts", "handler", "method", "pattern")

    def __init__(self, method: str, pattern: str, handler: Handler) -> None:
        self.method = method.upper()
        self.pattern = pattern
        self.handler = handler
        self._parts = pattern.split("/")

    def __repr__(self) -> str:
        return f"<Route {self.method} {self.pattern}>"

    def match(self, path: str) -> dict[str, str] | None:
        parts = path.split("/")
        if len(parts) != len(self._parts):
            return None
        found: dict[str, str] = {}
        for want, got in zip(self._parts, parts, strict=True):
            if want.startswith("{") and want.endswith("}"):
                if not got:
                    return None
                found[want[1:-1]] = got
            elif want != got:
                return None
        return found


class Router:
    """Finds a request's route: GET routes take HEAD too."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler) -> Route:
        route = Route(method, pattern, handler)
        self.routes.append(route)
        return route

    def resolve(self, request: Request) -> tuple[Route | None, list[str]]:
        """The route for ``request`` (its ``match_info`` set), or None and the methods its
        path allows (none: no such path)."""
        method = "GET" if request.method == "HEAD" else request.method
        allowed: list[str] = []
        for route in self.routes:
            found = route.match(request.path)
            if found is None:
                continue
            if route.method == method:
                request.match_info = found
                return route, []
            allowed.append(route.method)
        return None, allowed
