"""``farmbot hook``: forward one Claude Code or Codex hook event (JSON on stdin) to the daemon.

It runs on every tool call of every agent, so it imports almost nothing (no argparse,
urllib, json or aiohttp: one hand-written HTTP/1.1 request on a raw socket) and it never
breaks the agent: whatever goes wrong, the event is spooled (the daemon replays the spool
on its next start) and the exit status is 0.

Stdout is the hook's answer to the CLI. For a ``PermissionRequest`` the daemon holds the
request until a person decides (up to its ``permission_hold``) and answers with the
decision, which is printed -- for Codex only what it accepts (allow, or deny with a
message; the daemon never answers it with ``updatedPermissions`` or ``interrupt``, which
Codex refuses). For anything else, and whenever the daemon is down, slow or says nothing,
nothing is printed and the CLI carries on as if there were no hook (its own dialog shows).
The exit status is always 0: never 2, which Codex (and Claude Code) read as "deny".

Settings come from options, else the environment the supervisor gives every agent::

    --agent       FARMBOT_AGENT            the agent id the event belongs to
    --url         FARMBOT_URL              the daemon, e.g. http://127.0.0.1:8765
    --token       FARMBOT_HOOK_TOKEN       the agent's hook token
    --token-file  FARMBOT_HOOK_TOKEN_FILE  ... or a file holding it (kept off command lines)
    --spool-dir   FARMBOT_SPOOL_DIR        where events wait while the daemon is down
    --state-dir   FARMBOT_STATE_DIR        (older hooks) the spool is <state dir>/spool

A spooled event carries a MAC made with the agent's hook token, so the daemon replays
only events that agent really sent (see ``spool_event``).
"""

import os
import sys
import time

CONNECT_TIMEOUT = 0.5
TOTAL_TIMEOUT = 2.0
HOLD_TIMEOUT = 900.0  # a held PermissionRequest (the daemon lets go sooner, at its limit)
SPOOL_DIR = "spool"
REFUSED_DIR = "refused"  # events the daemon refused: kept, never replayed
DEFAULT_STATE_DIR = "~/.local/state/farmbot"

_OPTIONS = {
    "--agent": "FARMBOT_AGENT",
    "--url": "FARMBOT_URL",
    "--token": "FARMBOT_HOOK_TOKEN",
    "--token-file": "FARMBOT_HOOK_TOKEN_FILE",
    "--spool-dir": "FARMBOT_SPOOL_DIR",
    "--state-dir": "FARMBOT_STATE_DIR",
}
_USAGE = (
    "usage: farmbot hook [--agent ID] [--url URL] [--token TOKEN | --token-file PATH]\n"
    "                    [--spool-dir DIR] < event.json\n"
    "Forwards one Claude Code or Codex hook event to farmbot; spools it when farmbot is down.\n"
)
MAC_HEX = 64  # HMAC-SHA256, hex
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def valid_agent_id(agent: str) -> bool:
    """Whether ``agent`` matches ``^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`` (no regex import)."""
    return 0 < len(agent) <= 64 and agent[0] not in "_.-" and all(c in _ID_CHARS for c in agent)


def main(argv: list[str] | None = None) -> int:
    """Deliver the event on stdin, or spool it; return 0 whatever happens."""
    args = sys.argv[1:] if argv is None else argv
    if "-h" in args or "--help" in args:
        sys.stderr.write(_USAGE)
        return 0
    try:
        body = sys.stdin.buffer.read()
    except (OSError, ValueError, AttributeError):  # no usable stdin: nothing to forward
        return 0
    if not body.strip():
        return 0
    opts = _options(args)
    agent = opts["--agent"]
    token = opts["--token"] or _read_token(opts["--token-file"])
    # Broad on purpose: this runs inside the agent's tool loop, and a failing hook must
    # never disturb it. The event is not lost: it goes to the spool.
    status, answer = 0, b""
    holding = b'"PermissionRequest"' in body
    try:
        if agent:
            limit = HOLD_TIMEOUT if holding else TOTAL_TIMEOUT
            status, answer = post(opts["--url"], agent, token, body, total_timeout=limit)
    except Exception:
        pass
    if 200 <= status < 300:
        if holding and answer.lstrip().startswith(b'{"hookSpecificOutput"'):
            try:
                sys.stdout.buffer.write(answer)
                sys.stdout.flush()
            except (OSError, ValueError):  # the CLI went away: nothing to answer
                pass
        return 0
    spool = opts["--spool-dir"] or os.path.join(
        opts["--state-dir"] or os.path.expanduser(DEFAULT_STATE_DIR), SPOOL_DIR
    )
    if 400 <= status < 500:
        # The daemon refused it (wrong token, bad body): kept for a human to look at, never
        # replayed -- replaying would skip the token check.
        spool = os.path.join(spool, REFUSED_DIR)
    try:
        spool_event(spool, agent or None, body, token=token or None)
    except Exception:
        pass
    return 0


