"""Hook events into farmbot: the endpoint, the `farmbot hook` client, the spool."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from farmbot.adapters.hooks import hook_routes, hook_token, replay_spool, spool_event
from farmbot.adapters.web import WebInterface
from farmbot.bus import EventBus
from farmbot.errors import CommandError, StorageError
from farmbot.events import HookReceived
from farmbot.hooks_install import (
    HOOK_EVENTS,
    PERMISSION_TIMEOUT,
    default_hook_command,
    install_hooks,
    is_farmbot_hook,
)
from farmbot.messages import Incoming, Reply
from farmbot.models import Alert, AlertDraft, Event, NewEvent
from farmbot.storage.events import SqlEventStore
from tests.backends import AnyDatabase, Backend
from tests.hook_payloads import PAYLOADS, payload

KEY = "test-local-key-0123456789abcdef"


def tokens(agent: str) -> str:
    """Every agent's hook token (what the daemon checks spooled events with)."""
    return hook_token(KEY, agent)


AGENT = "builder-42"
SCRIPT = Path(sys.executable).with_name("farmbot")
HOOK_COMMANDS = {
    "script": [str(SCRIPT), "hook"],
    "module": [sys.executable, "-P", "-m", "farmbot", "hook"],  # the fallback form
    "hook-module": [sys.executable, "-m", "farmbot.hook"],
}


@dataclass
class HookServer:
    """farmbot's web site with the hook routes; ``received`` is what ingest got."""

    web: WebInterface
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail: bool = False
    answer: dict[str, Any] = field(default_factory=dict)  # to a PermissionRequest
    delay: float = 0.0  # before answering a PermissionRequest (a person deciding)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web.port}"

    async def ingest(self, agent: str, event: dict[str, Any]) -> dict[str, Any]:
        if self.fail:
            raise StorageError("disk I/O error")
        self.received.append((agent, event))
        if event.get("hook_event_name") != "PermissionRequest":
            return {}
        await asyncio.sleep(self.delay)
        return self.answer


async def _no_commands(msg: Incoming) -> Reply:
    return Reply("no commands here", ok=False)


async def _status() -> dict[str, Any]:
    return {}


@pytest.fixture
async def hooks() -> AsyncIterator[HookServer]:
    server = HookServer(WebInterface("127.0.0.1", 0, KEY, status=_status))
    for route in hook_routes(server.ingest, KEY):
        server.web.add_route(*route)
    await server.web.start(_no_commands)
    try:
        yield server
    finally:
        await server.web.stop()


@pytest.fixture
async def http(hooks: HookServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=hooks.url) as session:
        yield session


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# the endpoint -------------------------------------------------------------------------


@pytest.mark.parametrize("event", sorted(PAYLOADS))
async def test_an_event_with_the_agents_token_is_ingested_as_sent(
    hooks: HookServer, http: aiohttp.ClientSession, event: str
) -> None:
    body = payload(event)
    url = f"/hooks/claude/{AGENT}?token={hook_token(KEY, AGENT)}"
    async with http.post(url, json=body) as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        assert await r.json() == {}  # "no decision" to Claude Code
    assert hooks.received == [(AGENT, body)]


async def test_the_token_may_come_as_a_header(
    hooks: HookServer, http: aiohttp.ClientSession
) -> None:
    headers = {"X-Farmbot-Hook-Token": hook_token(KEY, "shell-1")}
    async with http.post("/hooks/claude/shell-1", json=payload("Stop"), headers=headers) as r:
        assert r.status == 200
    assert hooks.received == [("shell-1", payload("Stop"))]


def test_hook_tokens_are_per_agent_and_per_key() -> None:
    token = hook_token(KEY, AGENT)
    assert len(token) == 32 and int(token, 16) >= 0
    assert token == hook_token(KEY, AGENT)
    assert token != hook_token(KEY, "builder-43")
    assert token != hook_token(KEY + "x", AGENT)


