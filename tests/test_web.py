"""The web interface of a real daemon: health checks, key auth, the JSON API and the page."""

from __future__ import annotations

import asyncio
import dataclasses
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from farmbot.config.schema import (
    Config,
    ProjectConfig,
    ServerConfig,
    SupervisorConfig,
    TmuxConfig,
    builtin_profiles,
)
from farmbot.daemon import Daemon
from farmbot.errors import AlreadyRunning
from tests.farm import make_repo
from tests.helpers import retry_until
from tests.web import Web, running

AUTH_ERROR = "missing or wrong key: send 'Authorization: Bearer <key>'"


def make_config(tmp_path: Path, tmux_socket: str) -> Config:
    profiles = builtin_profiles()
    profiles["demo"] = dataclasses.replace(profiles["demo"], env={"FARMBOT_DEMO_STEP": "0.02"})
    return Config(
        server=ServerConfig(host="127.0.0.1", port=0, state_dir=tmp_path / "state"),
        tmux=TmuxConfig(socket=tmux_socket),
        supervisor=SupervisorConfig(tick_seconds=0.2),
        projects=(ProjectConfig("farm", make_repo(tmp_path / "repo")),),
        agents=profiles,
    )


@pytest.fixture
async def web(tmp_path: Path, tmux_socket: str) -> AsyncIterator[Web]:
    config = make_config(tmp_path, tmux_socket)
    async with running(config) as web:
        key_file = config.server.state_dir / "local-key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        assert key == web.key and len(key) >= 32
        yield web


async def test_healthz_answers_without_a_key(web: Web) -> None:
    async with web.http.get("/healthz") as r:
        assert r.status == 200
        assert (await r.json())["ok"] is True


@pytest.mark.parametrize(
    "header",
    [None, "Bearer not-the-key", "Basic {key}", "Bearer {key}x", "{key}"],
    ids=["none", "wrong", "basic", "longer", "no-scheme"],
)
@pytest.mark.parametrize(("method", "path"), [("GET", "/api/status"), ("POST", "/api/command")])
async def test_the_api_refuses_a_missing_or_wrong_key(
    web: Web, header: str | None, method: str, path: str
) -> None:
    headers = {} if header is None else {"Authorization": header.format(key=web.key)}
    async with web.http.request(method, path, headers=headers, json={"text": "/spawn shell"}) as r:
        assert r.status == 401
        assert r.content_type == "application/json"
        assert (await r.json())["error"].startswith(AUTH_ERROR)
    async with web.http.get("/readyz", headers=headers) as r:
        assert r.status == 401
    assert await web.app.farm.supervisor.list_agents() == []  # nothing ran


async def test_the_key_opens_the_api(web: Web) -> None:
    status = await web.status()
    assert [p["name"] for p in status["projects"]] == ["farm"]
    assert status["agents"] == [] and status["gates"] == []
    reply = await web.command("/help")
    assert reply["ok"] is True
    assert "you are local, admin" in reply["text"]


