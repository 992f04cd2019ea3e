"""Web request hygiene: headers, odd input, failed logins, connection floods, the listen address.

Requests go over real sockets to a real aiohttp server: a raw socket where a client
library would refuse to send the bytes (a non-ASCII header), aiohttp's client elsewhere.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import resource
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from farmbot.adapters.hooks import hook_token
from farmbot.adapters.web import WebInterface
from farmbot.adapters.web_guard import Limits, exposure
from farmbot.config.schema import SupervisorConfig
from farmbot.messages import Incoming, Reply
from tests.daemon import free_port, git_project, serve
from tests.farm import make_config
from tests.helpers import FakeClock, retry_until
from tests.web import Web, running

KEY = "k" * 43


@pytest.fixture
async def web(tmp_path: Path, tmux_socket: str) -> AsyncIterator[Web]:
    async with running(make_config(tmp_path, tmux_socket)) as web:
        yield web


async def small_status() -> dict[str, Any]:
    return {"version": "test", "now": time.time(), "agents": [], "gates": [], "alerts": []}


@asynccontextmanager
async def standalone(
    limits: Limits | None = None, clock: Any = time.monotonic, host: str = "127.0.0.1"
) -> AsyncIterator[WebInterface]:
    """A web interface alone, whose commands echo the text they got."""
    web = WebInterface(host, 0, KEY, status=small_status, limits=limits, clock=clock)

    async def echo(msg: Incoming) -> Reply:
        return Reply(f"got {msg.text!r}")

    await web.start(echo)
    try:
        yield web
    finally:
        await web.stop()


async def raw(port: int, request: bytes, timeout: float = 5) -> tuple[int, bytes]:
    """Send ``request`` as bytes; the status code and the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()
    status = re.match(rb"HTTP/1\.[01] (\d{3}) ", answer)
    assert status, answer[:200]
    return int(status[1]), answer


