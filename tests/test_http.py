"""farmbot's HTTP server (farmbot/adapters/http.py) over real sockets.

What the web interface's tests (test_web.py, test_web_security.py) do not reach: the
framing of HTTP/1.1 itself -- pipelining, HEAD, chunked bodies, ``Expect: 100-continue``,
a body that stops arriving, streams to 1.0 and 1.1 clients and to one that went away --
and a stop with a request still running.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import pytest

from farmbot.adapters.http import (
    Headers,
    Request,
    Response,
    Router,
    Server,
    StreamResponse,
    json_response,
)
from farmbot.adapters.web_guard import ConnectionGuard, Limits
from tests.helpers import retry_until


class App:
    """A few routes, and what they saw."""

    def __init__(self) -> None:
        self.router = Router()
        self.router.add("GET", "/echo", self.echo)
        self.router.add("POST", "/echo", self.echo)
        self.router.add("GET", "/items/{item}", self.item)
        self.router.add("GET", "/stream", self.stream)
        self.router.add("GET", "/slow", self.slow)
        self.router.add("GET", "/boom", self.boom)
        self.seen: list[Request] = []
        self.stream_error: BaseException | None = None
        self.release = asyncio.Event()

    async def __call__(self, request: Request) -> Response:
        route, allowed = self.router.resolve(request)
        if route is None:
            status = 405 if allowed else 404
            return json_response({"allowed": allowed}, status=status)
        return await route.handler(request)

    async def echo(self, request: Request) -> Response:
        self.seen.append(request)
        body = await request.read()
        return json_response(
            {"method": request.method, "body": body.decode(), "query": request.query,
             "agent": request.headers.get("user-agent")}
        )  # fmt: skip

    async def item(self, request: Request) -> Response:
        return Response(text=request.match_info["item"])

    async def stream(self, request: Request) -> Response:
        response = StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for n in range(200):
                await response.write(b"data: %d\n\n" % n)
                await asyncio.sleep(0.01)
        except ConnectionError as exc:
            self.stream_error = exc
        return response

    async def boom(self, request: Request) -> Response:
        raise RuntimeError("a bug")

    async def slow(self, request: Request) -> Response:
        await self.release.wait()
        return Response(text="done")


@asynccontextmanager
async def serving(
    limits: Limits | None = None, grace: float = 5.0
) -> AsyncIterator[tuple[Server, App]]:
    app = App()
    stamped: list[int] = []

    def stamp(request: Request, response: Response) -> None:
        response.headers.setdefault("X-Stamp", "yes")
        stamped.append(response.status)

    server = Server(app, ConnectionGuard(limits or Limits()), max_body=1000, on_prepare=stamp,
                    grace=grace)  # fmt: skip
    await server.start("127.0.0.1", 0)
    try:
        yield server, app
    finally:
        await server.close()


async def exchange(port: int, data: bytes, timeout: float = 5) -> bytes:
    """Send ``data``; everything the server sends until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()


def bodies(answer: bytes) -> list[bytes]:
    """The Content-Length bodies of a run of answers."""
    found = []
    while answer:
        head, _, rest = answer.partition(b"\r\n\r\n")
        length = int(next(
            line.split(b":")[1] for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ))  # fmt: skip
        found.append(rest[:length])
        answer = rest[length:]
    return found