@pytest.mark.parametrize(
    "query",
    ["", "?token=", "?token=0123456789abcdef0123456789abcdef", f"?token={hook_token(KEY, 'x')}"],
    ids=["missing", "empty", "wrong", "other-agents"],
)
async def test_a_missing_or_wrong_token_is_a_401(
    hooks: HookServer, http: aiohttp.ClientSession, query: str
) -> None:
    # The daemon's Bearer key is no substitute: hook paths check only the hook token.
    headers = {"Authorization": f"Bearer {KEY}"}
    async with http.post(
        f"/hooks/claude/{AGENT}{query}", json=payload("Stop"), headers=headers
    ) as r:
        assert r.status == 401
        error = (await r.json())["error"]
        assert error.startswith(f"missing or wrong hook token for agent '{AGENT}'")
    assert hooks.received == []


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'"Stop"', b"{}", b'{"hook_event_name": 7}', b"\xff\xfe{"],
    ids=["text", "list", "string", "no-event-name", "event-name-not-string", "not-utf8"],
)
async def test_a_body_that_is_not_a_hook_event_is_a_400(
    hooks: HookServer, http: aiohttp.ClientSession, body: bytes
) -> None:
    url = f"/hooks/claude/{AGENT}?token={hook_token(KEY, AGENT)}"
    async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400
        assert (await r.json())["error"] == (
            "the body must be a JSON object with a string 'hook_event_name' "
            "(the JSON Claude Code sends to hooks)"
        )
    assert hooks.received == []


@pytest.mark.parametrize("agent", ["-x", ".hidden", "a%20b", "x" * 65, "%C3%A9t%C3%A9"])
async def test_a_bad_agent_id_is_a_400(
    hooks: HookServer, http: aiohttp.ClientSession, agent: str
) -> None:
    url = f"{hooks.url}/hooks/claude/{agent}?token={hook_token(KEY, agent)}"
    async with http.post(URL(url, encoded=True), json=payload("Stop")) as r:
        assert r.status == 400
        assert (await r.json())["error"].startswith("invalid agent id ")
    assert hooks.received == []


