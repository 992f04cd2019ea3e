"""Request hygiene for the web interface: connection limits, failed logins, headers.

- ``ConnectionGuard`` keeps the server's connections (farmbot/adapters/http.py): it caps
  concurrent connections (well below the open-file limit, so a flood never reaches
  ``EMFILE``), closes a connection whose request headers do not arrive in time or whose
  keep-alive idles too long, and at the cap makes room by closing the connection that
  has been idle longest (a half-open one first, as it is the oldest idle), so a flood of
  silent sockets cannot lock out ``/healthz``. It logs the condition once per interval.
- ``FailedLogins`` counts refused keys and logs them, at most once per interval;
  ``MalformedRequests`` does the same for requests the server could not parse.
- ``security_headers`` is what every response carries; the page's Content-Security-Policy
  allows exactly the page's own inline script and style, by hash.
- ``exposure`` says what is wrong with a listen address other than loopback.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import logging
import re
import resource
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("farmbot.adapters.web")


@dataclass(frozen=True, slots=True)
class Limits:
    """How much the web server takes on at once, and how long it waits."""

    max_connections: int = 256  # and never more than a quarter of the open-file limit
    header_timeout: float = 10.0  # a request's headers must arrive within this
    keepalive_timeout: float = 15.0  # an idle keep-alive connection is closed after this
    body_timeout: float = 30.0  # a request's body must arrive within this
    backlog: int = 128  # the listening socket's accept queue
    max_streams: int = 16  # live-update streams open at once
    log_interval: float = 60.0  # a recurring condition is logged at most this often

    def connection_cap(self) -> int:
        """``max_connections``, lowered to a quarter of this process's open-file limit."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY or soft <= 0:
            return self.max_connections
        return max(8, min(self.max_connections, soft // 4))


class Connection:
    """One accepted connection, as the guard sees it: how busy, since when idle.

    The server (farmbot/adapters/http.py) tells it when a request starts and ends; it
    asks ``deadline`` how long it may wait for the next bytes.
    """

    def __init__(self, guard: ConnectionGuard, transport: asyncio.Transport) -> None:
        self._guard = guard
        self.transport: asyncio.Transport | None = transport
        self.busy = 0  # requests being handled now (a live stream stays busy)
        self.requests = 0
        self.idle_since = guard.loop_time()
        self.header_since: float | None = None  # bytes of a request arrived at this time

    def __repr__(self) -> str:
        return f"<Connection busy={self.busy} requests={self.requests}>"

    def receiving(self) -> None:
        """Bytes of a new request arrived: its headers must all arrive in time."""
        if not self.busy and self.header_since is None:
            self.header_since = self._guard.loop_time()

    def started(self) -> None:
        self.busy += 1
        self.requests += 1
        self.header_since = None
        self._guard.not_idle(self)

    def finished(self) -> None:
        self.busy = max(0, self.busy - 1)
        if not self.busy:
            self.idle_since = self._guard.loop_time()
            self.header_since = None
            self._guard.now_idle(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def deadline(self) -> tuple[float, str]:
        """By when (loop time) the connection must have sent more, and what it is waiting for."""
        limits = self._guard.limits
        if self.header_since is not None:
            return self.header_since + limits.header_timeout, "slow headers"
        if self.requests == 0:
            return self.idle_since + limits.header_timeout, "no request"
        return self.idle_since + limits.keepalive_timeout, "idle keep-alive"


class ConnectionGuard:
    """Caps and times out the connections of one server; see the module docstring."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.cap = limits.connection_cap()
        self._clock = clock
        self._open: dict[asyncio.Transport, Connection] = {}
        self._idle: OrderedDict[Connection, None] = OrderedDict()  # longest idle first
        self._reported_at: float | None = None
        self._since_report = 0
        self.accepted = 0
        self.evicted = 0  # closed at the cap to admit a newer connection
        self.refused = 0  # closed at once: at the cap with every connection busy
        self.timeouts: dict[str, int] = {"slow headers": 0, "no request": 0, "idle keep-alive": 0}
        self.peak = 0

    def __repr__(self) -> str:
        return f"<ConnectionGuard open={len(self._open)} cap={self.cap}>"

    def statistics(self) -> dict[str, int]:
        return {
            "connections": len(self._open),
            "connections_accepted": self.accepted,
            "connections_peak": self.peak,
            "connection_cap": self.cap,
            "connections_evicted": self.evicted,
            "connections_refused": self.refused,
            "header_timeouts": self.timeouts["slow headers"] + self.timeouts["no request"],
            "keepalive_timeouts": self.timeouts["idle keep-alive"],
        }

    @property
    def open(self) -> int:
        return len(self._open)

    def loop_time(self) -> float:
        return asyncio.get_running_loop().time()

    # -- what the connections tell the guard ----------------------------------------

    def admit(self, transport: asyncio.Transport) -> Connection | None:
        """The new connection, or None when it must be closed at once (at the cap, with
        every connection busy). At the cap with one idle, the longest idle is closed."""
        if len(self._open) >= self.cap:
            if self._idle:
                oldest, _ = next(iter(self._idle.items()))
                self.forget(oldest)  # abort() closes its socket on the loop's next turn
                oldest.close()
                self.evicted += 1
                self._at_cap()
            else:
                self.refused += 1
                self._at_cap()
                return None
        conn = Connection(self, transport)
        self.accepted += 1
        self._open[transport] = conn
        self._idle[conn] = None
        self.peak = max(self.peak, len(self._open))
        return conn

    def forget(self, conn: Connection) -> None:
        if conn.transport is not None and self._open.get(conn.transport) is conn:
            del self._open[conn.transport]
        self._idle.pop(conn, None)

    def now_idle(self, conn: Connection) -> None:
        self._idle.pop(conn, None)
        self._idle[conn] = None

    def not_idle(self, conn: Connection) -> None:
        self._idle.pop(conn, None)

    def timed_out(self, why: str) -> None:
        self.timeouts[why] += 1

    def idle(self) -> list[Connection]:
        """The connections with no request running, longest idle first."""
        return list(self._idle)

    def close_all(self) -> None:
        for conn in list(self._open.values()):
            conn.close()

    def _at_cap(self) -> None:
        now = self._clock()
        self._since_report += 1
        if self._reported_at is not None and now - self._reported_at < self.limits.log_interval:
            return
        log.warning(
            "web: %d connections open, the cap: closing the longest idle to admit new ones, "
            "refusing when none is idle (%d since the last report; %d closed, %d refused in "
            "all); logged at most every %.0f s",
            len(self._open),
            self._since_report,
            self.evicted,
            self.refused,
            self.limits.log_interval,
        )
        self._reported_at = now
        self._since_report = 0


class FailedLogins:
    """Counts requests refused for a missing or wrong key; logs them once per interval."""

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._interval = interval
        self._clock = clock
        self._logged_at: float | None = None
        self._unlogged = 0
        self.count = 0

    def record(self, remote: str | None, path: str, reason: str) -> None:
        self.count += 1
        now = self._clock()
        if self._logged_at is not None and now - self._logged_at < self._interval:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more since the last report)" if self._unlogged else ""
        log.warning(
            "web: refused %s from %s: %s%s; %d refused in all, logged at most every %.0f s",
            path[:200],
            remote or "?",
            reason,
            more,
            self.count,
            self._interval,
        )
        self._logged_at = now
        self._unlogged = 0


class MalformedRequests:
    """Logs a request the server could not parse as one line, at most once per interval:
    a client's garbage is not farmbot's bug and earns no traceback."""

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._interval = interval
        self._clock = clock
        self._logged_at: float | None = None
        self._unlogged = 0
        self.count = 0

    def record(self, status: int, what: str) -> None:
        """The server answered a malformed request with ``status``; ``what`` was wrong."""
        self.count += 1
        now = self._clock()
        if self._logged_at is not None and now - self._logged_at < self._interval:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more since the last report)" if self._unlogged else ""
        log.warning(
            "web: answered a malformed request with %d (%s)%s; %d in all, logged at most "
            "every %.0f s",
            status,
            " ".join(what.split())[:160],
            more,
            self.count,
            self._interval,
        )
        self._logged_at = now
        self._unlogged = 0


# -- headers ---------------------------------------------------------------------------

NONE = "'none'"
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def page_policy(page: str) -> str:
    """A Content-Security-Policy that allows the page's own inline script and style only."""
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for tag, body in _INLINE.findall(page):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        hashes[tag].append(f"'sha256-{digest}'")
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {' '.join(hashes['script']) or NONE}",
            f"style-src {' '.join(hashes['style']) or NONE}",
            "connect-src 'self'",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


API_POLICY = "default-src 'none'; frame-ancestors 'none'"


def security_headers(policy: str = API_POLICY) -> dict[str, str]:
    """What every response carries: no framing, no sniffing, no referrer, ``policy``."""
    return {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


# -- the listen address ------------------------------------------------------------------


def exposure(host: str) -> str | None:
    """What is wrong with serving plain HTTP on ``host``; None for a loopback address."""
    if host == "localhost":
        return None
    try:
        address = ipaddress.ip_address(host.strip("[]")) if host else None
    except ValueError:
        address = None  # a host name: it resolves to who knows what
    if address is not None and address.is_loopback:
        return None
    where = (
        "every network interface"
        if (address is not None and address.is_unspecified) or not host
        else f"{host}, which is not a loopback address"
    )
    return (
        f"the web console listens on {where} over plain HTTP: anyone who can reach it may "
        "try keys, and the key and every command cross the network unencrypted. Bind "
        "127.0.0.1 and put a TLS reverse proxy in front (README: Web console and API)"
    )