async def test_pipelined_requests_are_answered_in_order_on_one_connection() -> None:
    async with serving() as (server, _):
        requests = (
            b"".join(b"GET /echo?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in range(3))
            + b"GET /echo?n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        answer = await exchange(server.port, requests)
    assert [json.loads(b)["query"] for b in bodies(answer)] == [{"n": str(n)} for n in range(4)]
    assert server.guard.accepted == 1


async def test_head_gets_the_head_only_and_a_wrong_method_or_path_is_told() -> None:
    async with serving() as (server, _):
        answer = await exchange(
            server.port, b"HEAD /items/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"content-length: 1\r\n" in answer.lower() and answer.endswith(b"\r\n\r\n")
        answer = await exchange(
            server.port, b"DELETE /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 405 ")
        assert json.loads(bodies(answer)[0]) == {"allowed": ["GET", "POST"]}
        for path in [b"/items/a/b", b"/items/", b"/nothing", b"/echo/"]:
            answer = await exchange(
                server.port, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path
            )
            assert answer.startswith(b"HTTP/1.1 404 "), path
            assert b"x-stamp: yes" in answer.lower()  # every answer passes on_prepare


async def test_a_chunked_body_arrives_whole_and_an_oversized_one_is_a_413() -> None:
    async with serving() as (server, _):
        chunked = (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        answer = await exchange(server.port, chunked)
        assert json.loads(bodies(answer)[0])["body"] == "hello world"
        big = b"x" * 600
        chunked = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + (b"258\r\n" + big + b"\r\n") * 2 + b"0\r\n\r\n")  # fmt: skip
        answer = await exchange(server.port, chunked)
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert b"larger than 1000 bytes" in answer


async def test_expect_100_continue_is_answered_before_the_body_is_sent() -> None:
    async with serving() as (server, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                     b"Expect: 100-continue\r\nConnection: close\r\n\r\n")  # fmt: skip
        assert await asyncio.wait_for(reader.readline(), 5) == b"HTTP/1.1 100 Continue\r\n"
        writer.write(b"hi")
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["body"] == "hi"


async def test_a_body_that_stops_arriving_is_a_408() -> None:
    async with serving(Limits(body_timeout=0.3)) as (server, app):
        answer = await exchange(
            server.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"
        )
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b"the body did not arrive within 0 s" in answer
        assert app.seen == []


async def test_a_stream_is_chunked_for_1_1_and_close_delimited_for_1_0() -> None:
    async with serving() as (server, _):
        answer = await exchange(
            server.port, b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head.lower()
        assert body.startswith(b"9\r\ndata: 0\n\n\r\n") and body.endswith(b"0\r\n\r\n")
        answer = await exchange(server.port, b"GET /stream HTTP/1.0\r\n\r\n")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"transfer-encoding" not in head.lower()
        assert body.startswith(b"data: 0\n\ndata: 1\n\n") and body.endswith(b"data: 199\n\n")


async def test_a_stream_whose_client_went_away_fails_its_next_write_and_frees_the_slot() -> None:
    async with serving() as (server, app):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b"data: 0\n\n")
        writer.close()
        await retry_until(lambda: server.guard.open == 0, message="the connection forgotten")
        await retry_until(lambda: app.stream_error is not None, message="the write to fail")
        assert isinstance(app.stream_error, ConnectionResetError)


async def test_a_handler_that_fails_is_a_500_and_the_connection_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serving() as (server, _):
        answer = await exchange(
            server.port,
            b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /items/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    assert answer.startswith(b"HTTP/1.1 500 ") and b"RuntimeError" not in answer
    assert bodies(answer)[1] == b"b"
    [failed] = [r for r in caplog.records if r.exc_info]
    assert failed.getMessage() == "web: GET '/boom' failed"


async def test_close_lets_a_running_request_finish_within_the_grace() -> None:
    async with serving() as (server, app):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        await retry_until(lambda: server.guard.idle() == [], message="the request to start")
        idle = await asyncio.open_connection("127.0.0.1", server.port)
        await retry_until(lambda: server.guard.open == 2, message="a second connection")
        closing = asyncio.create_task(server.close())
        assert await asyncio.wait_for(idle[0].read(), 5) == b""  # an idle one is closed at once
        app.release.set()
        answer = await asyncio.wait_for(reader.read(), 5)
        await closing
        writer.close()
        idle[1].close()
    assert answer.startswith(b"HTTP/1.1 200 ") and b"connection: close" in answer.lower()
    assert answer.endswith(b"done")
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", server.port)


async def test_close_gives_up_on_a_request_that_outlasts_the_grace() -> None:
    async with serving(grace=0.2) as (server, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        await retry_until(lambda: server.guard.idle() == [], message="the request to start")
        await asyncio.wait_for(server.close(), 5)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


def test_a_request_reads_its_target_and_headers_forgivingly() -> None:
    headers = Headers([("Content-Type", 'application/json; charset="UTF-8"'), ("X-A", "1"),
                       ("x-a", "2")])  # fmt: skip
    request = Request("GET", "/a%20b/%ff?x=1&x=2&y=&%ff=%c0", headers)
    assert request.path == "/a b/\ufffd"
    assert request.query == {"x": "1", "y": "", "\ufffd": "\ufffd"}
    assert (request.headers["x-a"], request.content_type, request.charset) == (
        "1", "application/json", "UTF-8"
    )  # fmt: skip


def test_a_route_part_matches_one_segment() -> None:
    router = Router()

    async def handler(request: Request) -> Response:
        return Response()

    route = router.add("POST", "/hooks/claude/{agent}", handler)
    request = Request("POST", "/hooks/claude/builder-1", Headers())
    assert router.resolve(request) == (route, [])
    assert request.match_info == {"agent": "builder-1"}
    for path in ["/hooks/claude/", "/hooks/claude/a/b", "/hooks/claude"]:
        assert router.resolve(Request("POST", path, Headers())) == (None, [])
    assert router.resolve(Request("GET", "/hooks/claude/a", Headers())) == (None, ["POST"])