def _read_token(path: str) -> str:
    if not path:
        return ""
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except (OSError, ValueError):
        return ""


def _options(argv: list[str]) -> dict[str, str]:
    values = {name: os.environ.get(env, "") for name, env in _OPTIONS.items()}
    i = 0
    while i < len(argv):
        name, eq, value = argv[i].partition("=")
        if name in values:
            if not eq:
                i += 1
                value = argv[i] if i < len(argv) else ""
            values[name] = value
        i += 1
    return values


def post(
    url: str,
    agent: str,
    token: str,
    body: bytes,
    *,
    connect_timeout: float = CONNECT_TIMEOUT,
    total_timeout: float = TOTAL_TIMEOUT,
) -> tuple[int, bytes]:
    """POST ``body`` to ``{url}/hooks/claude/{agent}?token=...``; (HTTP status, body).

    The status is 0 when there was no answer.
    """
    if not url.startswith("http://") or not valid_agent_id(agent) or not token.isalnum():
        return 0, b""
    import _socket  # the C module: ``socket`` would pull in enum and selectors

    deadline = time.monotonic() + total_timeout
    hostport, _, prefix = url[7:].partition("/")
    prefix = prefix.strip("/")
    if hostport.startswith("["):  # [IPv6]:port
        host, _, port = hostport[1:].partition("]")
        port = port[1:]
    else:
        host, _, port = hostport.partition(":")
    path = f"{'/' + prefix if prefix else ''}/hooks/claude/{agent}?token={token}"
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1") + body
    # A bytes host: a str one makes getaddrinfo import the idna codec (and re).
    for family, kind, proto, _name, address in _socket.getaddrinfo(
        host.encode(), int(port or 80), 0, _socket.SOCK_STREAM
    ):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(connect_timeout)
            try:
                sock.connect(address)
            except OSError:
                continue
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(4096):  # the daemon closes after answering
                answer += chunk
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
        finally:
            sock.close()
        head, _, content = answer.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1:2]
        return (int(status[0]) if status and status[0].isdigit() else 0), content
    return 0, b""


def spool_event(
    spool_dir: str | os.PathLike[str], agent: str | None, body: bytes, *, token: str | None = None
) -> str:
    """Write the event atomically to ``spool_dir/<time_ns>-<pid>.json``; return its path.

    The file is ``{"event": <body>, "received_at": <unix>, "agent": ..., "mac": ...}`` with
    the body copied verbatim, so spooling needs no JSON parser; a body that is not JSON
    makes a file the replay quarantines. ``mac`` is HMAC-SHA256 with the agent's hook
    ``token`` over every byte before ``, "mac"``: the replay checks it, so a file dropped
    into the spool by anyone without that token is never applied. Without a token (or an
    agent) there is no ``mac``, and the replay quarantines the file.
    """
    now = time.time_ns()
    os.makedirs(spool_dir, mode=0o700, exist_ok=True)
    final = os.path.join(spool_dir, f"{now}-{os.getpid()}.json")
    temporary = final + ".tmp"
    name = f'"{agent}"' if agent is not None and valid_agent_id(agent) else "null"
    # The body goes first and "agent" last: with duplicate keys JSON's last one wins, so
    # nothing inside the body can speak for another agent.
    record = b'{"event": %s, "received_at": %.6f, "agent": %s' % (
        body.strip(),
        now / 1e9,
        name.encode(),
    )
    if token and name != "null":
        record += b', "mac": "%s"' % _hmac_sha256(token.encode(), record).encode()
    record += b"}\n"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(record)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.rename(temporary, final)
    return final


def _hmac_sha256(key: bytes, message: bytes) -> str:
    """HMAC-SHA256 (RFC 2104) in hex, on the small ``_sha256`` module: ``hmac`` would
    load OpenSSL, several times slower to import, on the path where the daemon is down."""
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]
    except ImportError:  # a Python built without it
        from hashlib import sha256
    if len(key) > 64:
        key = sha256(key).digest()
    key = key.ljust(64, b"\0")
    inner = sha256(bytes(k ^ 0x36 for k in key) + message).digest()
    return str(sha256(bytes(k ^ 0x5C for k in key) + inner).hexdigest())


if __name__ == "__main__":
    sys.exit(main())
