"""Several machines, one farm: two real `farmbot serve` processes, each with its own tmux
socket, state directory, port and node name, sharing one PostgreSQL database (a
throwaway cluster), with the real python-telegram-bot against a fake Bot API
(tests/nodes.py sets them up).

Node a holds project alpha, node b project beta, both hold gamma (``nodes = [...]``);
both read the same list of projects, as machines sharing one config file do. A git hook
in beta's repository can make a builder's worktree slow to create (``SLOW``), so that a
node can be killed while it runs a command it claimed.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from tests.backends import PostgresBackend
from tests.daemon import free_port, run
from tests.fakes.telegram_api import FakeTelegram, Params
from tests.helpers import retry_until
from tests.nodes import (
    ADA,
    ALERTS,
    BEA,
    SLOW_HOOK,
    TOKEN,
    claimed,
    farmbot_status,
    has_session,
    leads,
    start_a_then_b,
    status,
    two_nodes,
)

# -- routing ---------------------------------------------------------------------------------


async def test_a_spawn_for_a_project_only_b_holds_runs_on_b_and_answers_through_a(
    tmp_path: Path, pg_backend: PostgresBackend, sockets: dict[str, str]
) -> None:
    async with two_nodes(tmp_path, pg_backend, sockets) as farm:
        a, b = await start_a_then_b(farm)

        spawned = await a.command("/spawn builder 7 beta")
        assert spawned["ok"] is True, spawned
        worktree = tmp_path / "b" / "state" / "worktrees" / "beta" / "beta-builder-7"
        assert (
            f"spawned beta-builder-7 (demo) in project beta: worktree {worktree}"
            in (spawned["text"])
        )
        assert await has_session(sockets["b"], "beta-builder-7")
        assert not await has_session(sockets["a"], "beta-builder-7")
        assert [row[0] for row in farm.sql("SELECT node FROM agents")] == ["b"]

        async def screen_shows(text: str) -> str | None:
            tail = await a.command("/tail beta-builder-7 60")  # b's screen, through a
            assert tail["ok"], tail
            return tail["pre"] if text in tail["pre"] else None

        await retry_until(
            lambda: screen_shows("✓ done: You are builder 7 on project beta"),
            timeout=15,
            message="b's builder to work on its prompt",
        )
        sent = await a.command("/send beta-builder-7 add a login page")
        assert sent["ok"] is True and sent["text"].startswith("sent to beta-builder-7"), sent
        await retry_until(lambda: screen_shows("✓ done: add a login page"), timeout=15)

        local = await a.command("/spawn architect")  # alpha: a holds it, a runs it
        assert local["ok"] is True, local
        assert await has_session(sockets["a"], "architect")

        shown = await b.command("/status")
        assert shown["text"].splitlines()[0] == "nodes: a (leader, 1 agent), b (here, 1 agent)"
        agents = (await a.command("/agents"))["text"]
        assert "beta-builder-7 [beta @b] " in agents and "architect [alpha @a] " in agents
        held_elsewhere = await b.command("/spawn builder 8 alpha")  # routed the other way
        assert held_elsewhere["ok"] is True
        assert "spawned builder-8 (demo) in project alpha" in held_elsewhere["text"]
        assert await has_session(sockets["a"], "builder-8")

        # gamma is on both: a spawn goes to the node running fewer agents (a runs 2, b 1),
        # and to the node asked when they are even.
        assert (await a.command("/spawn shell 1 gamma"))["ok"]
        assert await has_session(sockets["b"], "gamma-shell-1")
        assert (await a.command("/spawn shell 2 gamma"))["ok"]
        assert await has_session(sockets["a"], "gamma-shell-2")

        # A third machine that calls itself a is refused: it would take a's agents for dead.
        twin = tmp_path / "c" / "farmbot.toml"
        text = farm.nodes["a"].config.read_text().replace(sockets["a"], f"{sockets['a']}-c")
        twin.parent.mkdir()
        port_a = farm.nodes["a"].url.rsplit(":", 1)[1]
        twin.write_text(text.replace(f"port = {port_a}\n", f"port = {free_port()}\n"))
        refused = await run(
            sys.executable, "-m", "farmbot", "--config", str(twin), "serve", cwd=twin.parent,
            env=farm.env,
        )  # fmt: skip
        assert refused.code != 0
        assert "another farmbot runs as node a on this database" in refused.err, refused.err

    # Each command ran once, audited once as ada, wherever it ran.
    audit = farm.sql(
        "SELECT command, user_name, outcome FROM audit WHERE command LIKE %s", "/spawn%"
    )
    assert sorted(audit) == [
        ("/spawn architect", "ada", "ok"),
        ("/spawn builder 7 beta", "ada", "ok"),
        ("/spawn builder 8 alpha", "ada", "ok"),
        ("/spawn shell 1 gamma", "ada", "ok"),
        ("/spawn shell 2 gamma", "ada", "ok"),
    ]


async def test_a_reason_asked_on_the_leader_rejects_a_gate_of_the_other_node(
    tmp_path: Path, pg_backend: PostgresBackend, sockets: dict[str, str]
) -> None:
    """Telegram's question lives in the shared database: the leader (a) asks it and reads
    the reply; the reject runs where the gate's agent is (b), the reason typed into its
    pane; an answer from anyone but the presser is refused on a, never routed."""
    async with (
        FakeTelegram(token=TOKEN) as tg,
        two_nodes(tmp_path, pg_backend, sockets, tg) as farm,
    ):
        tg.add_chat(ALERTS, type="supergroup", title="farm alerts")
        a, b = await start_a_then_b(farm)
        assert await leads(a, "a")  # a reads Telegram
        assert (await b.command("/spawn builder 5 beta"))["ok"]

        async def idle() -> bool:
            agents = (await status(b))["agents"]
            return any(x["id"] == "beta-builder-5" and x["state"] == "idle" for x in agents)

        await retry_until(idle, timeout=20, message="b's builder to be idle")
        assert (await b.command("/send beta-builder-5 run make deploy"))["ok"]
        [alert] = await retry_until(
            lambda: replies(tg, ALERTS, "waits for a decision"), timeout=20, message="the alert"
        )
        [twin] = [b for row in alert["reply_markup"]["inline_keyboard"] for b in row
                  if b["text"] == "Reject with reason…"]  # fmt: skip
        query = tg.push_callback(ADA, alert, twin["callback_data"])
        await tg.wait_for("answerCallbackQuery", lambda p: p["callback_query_id"] == query)
        [question] = await retry_until(lambda: replies(tg, ALERTS, "Reply to this message"))
        where: dict[str, Any] = {"chat_id": ALERTS, "chat_type": "supergroup"}

        tg.push_message(BEA, "just ship it", reply_to=question, **where)
        await retry_until(lambda: replies(tg, ALERTS, "only they may answer it"), timeout=10)
        tg.push_message(ADA, "use the staging target first", reply_to=question, **where)
        await retry_until(lambda: replies(tg, ALERTS, "rejected by ada"), timeout=20)

        [(gate_status, reason)] = farm.sql("SELECT status, reason FROM gates")
        assert (gate_status, reason) == ("rejected", "use the staging target first")
        reasons = farm.sql(
            "SELECT agent_id FROM prompts WHERE text = %s", "use the staging target first"
        )
        assert reasons == [("beta-builder-5",)]  # its next prompt, on b
        answers = farm.sql(
            "SELECT user_name, outcome, command FROM audit WHERE command LIKE %s ORDER BY id",
            "/reject%",
        )
        assert answers == [
            ("bea", "denied", "/reject 1 just ship it"),
            ("ada", "ok", "/reject 1 use the staging target first"),
        ]
        assert farm.sql("SELECT text, target FROM routed_commands") == [
            ("/reject 1 use the staging target first", "b")
        ]  # bea's answer was refused on a: it never went to b


# -- failover ------------------------------------------------------------------------------


def replies(tg: FakeTelegram, chat: int, has: str) -> list[Params]:
    return [m for m in tg.sent_messages(chat) if has in m.get("text", "")]


async def test_the_leader_killed_with_kill_9_hands_chat_alerts_and_commands_to_the_other(
    tmp_path: Path, pg_backend: PostgresBackend, sockets: dict[str, str]
) -> None:
    async with (
        FakeTelegram(token=TOKEN) as tg,
        two_nodes(tmp_path, pg_backend, sockets, tg) as farm,
    ):
        tg.add_chat(ALERTS, type="supergroup", title="farm alerts")
        tg.add_chat(ADA)
        a, b = await start_a_then_b(farm)
        await tg.wait_for("getUpdates", timeout=10)  # a polls
        # b's Telegram is idle while a leads: not deaf, and b is ready.
        assert "telegram" not in (await status(b))["problems"]
        async with b.http.get("/readyz", headers={"Authorization": f"Bearer {b.key}"}) as ready:
            assert ready.status == 200, await ready.text()
        assert (await a.command("/spawn architect"))["ok"]  # an agent of a, for "node down"
        cli = await farmbot_status(farm, "b")  # `farmbot status` on b's machine
        assert "node a: up, 1 agent (leader)" in cli and "node b: up, 0 agents (here)" in cli
        [architect] = [line for line in cli if line.split()[0] == "architect"]
        assert "alpha@a" in architect and "node" not in architect.split()[1:3], cli

        # Alerts in flight: two of b's agents die while Telegram answers their chat 429.
        tg.hold(ALERTS, retry_after=3)
        for n in (1, 2):
            assert (await b.command(f"/spawn shell {n} beta"))["ok"]
            await run("tmux", "-L", sockets["b"], "kill-session", "-t", f"=beta-shell-{n}")

        def held_back() -> bool:  # both stored and tried; none being sent, none due soon
            rows = farm.sql(
                "SELECT o.status, o.attempts, o.next_attempt_at FROM outbox o"
                " JOIN alerts al ON al.id = o.alert_id"
                " WHERE o.interface = 'telegram' AND al.kind = 'agent.dead'"
            )
            soon = time.time() + 1.0
            return (
                len(rows) == 2
                and all(status == "pending" for status, _, _ in rows)
                and any(tries > 0 for _, tries, _ in rows)
                and all(due > soon for _, tries, due in rows if tries > 0)
            )

        # A command in flight: a took it from Telegram and routed it; b is running it.
        farm.slow.touch()
        tg.push_message(ADA, "/spawn builder 3 beta")
        await retry_until(lambda: claimed(farm, "/spawn builder 3 beta"), timeout=10)
        await retry_until(held_back, timeout=10, message="the alerts held back by 429s")

        a.proc.kill()  # kill -9, with a long poll, a routed command and alerts in flight
        killed = time.monotonic()
        await a.proc.wait()
        tg.push_message(ADA, "/status")  # while nobody leads
        tg.release(ALERTS)

        def polls() -> int:
            return len([call for call in tg.calls if call[0] == "getUpdates"])

        before = polls()  # a's last poll was among them; a is dead
        assert await retry_until(lambda: leads(b, "b"), timeout=10, message="b to lead")
        await retry_until(lambda: polls() > before, timeout=10, message="b to poll")
        took_over = time.monotonic() - killed
        assert took_over < 10, f"b took {took_over:.1f} s to lead"

        await retry_until(
            lambda: replies(tg, ADA, "spawned beta-builder-3") and replies(tg, ADA, "nodes:"),
            timeout=SLOW_HOOK + 15,
            message="both commands answered",
        )
        titles = ("beta-shell-1 died", "beta-shell-2 died", "node a went quiet")
        await retry_until(
            lambda: all(replies(tg, ALERTS, title) for title in titles),
            timeout=15,
            message="every alert delivered",
        )
        await asyncio.sleep(2)  # time enough for a duplicate to show
        for title in titles:
            assert len(replies(tg, ALERTS, title)) == 1, (title, tg.sent_messages(ALERTS))
        for answer in ("spawned beta-builder-3", "nodes:"):
            assert len(replies(tg, ADA, answer)) == 1, (answer, tg.sent_messages(ADA))
        assert not replies(tg, ADA, "cannot tell whether")  # it was answered, not guessed

        async def a_shown_down() -> str | None:
            shown = (await b.command("/status"))["text"]
            return shown if "a (node down" in shown else None

        shown = await retry_until(a_shown_down, timeout=5, message="a shown as node down")
        assert "b (leader, here, 1 agent)" in shown and "• architect: node down" in shown
        cli = await farmbot_status(farm, "b")
        assert "node a: down, 1 agent" in cli, cli
        assert "node b: up, 1 agent (leader, here)" in cli, cli
        states = {line.split()[0]: line.split()[1:3] for line in cli if line[:2] == "  "}
        assert states["architect"] == ["node", "down"], cli  # not dead: a is quiet
        assert states["beta-shell-1"][0] == "dead"  # b's own dead agent stays dead
        # The status page renders from this: a's agents show "node down" while a is down.
        page = await status(b)
        nodes = {n["name"]: (n["health"], n["leader"], n["agents"]) for n in page["nodes"]}
        assert nodes == {"a": ("down", False, 1), "b": ("up", True, 1)}, page["nodes"]
        assert page["leader"] == "b"
        [on_a] = [agent for agent in page["agents"] if agent["node"] == "a"]
        assert on_a["id"] == "architect" and on_a["state"] not in ("dead", "stopped")
        agents = (await b.command("/agents"))["text"]
        assert "architect [alpha @a] node down (a quiet for" in agents, agents
        assert await has_session(sockets["b"], "beta-builder-3")
        # a had taken the spawn's update (and routed it); b handed it over and answered it.
        handled = farm.sql("SELECT update_id, status, handler FROM inbound_updates ORDER BY 1")
        assert [(n, done, who.split("/")[0]) for n, done, who in handled] == [
            (1, "done", "b"),
            (2, "done", "b"),
        ]
        # The spawn ran once, on b.
        spawns = farm.sql("SELECT outcome FROM audit WHERE command = '/spawn builder 3 beta'")
        assert spawns == [("ok",)]


# -- a node killed holding a claim ---------------------------------------------------------


async def test_a_node_killed_holding_a_command_is_taken_over_after_its_lease_and_told(
    tmp_path: Path, pg_backend: PostgresBackend, sockets: dict[str, str]
) -> None:
    async with two_nodes(tmp_path, pg_backend, sockets) as farm:
        a, b = await start_a_then_b(farm)
        farm.slow.touch()
        asked = asyncio.create_task(a.command("/spawn builder 5 beta"))
        await retry_until(lambda: claimed(farm, "/spawn builder 5 beta"), timeout=10)
        b.proc.kill()  # kill -9 while b runs it
        killed = time.monotonic()
        reply = await asyncio.wait_for(asked, 20)
        waited = time.monotonic() - killed
        assert reply["ok"] is False
        assert reply["text"].startswith(
            "node b stopped while running it (its claim expired), so farmbot cannot tell"
            " whether '/spawn builder 5 beta' took effect; it was not run again."
        ), reply
        assert waited < 3 + 5, f"told after {waited:.1f} s (lease 3 s, answer_timeout 25 s)"
        farm.slow.unlink()

        # b comes back: the command stays answered and does not run again.
        back = await farm.start("b")
        await retry_until(lambda: leads(back, "a"), timeout=10)
        await asyncio.sleep(1.5)
        assert not await has_session(sockets["b"], "beta-builder-5")
        rows = farm.sql("SELECT status, attempts FROM routed_commands")
        assert rows == [("done", 2)]
        audit = farm.sql("SELECT outcome FROM audit WHERE command = '/spawn builder 5 beta'")
        assert audit == [("interrupted",)]
        listed = (await back.command("/agents"))["text"]
        assert "beta-builder-5" not in listed