def post(path: str, body: bytes, *headers: bytes) -> bytes:
    lines = [b"POST " + path.encode() + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [*headers, b"Content-Length: " + str(len(body)).encode()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# -- headers --------------------------------------------------------------------------


async def test_every_answer_forbids_framing_and_sniffing(web: Web) -> None:
    for path, headers in [("/", {}), ("/api/status", {}), ("/api/status", web.auth), ("/x", {})]:
        async with web.http.get(path, headers=headers) as r:
            assert r.headers["X-Frame-Options"] == "DENY", path
            assert r.headers["X-Content-Type-Options"] == "nosniff", path
            assert r.headers["Referrer-Policy"] == "no-referrer", path
            assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"], path


async def test_the_page_policy_allows_its_own_inline_script_and_style_only(web: Web) -> None:
    async with web.http.get("/") as r:
        policy = r.headers["Content-Security-Policy"]
        page = await r.text()
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["connect-src"] == "'self'"
    assert "unsafe" not in policy
    [script] = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)
    [style] = re.findall(r"<style>(.*?)</style>", page, re.DOTALL)
    for body, directive in [(script, "script-src"), (style, "style-src")]:
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert directives[directive] == f"'sha256-{digest}'"
    assert "<script src" not in page and " style=" not in page and " onclick=" not in page


# -- odd input ----------------------------------------------------------------------------


async def test_a_non_ascii_key_is_a_401(web: Web) -> None:
    for key in ["ключ".encode(), b"\xff\xfe\xfd", web.key.encode() + "é".encode()]:
        status, answer = await raw(web.app.farm.web.port, post(
            "/api/command", b'{"text": "/help"}', b"Authorization: Bearer " + key,
            b"Content-Type: application/json",
        ))  # fmt: skip
        assert status == 401, answer
        assert b"missing or wrong key" in answer


async def test_a_bogus_charset_is_a_400_that_names_it(web: Web) -> None:
    status, answer = await raw(web.app.farm.web.port, post(
        "/api/command", b'{"text": "/help"}', b"Authorization: Bearer " + web.key.encode(),
        b"Content-Type: application/json; charset=bogus",
    ))  # fmt: skip
    assert status == 400, answer
    assert b"charset 'bogus' is not supported: send UTF-8 JSON" in answer
    async with web.http.post(  # UTF-8, named any way, is fine
        "/api/command",
        data=b'{"text": "/help"}',
        headers={**web.auth, "Content-Type": 'application/json; charset="UTF-8"'},
    ) as r:
        assert r.status == 200


FUZZ: list[tuple[str, bytes, list[bytes], set[int]]] = [
    ("charset-empty", b'{"text": "/help"}', [b"Content-Type: application/json; charset="], {200}),
    ("charset-utf16", '{"text": "/help"}'.encode("utf-16"),
     [b"Content-Type: application/json; charset=utf-16"], {400}),
    ("charset-rot13", b'{"text": "/help"}', [b"Content-Type: application/json; charset=rot13"],
     {400}),
    ("content-type-junk", b'{"text": "/help"}', [b"Content-Type: ;;;=\"\x01"], {200, 400}),
    ("content-type-latin1", b'{"text": "/help"}', [b"Content-Type: \xe9t\xe9"], {200, 400}),
    ("no-content-type", b'{"text": "/help"}', [], {200}),
    ("nan", b'{"text": NaN}', [], {400}),
    ("huge-number", b'{"text": 1' + b"0" * 5000 + b"}", [], {400}),
    ("bad-escape", b'{"text": "\\x41"}', [], {400}),
    ("nul", b'{"text": "/help\\u0000"}', [], {200}),
    ("lone-high-surrogate", b'{"text": "\\ud800"}', [], {200}),
    ("lone-low-surrogate-in-prompt", b'{"text": "/send builder-1 a\\udc00b"}', [], {200}),
    ("surrogate-key", b'{"\\udfff": "/help", "text": "/help"}', [], {200}),
    ("button-not-bool", b'{"text": "/help", "button": {"a": [1]}}', [], {200}),
    ("utf8-bom", b'\xef\xbb\xbf{"text": "/help"}', [], {400}),
    ("overlong-utf8", b'{"text": "\xc0\xaf"}', [], {400}),
    ("empty", b"", [], {400}),
    ("weird-header", b'{"text": "/help"}', [b"X-Farmbot-Client: \xff\xfe"], {200}),
    ("huge-header", b'{"text": "/help"}', [b"X-Junk: " + b"a" * 9000], {400, 431}),
    ("many-headers", b'{"text": "/help"}', [b"X-H%d: v" % i for i in range(200)], {400, 431}),
    ("too-big", b'{"text": "' + b"a" * (1 << 21) + b'"}', [], {413}),
]  # fmt: skip


@pytest.mark.parametrize(("body", "headers", "expected"), [f[1:] for f in FUZZ],
                         ids=[f[0] for f in FUZZ])  # fmt: skip
async def test_odd_commands_get_an_answer_never_a_5xx(
    web: Web,
    body: bytes,
    headers: list[bytes],
    expected: set[int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    request = post("/api/command", body, b"Authorization: Bearer " + web.key.encode(), *headers)
    status, answer = await raw(web.app.farm.web.port, request)
    assert status in expected, answer[:300]
    assert b"Traceback" not in answer
    if status == 200:  # it reached the router, which replied
        assert b'"text": ' in answer and b'"ok": ' in answer
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert not tracebacks, tracebacks


@pytest.mark.parametrize(
    "text",
    ["\ud800", "/help \udc80", "/send builder-1 a\udc00b", "/task add proj t\udfff", "/status\x00"],
    ids=["alone", "argument", "prompt", "task", "nul"],
)
async def test_any_command_text_gets_an_answer_and_an_audit_row(
    web: Web, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = json.dumps({"text": text}).encode()  # "\\udXXX" escapes, as a fuzzer sends them
    status, answer = await raw(
        web.app.farm.web.port,
        post("/api/command", body, b"Authorization: Bearer " + web.key.encode()),
    )
    assert status == 200, answer[:300]
    reply = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert reply["text"], reply
    [row] = await web.app.farm.storage.audit.recent_audit(5)
    assert row.command == re.sub("[\ud800-\udfff\x00]", "\ufffd", text)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize("hold", [0.0])  # no CLI waits for this request's answer
async def test_a_hook_event_with_a_lone_surrogate_is_stored_and_opens_its_gate(
    tmp_path: Path, tmux_socket: str, hold: float, caplog: pytest.LogCaptureFixture
) -> None:
    supervisor = SupervisorConfig(tick_seconds=0.1, ready_timeout=30, permission_hold=hold)
    async with running(make_config(tmp_path, tmux_socket, supervisor=supervisor)) as web:
        await _surrogate_hook(web, caplog)


async def _surrogate_hook(web: Web, caplog: pytest.LogCaptureFixture) -> None:
    assert (await web.command("/spawn architect"))["ok"]
    token = hook_token(web.key, "architect")
    event = {
        "hook_event_name": "PermissionRequest",
        "tool_name": "Bash",
        "tool_input": {"command": "rm -rf build-\udc80", "description": "clean \ud800"},
    }
    farm = web.app.farm
    status, answer = await raw(
        farm.web.port,
        post(f"/hooks/claude/architect?token={token}", json.dumps(event).encode()),
    )
    assert status == 200, answer[:300]
    [gate] = await farm.gates.pending()
    assert "rm -rf build-\ufffd" in gate.title + gate.detail
    stored = [e for e in await farm.storage.events.recent_events(10) if e.kind.startswith("hook.")]
    assert stored and stored[0].data["tool_input"]["command"] == "rm -rf build-\ufffd"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_odd_requests_elsewhere_get_an_answer_never_a_5xx(web: Web) -> None:
    port = web.app.farm.web.port
    key = web.key.encode()
    requests = [
        b"GET /api/status?%ff%fe=%c0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer " + key + b"\r\n\r\n",
        b"GET /api/stream?ticket=%ff%fe%00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /api/stream?ticket= HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: \xff\r\nConnection: close\r\n\r\n",
        b"BREW /api/command HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer " + key + b"\r\n\r\n",
        b"POST /api/command HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Transfer-Encoding: chunked\r\nAuthorization: Bearer " + key + b"\r\n\r\nzz\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: \x00\x01\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # a TLS hello
    ]
    for request in requests:
        status, answer = await raw(port, request)
        assert 200 <= status < 500, (request[:60], answer[:300])
        assert b"Traceback" not in answer
    async with web.http.get("/healthz") as r:  # and it still answers
        assert r.status == 200


async def test_malformed_requests_are_one_line_in_the_log_not_a_traceback_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with standalone() as web:
        with caplog.at_level(logging.DEBUG):
            for n in range(5):
                status, _ = await raw(web.port, b"GET / HTTP/1.1\r\nX-Bad: \x01%d\r\n\r\n" % n)
                assert status == 400
        assert web.statistics()["malformed_requests"] == 5
    reports = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert [r.levelno for r in reports] == [logging.WARNING]
    assert reports[0].getMessage().startswith("web: answered a malformed request with 400 (")
    assert not [r for r in caplog.records if r.exc_info]


# -- failed logins ------------------------------------------------------------------------


async def test_failed_logins_are_counted_and_logged_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(start=1000.0)
    async with standalone(clock=clock) as web, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{web.port}"
        with caplog.at_level(logging.WARNING, logger="farmbot.adapters.web"):
            for n in range(20):
                headers = {"Authorization": f"Bearer wrong-{n}"} if n % 2 else {}
                async with http.get(f"{url}/api/status", headers=headers) as r:
                    assert r.status == 401
            async with http.get(f"{url}/api/stream?ticket=made-up") as r:
                assert r.status == 401
            async with http.get(f"{url}/api/status", headers={"Authorization": f"Bearer {KEY}"}):
                pass
            refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
            assert len(refused) == 1
            assert refused[0].startswith("web: refused /api/status from 127.0.0.1: no key;")
            assert "wrong-" not in refused[0]
            clock.advance(61)
            async with http.get(f"{url}/api/status", headers={"Authorization": "Bearer x"}):
                pass
        refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(refused) == 2
        assert "wrong key (20 more since the last report); 22 refused in all" in refused[1]
        assert web.statistics()["failed_logins"] == 22


async def test_the_farm_statistics_show_failed_logins(web: Web) -> None:
    async with web.http.get("/api/status", headers={"Authorization": "Bearer nope"}) as r:
        assert r.status == 401
    stats = (await web.status())["stats"]["web"]
    assert "failed_logins=1" in stats.split()


async def test_a_stream_ticket_expires_after_30_seconds() -> None:
    clock = FakeClock(start=1000.0)
    async with standalone(clock=clock) as web, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{web.port}"
        auth = {"Authorization": f"Bearer {KEY}"}
        tickets = []
        for _ in range(2):
            async with http.post(f"{url}/api/stream-ticket", headers=auth) as r:
                tickets.append((await r.json())["ticket"])
        clock.advance(29)
        async with http.get(f"{url}/api/stream", params={"ticket": tickets[0]}) as r:
            assert r.status == 200
        clock.advance(2)
        async with http.get(f"{url}/api/stream", params={"ticket": tickets[1]}) as r:
            assert r.status == 401
        assert web.statistics()["failed_logins"] == 1


async def test_too_many_streams_are_a_429() -> None:
    async with standalone(Limits(max_streams=2)) as web, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{web.port}/api/stream"
        auth = {"Authorization": f"Bearer {KEY}"}
        streams = [await http.get(url, headers=auth) for _ in range(2)]
        async with http.get(url, headers=auth) as r:
            assert r.status == 429
            assert r.headers["Retry-After"] == "5"
        for stream in streams:
            assert stream.status == 200
            stream.close()


# -- connections ---------------------------------------------------------------------------


@asynccontextmanager
async def connection(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> float:
    """How long the server took to close the connection (reading whatever it sent)."""
    started = time.monotonic()
    with suppress(ConnectionResetError):
        await asyncio.wait_for(reader.read(), within)
    return time.monotonic() - started


async def test_a_silent_or_slow_connection_is_closed_and_an_idle_one_too() -> None:
    limits = Limits(header_timeout=0.3, keepalive_timeout=0.6)
    async with standalone(limits) as web:
        async with connection(web.port) as (silent, _):
            assert 0.25 < await closed_by_server(silent, 3) < 2

        async with connection(web.port) as (slow, writer):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()

            async def dribble() -> None:  # a byte every 0.05 s: headers that never end
                with suppress(ConnectionError):
                    while True:
                        writer.write(b"X")
                        await writer.drain()
                        await asyncio.sleep(0.05)

            dribbling = asyncio.create_task(dribble())
            await closed_by_server(slow, 3)
            dribbling.cancel()
            assert time.monotonic() - started < 1.2

        async with connection(web.port) as (idle, writer):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await idle.readuntil(b'"version": "')).startswith(b"HTTP/1.1 200 OK")
            assert 0.5 < await closed_by_server(idle, 3) < 2  # kept alive, then closed idle
        stats = web.statistics()
        assert (stats["header_timeouts"], stats["keepalive_timeouts"]) == (2, 1)


async def test_at_the_cap_the_longest_idle_connection_makes_room(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with standalone(Limits(max_connections=8)) as web, aiohttp.ClientSession() as http:
        assert web.guard.cap == 8
        with caplog.at_level(logging.WARNING, logger="farmbot.adapters.web"):
            flood = [await asyncio.open_connection("127.0.0.1", web.port) for _ in range(40)]
            await retry_until(lambda: web.guard.accepted >= 40, message="40 connections")
            for _ in range(3):
                async with http.get(f"http://127.0.0.1:{web.port}/healthz") as r:
                    assert r.status == 200
        assert web.guard.open <= 8
        assert int(web.statistics()["connections_evicted"]) >= 40 - 8
        warnings = [r.getMessage() for r in caplog.records if "the cap" in r.getMessage()]
        assert len(warnings) == 1, warnings  # once per interval, not once per connection
        for _, writer in flood:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()


async def test_at_the_cap_with_every_connection_busy_a_new_one_is_refused() -> None:
    limits = Limits(max_connections=8, max_streams=8)
    async with standalone(limits) as web, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{web.port}"
        streams = [
            await http.get(f"{url}/api/stream", headers={"Authorization": f"Bearer {KEY}"})
            for _ in range(8)
        ]
        for stream in streams:
            assert stream.status == 200
            assert (await stream.content.readline()) == b"event: snapshot\n"
        with pytest.raises(aiohttp.ClientError):
            async with aiohttp.ClientSession() as other, other.get(f"{url}/healthz"):
                pass
        assert int(web.statistics()["connections_refused"]) >= 1
        streams[0].close()
        await retry_until(lambda: web.guard.open < 8, message="a stream's connection to close")
        async with aiohttp.ClientSession() as other, other.get(f"{url}/healthz") as r:
            assert r.status == 200
        for stream in streams[1:]:
            stream.close()


def open_half_open(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that never send a byte."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1024), hard))
    sockets = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        sockets.append(s)
    return sockets


async def test_a_flood_of_half_open_connections_leaves_healthz_answering(
    tmp_path: Path, tmux_socket: str
) -> None:
    """The issue's numbers: 1,100 silent sockets against a daemon allowed 1,024 files."""
    repo = await git_project(tmp_path / "repo")
    port = free_port()
    config = tmp_path / "farmbot.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nstate_dir = "state"\n'
        f'[tmux]\nsocket = "{tmux_socket}"\n[[projects]]\nname = "farm"\npath = "{repo}"\n'
    )
    url = f"http://127.0.0.1:{port}"
    async with serve(config, url, tmp_path / "run", open_files=1024) as daemon:
        flooding = asyncio.create_task(asyncio.to_thread(open_half_open, port, 1100))
        flood: list[socket.socket] = []
        # A health checker's way: a new connection each time (an idle kept-alive one is
        # fair game at the cap).
        checker = aiohttp.ClientSession(
            url, connector=aiohttp.TCPConnector(force_close=True), timeout=aiohttp.ClientTimeout(3)
        )
        try:

            async def healthy() -> None:
                started = time.monotonic()
                async with checker.get("/healthz") as r:
                    assert r.status == 200
                assert time.monotonic() - started < 2

            while not flooding.done():  # /healthz answers while the flood comes in
                await healthy()
                await asyncio.sleep(0.05)
            flood = await flooding

            async def accepted_all() -> dict[str, str] | None:
                await healthy()
                async with checker.get(
                    "/api/status", headers={"Authorization": f"Bearer {daemon.key}"}
                ) as r:
                    web = (await r.json())["stats"]["web"]
                stats = dict(kv.split("=") for kv in web.split())
                return stats if int(stats["connections_accepted"]) >= 1100 else None

            stats = await retry_until(accepted_all, timeout=30, interval=0.2,
                                      message="the daemon to accept the flood")  # fmt: skip
            async with checker.post(
                "/api/command",
                json={"text": "/agents"},
                headers={"Authorization": f"Bearer {daemon.key}"},
            ) as r:
                assert (await r.json())["ok"]
        finally:
            await checker.close()
            if not flood:
                with suppress(Exception):
                    flood = await flooding
            for s in flood:
                s.close()
        assert int(stats["connection_cap"]) == 256
        assert int(stats["connections_evicted"]) >= 1100 - 256
        assert int(stats["connections_peak"]) <= 256 + 128  # at most a backlog's worth over
    log = (tmp_path / "run" / "stderr").read_text()
    assert "Too many open files" not in log
    assert len(log.splitlines()) < 30, log[-3000:]
    assert log.count("connections open, the cap") == 1


# -- the listen address ---------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_is_not_exposed(host: str) -> None:
    assert exposure(host) is None


@pytest.mark.parametrize(
    ("host", "where"),
    [
        ("0.0.0.0", "every network interface"),
        ("::", "every network interface"),
        ("", "every network interface"),
        ("192.0.2.7", "192.0.2.7, which is not a loopback address"),
        ("farm.example", "farm.example, which is not a loopback address"),
    ],
)
def test_other_addresses_are_exposed(host: str, where: str) -> None:
    warning = exposure(host)
    assert warning is not None
    assert warning.startswith(f"the web console listens on {where} over plain HTTP")
    assert "TLS reverse proxy" in warning


async def test_serving_on_every_interface_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="farmbot.adapters.web"):
        async with standalone(host="0.0.0.0") as web, aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{web.port}/healthz") as r:
                assert r.status == 200
    [warning] = [r for r in caplog.records if "plain HTTP" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert "listens on every network interface" in warning.getMessage()
