"""The autopilot from a phone: real python-telegram-bot against the fake Bot API, driving
the real farm (real tmux, the demo agent, git). A multi-line task is queued in a message,
a run starts, the milestone gate arrives in the project's forum topic with Approve, Reject
and Diff buttons, a long diff comes as a file, and Approve lands the work; a Reject with a
reason given in reply to farmbot's question reaches the builder as its next prompt."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from farmbot.models import Task, TaskState
from tests.fakes.telegram_api import FakeTelegram
from tests.farm import Farm, received_prompts
from tests.helpers import FakeClock, retry_until
from tests.pilot import git, pilot_config
from tests.test_telegram import (
    ALICE,
    FORUM,
    OLGA,
    TOKEN,
    TOPIC,
    USERS,
    keyboard,
    press,
    question_for,
    reply_to,
    running,
    tg_config,
)


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as fake:
        fake.add_chat(FORUM, type="supergroup", title="farm ops")
        yield fake


async def test_queue_a_task_in_a_message_and_approve_its_milestone_with_one_press(
    tmp_path: Path, tmux_socket: str, tg: FakeTelegram
) -> None:
    clock = FakeClock()
    config = replace(pilot_config(tmp_path, tmux_socket), users=USERS)
    config = replace(config, supervisor=replace(config.supervisor, prompt_max_bytes=65536))
    async with running(config, tmp_path, tg_config(tg), clock) as rig:
        body = "The page has two fields.\n" + "".join(f"Rule {n}: be nice.\n" for n in range(1500))
        queued = await reply_to(
            tg, OLGA, f"/task add proj Add a login page --priority high\n{body}"
        )
        assert queued["text"].startswith("queued task 1 [proj] (high): Add a login page")
        started = await reply_to(tg, OLGA, "/run start proj")
        assert "1 tasks in 1 waves" in started["text"]
        farm, pilot = rig.farm, rig.farm.graph.autopilot

        async def gate_alert() -> dict | None:  # type: ignore[type-arg]
            await farm.tick()
            await pilot.step()
            await rig.drain()
            for message in tg.sent_messages(FORUM):
                if "ready to land" in message.get("text", ""):
                    return message
            return None

        alert = await retry_until(gate_alert, timeout=40, message="the milestone alert")
        assert alert["message_thread_id"] == TOPIC  # the project's topic
        task = await farm.storage.tasks.get_task(1)
        assert task is not None and task.state is TaskState.REVIEW
        assert task.body == body.rstrip("\n")  # the message's further lines, intact
        gate = task.gate_id
        [row, [(twin, _)]] = keyboard(alert)
        assert row == [
            ("Approve", f"/approve {gate}"),
            ("Reject", f"/reject {gate}"),
            ("Diff", f"/gate diff {gate}"),
            ("Tail", f"/tail {task.agent_id}"),
        ]
        assert twin == "Reject with reason…"
        assert "demo-tasks/task-1.md" in alert["text"]  # the diffstat, in the alert
        # No web server in this farm, so `farmbot task done` could not reach it: farmbot
        # noticed the builder idle with its commit instead.
        assert "note: went idle with 1 new commit" in alert["text"]

        await press(tg, OLGA, alert, f"/gate diff {gate}")  # an operator may look
        doc = await retry_until(lambda: tg.documents, message="the diff as a file")
        assert b"+Rule 1499: be nice." in doc[-1]["data"]

        denied = await press(tg, OLGA, alert, f"/approve {gate}")
        assert "needs admin" in denied["text"]
        await press(tg, ALICE, alert, f"/approve {gate}")
        landed = await retry_until(lambda: _landed(farm), timeout=20, message="task 1 to land")
        assert landed.landed_commit == git(config.projects[0].path, "rev-parse", "main")

        async def decided() -> str | None:
            [now] = [m for m in tg.sent_messages(FORUM) if m["message_id"] == alert["message_id"]]
            text = str(now.get("text", ""))
            return text if "approved by alice" in text else None

        assert "✅" in await retry_until(decided, message="the alert to say who decided")


async def test_a_milestone_rejected_with_a_reason_from_the_button_sends_it_to_the_builder(
    tmp_path: Path, tmux_socket: str, tg: FakeTelegram
) -> None:
    config = replace(pilot_config(tmp_path, tmux_socket, max_builders=1), users=USERS)
    async with running(config, tmp_path, tg_config(tg), FakeClock()) as rig:
        await reply_to(tg, OLGA, "/task add proj Add a login page")
        await reply_to(tg, OLGA, "/run start proj")
        farm, pilot = rig.farm, rig.farm.graph.autopilot

        async def gate_alert() -> dict | None:  # type: ignore[type-arg]
            await farm.tick()
            await pilot.step()
            await rig.drain()
            found = [m for m in tg.sent_messages(FORUM) if "ready to land" in m.get("text", "")]
            return found[-1] if found else None

        alert = await retry_until(gate_alert, timeout=40, message="the milestone alert")
        question = await question_for(tg, alert, ALICE)
        where = {"chat_id": FORUM, "chat_type": "supergroup", "message_thread_id": TOPIC}
        reason = "the button should be blue"
        decided = await reply_to(tg, ALICE, reason, reply_to=question, **where)
        assert "goes back to builder-1" in decided["text"]

        async def told() -> list[str]:
            await farm.tick()
            await pilot.step()
            return [p for p in received_prompts(tmp_path) if "rejected it" in p]

        [prompt] = await retry_until(told, timeout=30, message="the reason at the builder")
        assert f"alice reviewed your work and rejected it: {reason}" in prompt
        task = await farm.storage.tasks.get_task(1)
        assert task is not None and task.state is not TaskState.DONE


async def _landed(farm: Farm) -> Task | None:
    task = await farm.storage.tasks.get_task(1)
    return task if task is not None and task.state is TaskState.DONE else None