@pytest.mark.parametrize(
    "body",
    [
        b"this is not json",
        b"[]",
        b'{"text": 5}',
        b'{"txt": "/status"}',
        b"\xff\xfe",
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["text", "list", "number", "no-text", "not-utf8", "nested"],
)
async def test_a_bad_command_body_is_a_400_with_a_clear_message(web: Web, body: bytes) -> None:
    headers = {**web.auth, "Content-Type": "application/json"}
    async with web.http.post("/api/command", data=body, headers=headers) as r:
        assert r.status == 400
        assert (await r.json()) == {"error": 'the body must be JSON like {"text": "/status"}'}


async def test_spawned_builder_gets_its_prompt_and_finishes(web: Web) -> None:
    reply = await web.command("/spawn builder 42")
    assert reply["ok"] is True, reply
    assert reply["text"].startswith("spawned builder-42 (demo) in project farm: worktree ")
    assert reply["buttons"] == [
        [
            {"label": "Tail", "command": "/tail builder-42", "style": None, "asks": ""},
            {"label": "Kill", "command": "/kill builder-42", "style": "danger", "asks": ""},
        ]
    ]
    [agent] = (await web.status())["agents"]
    assert (agent["id"], agent["kind"], agent["branch"]) == (
        "builder-42",
        "builder",
        "farmbot/builder-42",
    )

    async def done() -> str | None:
        tail = await web.command("/tail builder-42")
        return tail["pre"] if "✓ done: You are builder 42 on project farm" in tail["pre"] else None

    screen: str = await retry_until(done, timeout=20, message="the builder prompt to be done")
    assert "> received: You are builder 42 on project farm. Work on issue #42" in screen

    async def idle() -> dict[str, Any] | None:
        [agent] = (await web.status())["agents"]
        return agent if agent["state"] == "idle" else None

    agent = await retry_until(idle, timeout=5, message="builder-42 to be idle")
    assert agent["workdir"].endswith("worktrees/farm/builder-42")


async def test_readyz_reports_the_database(web: Web) -> None:
    async with web.http.get("/readyz", headers=web.auth) as r:
        assert r.status == 200
        assert await r.json() == {"ok": True, "checks": ["database", "tmux"]}
    await web.app.farm.tmux.kill_server()  # no tmux server yet is a normal state, not a failure
    async with web.http.get("/readyz", headers=web.auth) as r:
        assert r.status == 200

    await web.app.farm.storage.db.aclose()
    async with web.http.get("/readyz", headers=web.auth) as r:
        assert r.status == 503
        body = await r.json()
    assert body["ok"] is False
    assert list(body["failing"]) == ["database"]
    assert body["reason"].startswith("database: ") and "not open" in body["reason"]
    # A command still gets a reply, not a bare 500.
    reply = await web.command("/agents")
    assert reply["ok"] is False and "incident" in reply["text"]


async def test_the_page_needs_no_key_and_holds_no_data(web: Web) -> None:
    async with web.http.get("/") as r:
        assert r.status == 200
        assert r.content_type == "text/html"
        page = await r.text()
    assert "<title>farmbot</title>" in page
    assert web.key not in page


async def test_a_second_app_on_the_same_state_dir_is_refused(
    web: Web, tmp_path: Path, tmux_socket: str
) -> None:
    second = dataclasses.replace(web.app.config)
    with pytest.raises(AlreadyRunning, match="already runs with state directory"):
        async with Daemon(second):
            pytest.fail("a second daemon started")
    async with web.http.get("/healthz") as r:  # the first one is unharmed
        assert r.status == 200


# -- live updates -----------------------------------------------------------------------


async def test_the_stream_needs_a_ticket_bought_with_the_key(web: Web) -> None:
    async with web.http.post("/api/stream-ticket") as r:
        assert r.status == 401
    async with web.http.get("/api/stream") as r:
        assert r.status == 401
    async with web.http.post("/api/stream-ticket", headers=web.auth) as r:
        bought = await r.json()
    assert bought["expires_in"] == 30 and bought["stream"] == "/api/stream"
    assert web.key not in bought["ticket"] and len(bought["ticket"]) >= 40
    async with web.http.get("/api/stream", params={"ticket": bought["ticket"]}) as r:
        assert r.status == 200
        assert r.headers["Cache-Control"] == "no-store"
        assert await r.content.readline() == b"event: snapshot\n"
    async with web.http.get("/api/stream", params={"ticket": bought["ticket"]}) as r:
        assert r.status == 401  # one stream per ticket
        assert "spent or expired" in (await r.json())["error"]


async def test_the_stream_sends_a_snapshot_then_only_what_changed(web: Web) -> None:
    async with web.stream() as stream:
        name, first, snapshot_size = await stream.next()
        assert name == "snapshot"
        status = first["status"]
        assert [p["name"] for p in status["projects"]] == ["farm"]
        assert status["agents"] == [] and "stats" not in status

        assert (await web.command("/spawn builder 42"))["ok"]

        def builder_row(data: dict[str, Any]) -> bool:
            upsert = data["changes"].get("agents", {}).get("upsert", [])
            return any(a["id"] == "builder-42" for a in upsert)

        patch, size = await stream.until("patch", builder_row)
        agents = patch["changes"]["agents"]
        assert agents["order"] == ["builder-42"]
        assert "projects" not in patch["changes"]  # unchanged: not sent again
        new_events = patch["changes"]["events"]["upsert"]
        assert new_events and all(e["id"] > 0 for e in new_events)
        assert size < snapshot_size + 4000

        def idle(data: dict[str, Any]) -> bool:
            upsert = data["changes"].get("agents", {}).get("upsert", [])
            return any(a["state"] == "idle" for a in upsert)

        patch, _ = await stream.until("patch", idle, timeout=20)
        [row] = patch["changes"]["agents"]["upsert"]
        assert "order" not in patch["changes"]["agents"]  # the same one agent
        assert row["state"] == "idle"


async def test_a_decided_gate_leaves_and_its_alert_loses_its_buttons(web: Web) -> None:
    gates = web.app.farm.gates
    async with web.stream() as stream:
        await stream.next()
        gate = await gates.open("review", "ship it?", detail="v1.2")

        def alert_of_gate(data: dict[str, Any]) -> bool:
            alerts = data["changes"].get("alerts", {}).get("upsert", [])
            return any(a["kind"] == "gate.opened" for a in alerts)

        patch, _ = await stream.until("patch", alert_of_gate)
        [alert] = patch["changes"]["alerts"]["upsert"]
        commands = [b["command"] for row in alert["buttons"] for b in row]
        assert commands == [f"/approve {gate.id}", f"/reject {gate.id}"]
        assert [g["id"] for g in (await web.status())["gates"]] == [gate.id]

        reply = await web.command(f"/approve {gate.id}")
        assert reply["ok"] and reply["decided"]["approved"] is True

        def gate_gone(data: dict[str, Any]) -> bool:
            return bool(data["changes"].get("gates", {}).get("remove") == [gate.id])

        patch, _ = await stream.until("patch", gate_gone)
        [settled] = patch["changes"]["alerts"]["upsert"]
        assert settled["id"] == alert["id"]
        assert settled["buttons"] == [] and settled["closed_gates"] == [gate.id]
        [note] = settled["decided"]
        assert note.startswith("✅ approved by ") and note.endswith(" UTC"), note
    [shown] = (await web.status())["alerts"]  # the JSON API shows the same
    assert shown["buttons"] == [] and shown["closed_gates"] == [gate.id]
    assert shown["decided"] == [note]


async def test_stopping_ends_the_streams_at_once(web: Web) -> None:
    async with web.stream() as stream:
        await stream.next()
        await asyncio.wait_for(web.app.farm.web.stop(), 5)
        assert await asyncio.wait_for(stream.response.content.read(), 5) == b""


async def test_file_replies_carry_a_small_text_file_as_text_and_others_as_base64(
    web: Web, tmp_path: Path
) -> None:
    spawned = await web.command("/spawn shell")
    assert spawned["ok"], spawned
    (tmp_path / "repo" / "notes.txt").write_text("line <1>\n")
    (tmp_path / "repo" / "blob.bin").write_bytes(b"\xff\x00\xfe")
    shown = await web.command("/file shell-1 notes.txt")
    assert shown["text"] == "notes.txt from shell-1's worktree (9 B)"
    assert shown["file"] == {"name": "notes.txt", "size": 9, "text": "line <1>\n"}
    binary = await web.command("/file shell-1 blob.bin")
    assert binary["file"] == {"name": "blob.bin", "size": 3, "base64": "/wD+"}
    refused = await web.command("/file shell-1 ../state/farmbot.db")
    assert refused["ok"] is False and "is outside shell-1's worktree" in refused["text"]