async def test_the_hook_prefix_opens_no_other_path(hooks: HookServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", hooks.web.port)
    writer.write(b"GET /hooks/claude/../../readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    assert answer.split(b" ", 2)[1] in (b"401", b"404"), answer


async def test_a_storage_failure_is_a_503(hooks: HookServer, http: aiohttp.ClientSession) -> None:
    hooks.fail = True
    url = f"/hooks/claude/{AGENT}?token={hook_token(KEY, AGENT)}"
    async with http.post(url, json=payload("Stop")) as r:
        assert r.status == 503
        assert "disk I/O error" in (await r.json())["error"]


# the `farmbot hook` client ------------------------------------------------------------


@dataclass
class Ran:
    code: int | None
    stdout: bytes
    stderr: bytes
    seconds: float


async def run_hook(
    command: list[str], body: bytes, env: dict[str, str], cwd: Path | None = None
) -> Ran:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    out, err = await proc.communicate(body)
    return Ran(proc.returncode, out, err, time.monotonic() - started)


def agent_env(tmp_path: Path, **farmbot: str) -> dict[str, str]:
    """The environment without any FARMBOT_* variable, plus ``farmbot`` ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARMBOT_")}
    env["HOME"] = str(tmp_path / "home")
    env.update({f"FARMBOT_{k.upper()}": v for k, v in farmbot.items()})
    return env


def spooled(state_dir: Path) -> list[dict[str, Any]]:
    spool = state_dir / "spool"
    files = sorted(spool.glob("*.json")) if spool.is_dir() else []
    return [json.loads(f.read_bytes()) for f in files]


@pytest.mark.parametrize("form", sorted(HOOK_COMMANDS))
async def test_farmbot_hook_delivers_the_event_verbatim(
    hooks: HookServer, tmp_path: Path, form: str
) -> None:
    body = json.dumps(payload("PreToolUse"), indent=1).encode()
    env = agent_env(
        tmp_path,
        agent=AGENT,
        url=hooks.url,
        hook_token=hook_token(KEY, AGENT),
        state_dir=str(tmp_path / "state"),
    )
    ran = await run_hook(HOOK_COMMANDS[form], body, env)
    assert (ran.code, ran.stdout, ran.stderr) == (0, b"", b"")
    assert hooks.received == [(AGENT, payload("PreToolUse"))]
    assert not (tmp_path / "state").exists()  # nothing spooled


ALLOW = {
    "hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": {"behavior": "allow"}}
}


async def test_farmbot_hook_prints_the_decision_on_a_held_permission_request(
    hooks: HookServer, tmp_path: Path
) -> None:
    hooks.answer, hooks.delay = ALLOW, 2.5  # longer than any other event may take
    env = agent_env(tmp_path, agent=AGENT, url=hooks.url, hook_token=hook_token(KEY, AGENT))
    body = json.dumps(payload("PermissionRequest")).encode()

    ran = await run_hook(HOOK_COMMANDS["script"], body, env)

    assert (ran.code, json.loads(ran.stdout), ran.stderr) == (0, ALLOW, b"")
    assert ran.seconds >= 2.5


async def test_farmbot_hook_prints_nothing_when_nothing_was_decided(
    hooks: HookServer, tmp_path: Path
) -> None:
    env = agent_env(tmp_path, agent=AGENT, url=hooks.url, hook_token=hook_token(KEY, AGENT))
    for event in ("PermissionRequest", "PreToolUse"):  # {}: the CLI shows its own dialog
        ran = await run_hook(HOOK_COMMANDS["script"], json.dumps(payload(event)).encode(), env)
        assert (ran.code, ran.stdout, ran.stderr) == (0, b"", b"")


async def test_farmbot_hook_with_no_daemon_prints_nothing_and_exits_0(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = agent_env(
        tmp_path, agent=AGENT, url=f"http://127.0.0.1:{free_port()}", hook_token="abc123",
        state_dir=str(state),
    )  # fmt: skip
    body = json.dumps(payload("PermissionRequest")).encode()
    ran = await run_hook(HOOK_COMMANDS["script"], body, env)
    # Never exit 2 (Codex reads it as "deny") and print nothing: the dialog decides.
    assert (ran.code, ran.stdout, ran.stderr) == (0, b"", b"")
    assert [s["agent"] for s in spooled(state)] == [AGENT]


async def test_options_override_the_environment(hooks: HookServer, tmp_path: Path) -> None:
    env = agent_env(tmp_path, agent="someone-else", url="http://127.0.0.1:1", hook_token="x")
    options = ["--agent", "shell-3", f"--url={hooks.url}/", "--token", hook_token(KEY, "shell-3")]
    ran = await run_hook([*HOOK_COMMANDS["script"], *options], b'{"hook_event_name":"Stop"}', env)
    assert (ran.code, ran.stdout) == (0, b"")
    assert hooks.received == [("shell-3", {"hook_event_name": "Stop"})]


async def test_with_the_daemon_down_farmbot_hook_spools_and_exits_0_at_once(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    url = f"http://127.0.0.1:{free_port()}"
    env = agent_env(tmp_path, agent=AGENT, url=url, hook_token="ab12", state_dir=str(state))
    body = json.dumps(payload("PostToolUse")).encode()
    before = time.time()
    ran = await run_hook(HOOK_COMMANDS["script"], body, env)
    assert (ran.code, ran.stdout, ran.stderr) == (0, b"", b"")
    assert ran.seconds < 1.5, f"took {ran.seconds:.2f}s"
    [record] = spooled(state)
    assert record["agent"] == AGENT and record["event"] == payload("PostToolUse")
    assert before - 1 <= record["received_at"] <= time.time() + 1


async def test_a_daemon_that_does_not_answer_costs_at_most_about_2s(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        env = agent_env(
            tmp_path, agent=AGENT, url=url, hook_token="ab12", state_dir=str(tmp_path / "s")
        )
        ran = await run_hook(HOOK_COMMANDS["script"], json.dumps(payload("Stop")).encode(), env)
    assert (ran.code, ran.stdout) == (0, b"")
    assert 1.5 < ran.seconds < 4.5, f"took {ran.seconds:.2f}s"
    assert [r["event"] for r in spooled(tmp_path / "s")] == [payload("Stop")]


@pytest.mark.parametrize(
    "settings",
    [{"url": "https://127.0.0.1:1"}, {"url": "nonsense"}, {}],
    ids=["https", "bad-url", "no-agent"],
)
async def test_any_failure_spools_and_exits_0(
    hooks: HookServer, tmp_path: Path, settings: dict[str, str]
) -> None:
    values = {"agent": AGENT, "url": hooks.url, "hook_token": hook_token(KEY, AGENT)}
    values = {**values, **settings} if settings else {"url": hooks.url}
    env = agent_env(tmp_path, state_dir=str(tmp_path / "state"), **values)
    ran = await run_hook(HOOK_COMMANDS["script"], json.dumps(payload("Stop")).encode(), env)
    assert (ran.code, ran.stdout, ran.stderr) == (0, b"", b"")
    assert hooks.received == []
    [record] = spooled(tmp_path / "state")
    assert record["agent"] == (AGENT if settings else None)


async def test_an_event_the_daemon_refuses_is_kept_but_never_replayed(
    hooks: HookServer, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    env = agent_env(tmp_path, agent=AGENT, url=hooks.url, hook_token="wrong0token",
                    state_dir=str(state))  # fmt: skip
    ran = await run_hook(HOOK_COMMANDS["script"], json.dumps(payload("Stop")).encode(), env)

    assert (ran.code, ran.stdout) == (0, b"")
    assert hooks.received == [] and spooled(state) == []  # nothing to replay...
    [kept] = (state / "spool" / "refused").glob("*.json")  # ...but nothing lost either
    assert json.loads(kept.read_bytes())["event"] == payload("Stop")
    replayed: list[tuple[str, dict[str, Any]]] = []

    async def ingest(agent: str, event: dict[str, Any]) -> None:
        replayed.append((agent, event))

    assert await replay_spool(state / "spool", ingest, tokens) == 0 and replayed == []


def test_a_spooled_body_cannot_speak_for_another_agent(tmp_path: Path) -> None:
    forged = b'{"hook_event_name": "Stop"}, "agent": "victim", "pad": {"x": 1}'
    path = spool_event(tmp_path, AGENT, forged)
    assert json.loads(Path(path).read_bytes())["agent"] == AGENT


async def test_absurdly_nested_json_is_a_bad_body_not_a_crash(
    hooks: HookServer, tmp_path: Path
) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    url = f"{hooks.url}/hooks/claude/{AGENT}?token={hook_token(KEY, AGENT)}"
    async with aiohttp.ClientSession() as http, http.post(url, data=deep) as answer:
        assert answer.status == 400
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "1-1.json").write_bytes(deep)

    async def ingest(agent: str, event: dict[str, Any]) -> None:
        raise AssertionError("nothing should be ingested")

    assert await replay_spool(tmp_path / "spool", ingest, tokens) == 0
    assert (tmp_path / "spool" / "bad" / "1-1.json").exists()


async def test_without_a_state_dir_the_spool_is_under_home(tmp_path: Path) -> None:
    env = agent_env(tmp_path, agent=AGENT, url=f"http://127.0.0.1:{free_port()}")
    ran = await run_hook(HOOK_COMMANDS["script"], b'{"hook_event_name":"Stop"}', env)
    assert ran.code == 0
    assert len(spooled(tmp_path / "home/.local/state/farmbot")) == 1


# the spool ---------------------------------------------------------------------------


async def test_replay_ingests_oldest_first_removes_and_quarantines(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    events = [("builder-1", "SessionStart"), ("builder-1", "PreToolUse"), ("shell-2", "Stop")]
    names = []
    for agent, event in events:
        body = json.dumps(payload(event)).encode()
        names.append(Path(spool_event(spool, agent, body, token=tokens(agent))).name)
        await asyncio.sleep(0.002)
    assert names == sorted(names)
    corrupt = spool / f"{names[1][:-5]}0-1.json"  # sorts between the 2nd and 3rd
    corrupt.write_text('{"agent": "builder-1", "event": {"hook_event_name": ')
    no_agent = Path(spool_event(spool, None, b'{"hook_event_name": "Stop"}', token="x"))
    (spool / "123-4.json.tmp").write_text("{}")  # still being written by a client

    received: list[tuple[str, dict[str, Any]]] = []

    async def ingest(agent: str, event: dict[str, Any]) -> None:
        received.append((agent, event))

    assert await replay_spool(spool, ingest, tokens) == 3
    assert received == [(agent, payload(event)) for agent, event in events]
    assert sorted(p.name for p in spool.iterdir()) == ["123-4.json.tmp", "bad"]
    assert sorted(p.name for p in (spool / "bad").iterdir()) == sorted(
        [corrupt.name, no_agent.name]
    )
    assert await replay_spool(spool, ingest, tokens) == 0
    assert await replay_spool(tmp_path / "never-created", ingest, tokens) == 0


async def test_only_events_signed_with_the_agents_own_token_are_replayed(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    stop = json.dumps(payload("Stop")).encode()
    good = Path(spool_event(spool, AGENT, stop, token=tokens(AGENT)))
    # Dropped into the spool by someone without the token: unsigned, signed with a made-up
    # token, signed by another agent but naming this one, or edited after signing.
    unsigned = Path(spool_event(spool, AGENT, stop))
    made_up = Path(spool_event(spool, AGENT, stop, token="guessed0token"))
    other = Path(spool_event(spool, AGENT, stop, token=tokens("shell-1")))
    edited = Path(spool_event(spool, AGENT, stop, token=tokens(AGENT)))
    edited.write_bytes(edited.read_bytes().replace(b'"Stop"', b'"PermissionRequest"'))
    legacy = spool / "1-1.json"  # what an older farmbot spooled: no MAC at all
    legacy.write_text(json.dumps({"event": payload("Stop"), "received_at": 1.0, "agent": AGENT}))
    received: list[tuple[str, dict[str, Any]]] = []

    async def ingest(agent: str, event: dict[str, Any]) -> None:
        received.append((agent, event))

    assert await replay_spool(spool, ingest, tokens) == 1
    assert received == [(AGENT, payload("Stop"))]
    assert not good.exists()
    quarantined = {p.name for p in (spool / "bad").iterdir()}
    assert quarantined == {p.name for p in (unsigned, made_up, other, edited, legacy)}


async def test_farmbot_hook_spools_to_the_spool_dir_it_is_given_signed(tmp_path: Path) -> None:
    spool = tmp_path / "agent-spool"
    env = agent_env(
        tmp_path, agent=AGENT, url=f"http://127.0.0.1:{free_port()}",
        hook_token=tokens(AGENT), spool_dir=str(spool),
    )  # fmt: skip
    ran = await run_hook(HOOK_COMMANDS["script"], json.dumps(payload("Stop")).encode(), env)
    assert (ran.code, ran.stdout, ran.stderr) == (0, b"", b"")
    received: list[tuple[str, dict[str, Any]]] = []

    async def ingest(agent: str, event: dict[str, Any]) -> None:
        received.append((agent, event))

    assert await replay_spool(spool, ingest, tokens) == 1
    assert received == [(AGENT, payload("Stop"))]


async def test_a_failing_ingest_stops_the_replay_and_keeps_the_file(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool_event(spool, AGENT, b'{"hook_event_name": "Stop"}', token=tokens(AGENT))

    async def ingest(agent: str, event: dict[str, Any]) -> None:
        raise StorageError("database is locked")

    # The daemon starts anyway (the error does not escape); the event waits for next time.
    assert await replay_spool(spool, ingest, tokens) == 0
    assert len(list(spool.glob("*.json"))) == 1


# installing the hooks ----------------------------------------------------------------

USER_SETTINGS: dict[str, Any] = {
    "permissions": {"allow": ["Bash(npm run lint)"], "defaultMode": "default"},
    "env": {"DEBUG": "1"},
    "hooks": {
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "./lint.sh"}]}],
        "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
        "PreCompact": [{"hooks": [{"type": "command", "command": "echo compacting"}]}],
    },
}


def git(path: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def git_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(
        path,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@e",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "i",
    )
    return path


def farmbot_hooks(settings: dict[str, Any]) -> dict[str, list[tuple[str | None, dict[str, Any]]]]:
    """Per event: (matcher, hook) of every farmbot hook."""
    found: dict[str, list[tuple[str | None, dict[str, Any]]]] = {}
    for event, groups in settings["hooks"].items():
        for group in groups:
            for hook in group["hooks"]:
                if is_farmbot_hook(hook):
                    found.setdefault(event, []).append((group.get("matcher"), hook))
    return found


def test_install_merges_into_existing_settings_and_keeps_everything_else(tmp_path: Path) -> None:
    settings_file = tmp_path / ".claude" / "settings.local.json"
    settings_file.parent.mkdir()
    settings_file.write_text(json.dumps(USER_SETTINGS))
    command = "/opt/farmbot/bin/farmbot hook --agent builder-42"
    assert install_hooks(tmp_path, agent=AGENT, command=command) == settings_file
    settings = json.loads(settings_file.read_text())
    assert settings["permissions"] == USER_SETTINGS["permissions"]
    assert settings["env"] == {"DEBUG": "1"}
    assert settings["hooks"]["PreToolUse"][0] == USER_SETTINGS["hooks"]["PreToolUse"][0]
    assert settings["hooks"]["Stop"][0] == USER_SETTINGS["hooks"]["Stop"][0]
    assert settings["hooks"]["PreCompact"] == USER_SETTINGS["hooks"]["PreCompact"]
    ours = farmbot_hooks(settings)
    assert sorted(ours) == sorted(HOOK_EVENTS)
    for event, entries in ours.items():
        matcher = "*" if event in ("PreToolUse", "PermissionRequest", "PostToolUse") else None
        # A permission request is held open until a person decides; the rest return at once.
        timeout = PERMISSION_TIMEOUT if event == "PermissionRequest" else 10
        assert entries == [(matcher, {"type": "command", "command": command, "timeout": timeout})]


def test_install_is_idempotent_and_replaces_its_own_hooks(tmp_path: Path) -> None:
    path = install_hooks(tmp_path, agent=AGENT, command="farmbot hook")
    first = path.read_bytes()
    install_hooks(tmp_path, agent=AGENT, command="farmbot hook")
    assert path.read_bytes() == first
    url = f"http://127.0.0.1:8765/hooks/claude/{AGENT}?token=abc"
    install_hooks(tmp_path, agent=AGENT, http_url=url)
    ours = farmbot_hooks(json.loads(path.read_text()))
    assert {event: [hook for _, hook in entries] for event, entries in ours.items()} == {
        event: [
            {
                "type": "http",
                "url": url,
                "timeout": PERMISSION_TIMEOUT if event == "PermissionRequest" else 10,
            }
        ]
        for event in HOOK_EVENTS
    }
    install_hooks(tmp_path, agent=AGENT)  # the default command names the agent
    [(_, hook)] = farmbot_hooks(json.loads(path.read_text()))["Stop"]
    assert hook["command"] == f"{default_hook_command()} --agent {AGENT}"


@pytest.mark.parametrize("text", ["{not json", "[]", '{"hooks": []}'], ids=["bad", "list", "hooks"])
def test_install_refuses_a_broken_settings_file_and_leaves_it_alone(
    tmp_path: Path, text: str
) -> None:
    settings_file = tmp_path / ".claude" / "settings.local.json"
    settings_file.parent.mkdir()
    settings_file.write_text(text)
    with pytest.raises(CommandError, match=str(settings_file)):
        install_hooks(tmp_path, agent=AGENT, command="farmbot hook")
    assert settings_file.read_text() == text
    assert [p.name for p in settings_file.parent.iterdir()] == ["settings.local.json"]


def test_install_keeps_the_settings_out_of_git_once(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    sub = repo / "services" / "api"
    sub.mkdir(parents=True)
    for workdir in (repo, repo, sub, sub):
        install_hooks(workdir, agent=AGENT, command="farmbot hook")
    exclude = (repo / ".git" / "info" / "exclude").read_text().splitlines()
    assert exclude.count(".claude/settings.local.json") == 1
    assert exclude.count("services/api/.claude/settings.local.json") == 1
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    (sub / "other.txt").write_text("x")  # the exclusion is not too broad
    assert (
        git(repo, "status", "--porcelain", "--untracked-files=all") == "?? services/api/other.txt\n"
    )


def test_install_outside_git_needs_no_repository(tmp_path: Path) -> None:
    path = install_hooks(tmp_path, agent=AGENT, command="farmbot hook")
    assert path.is_file() and not (tmp_path / ".git").exists()


async def test_cli_installs_self_contained_hooks_that_reach_the_daemon(
    hooks: HookServer, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "local-key").write_text(KEY + "\n")
    config = tmp_path / "farmbot.toml"
    config.write_text(f'[server]\nport = {hooks.web.port}\nstate_dir = "{state}"\n')
    workdir = tmp_path / "my-agent"
    workdir.mkdir()
    env = agent_env(tmp_path)
    ran = await run_hook(
        [str(SCRIPT), "--config", str(config), "hooks", "install", str(workdir)], b"", env, tmp_path
    )
    assert ran.code == 0, ran.stderr
    assert ran.stdout.decode().count("\n") == 1
    assert "installed farmbot command hooks for agent 'my-agent'" in ran.stdout.decode()
    settings = json.loads((workdir / ".claude/settings.local.json").read_text())
    [(matcher, hook)] = farmbot_hooks(settings)["PreToolUse"]
    assert matcher == "*"
    token = hook_token(KEY, "my-agent")
    # The token is on no command line (every local user can read those): in a 0600 file.
    assert token not in hook["command"] and "--token " not in hook["command"]
    token_file = workdir / ".claude" / "farmbot-hook-token"
    assert f"--agent my-agent --url {hooks.url} --token-file {token_file}" in hook["command"]
    assert token_file.read_text() == token + "\n"
    assert token_file.stat().st_mode & 0o777 == 0o600
    # The command works in a shell without any FARMBOT_* variable.
    shell = await run_hook(["sh", "-c", hook["command"]], b'{"hook_event_name": "Stop"}', env)
    assert (shell.code, shell.stdout) == (0, b"")
    assert hooks.received == [("my-agent", {"hook_event_name": "Stop"})]

    ran = await run_hook(
        [str(SCRIPT), "--config", str(config), "hooks", "install", str(workdir), "--http",
         "--agent", "web-shell-1"], b"", env, tmp_path,
    )  # fmt: skip
    assert ran.code == 0, ran.stderr
    [(_, hook)] = farmbot_hooks(json.loads((workdir / ".claude/settings.local.json").read_text()))[
        "Stop"
    ]
    assert hook["type"] == "http"
    async with aiohttp.ClientSession() as http, http.post(hook["url"], json=payload("Stop")) as r:
        assert r.status == 200
    assert hooks.received[-1] == ("web-shell-1", payload("Stop"))


async def test_cli_install_names_a_broken_settings_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "local-key").write_text(KEY + "\n")
    config = tmp_path / "farmbot.toml"
    config.write_text(f'[server]\nstate_dir = "{state}"\n')
    (tmp_path / "w" / ".claude").mkdir(parents=True)
    (tmp_path / "w" / ".claude" / "settings.local.json").write_text("{oops")
    command = [str(SCRIPT), "--config", str(config), "hooks", "install", str(tmp_path / "w")]
    ran = await run_hook(command, b"", agent_env(tmp_path), tmp_path)
    assert ran.code == 1
    assert ran.stderr.decode().startswith(
        f"farmbot: {tmp_path / 'w' / '.claude' / 'settings.local.json'}: not valid JSON"
    )


# batched event writes ----------------------------------------------------------------


class CountingEvents(SqlEventStore):
    """The real event store, recording the size of every batch it was given."""

    def __init__(self, db: AnyDatabase) -> None:
        super().__init__(db)
        self.batches: list[int] = []

    async def add_events(
        self,
        batch: Sequence[tuple[NewEvent, Sequence[AlertDraft]]],
        now: float,
        *,
        dedupe_window: float,
    ) -> list[tuple[Event, list[Alert]]]:
        self.batches.append(len(batch))
        return await super().add_events(batch, now, dedupe_window=dedupe_window)


@dataclass
class Events:
    db: AnyDatabase
    store: CountingEvents


@pytest.fixture
async def events(backend: Backend) -> AsyncIterator[Events]:
    async with backend.database() as db:
        yield Events(db, CountingEvents(db))


def hook_events(count: int) -> list[HookReceived]:
    return [
        HookReceived(agent_id=f"builder-{i % 4}", name="PreToolUse", payload={"seq": i})
        for i in range(count)
    ]


async def test_concurrent_events_share_few_transactions(events: Events) -> None:
    store = events.store
    async with EventBus(store, max_batch=500) as bus:
        stored = await asyncio.gather(*(bus.publish(e) for e in hook_events(1200)))
    ids = [e.id for e in stored]
    assert len(set(ids)) == 1200
    assert sum(store.batches) == 1200 and max(store.batches) <= 500
    assert len(store.batches) <= 6, store.batches
    found = {e.id: e.data["seq"] for e in await store.recent_events(limit=2000)}
    assert [found[i] for i in ids] == list(range(1200))  # each caller got its event's id
    assert bus.statistics()["published"] == 1200


async def test_an_event_is_committed_as_soon_as_the_writer_is_free(events: Events) -> None:
    store = events.store
    async with EventBus(store) as bus:
        for event in hook_events(3):
            await bus.publish(event)  # one at a time: nothing to gather, no waiting window
        assert store.batches == [1, 1, 1]


async def test_closing_commits_what_is_queued(events: Events) -> None:
    store = events.store
    bus = EventBus(store)
    async with bus:
        writes = [asyncio.create_task(bus.publish(e)) for e in hook_events(3)]
        await asyncio.sleep(0)
    assert all(w.done() and not w.cancelled() for w in writes)
    assert len(await store.recent_events()) == 3
    with pytest.raises(StorageError, match="not running"):
        await bus.publish(hook_events(1)[0])


async def test_a_storage_failure_fails_that_batch_and_the_bus_goes_on(events: Events) -> None:
    async with EventBus(events.store) as bus:
        await events.db.aclose()  # the database goes away
        results = await asyncio.gather(
            *(bus.publish(e) for e in hook_events(5)), return_exceptions=True
        )
        assert all(isinstance(r, StorageError) for r in results), results
        assert bus.failed == 5
        await events.db.open()
        assert (await bus.publish(hook_events(1)[0])).id == 1


@pytest.mark.parametrize("key", [b"", b"abc123", b"k" * 64, b"x" * 100])
def test_the_spool_mac_is_standard_hmac_sha256(key: bytes) -> None:
    import hmac

    from farmbot.hook import _hmac_sha256

    body = b'{"event": {"hook_event_name": "Stop"}, "received_at": 1.0, "agent": "a"'
    assert _hmac_sha256(key, body) == hmac.new(key, body, "sha256").hexdigest()
