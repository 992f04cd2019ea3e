"""Codex scenarios for the screen corpus."""

from __future__ import annotations

import json
import time

from tests import agent_clis as clis
from tests.fakes import claude_hooks as hooks
from tests.fakes import openai_api as openai
from tests.screens.session import codex

XDIALOG = clis.CODEX_DIALOG


async def codex_startup(_: None) -> None:
    async with codex() as s:
        s.shot("idle", "startup")
        s.pane.type("a draft nobody submitted")
        await s.settle(0.4)
        s.shot("idle", "draft-typed")
    async with codex(trusted=False, wait_idle=False) as s:
        await s.wait(r"trust|Trust", timeout=30)
        await s.settle()
        s.shot("waiting", "trust-folder")
    hooks_file = {
        "hooks": {
            "PermissionRequest": [
                {
                    "matcher": "*",
                    "hooks": [{"type": "command", "command": "cat >/dev/null", "timeout": 5}],
                }
            ]
        }
    }
    async with codex(hooks=hooks_file, wait_idle=False) as s:
        await s.wait(r"need review", timeout=30)
        await s.settle()
        s.shot("waiting", "hooks-need-review")


async def codex_busy(_: None) -> None:
    async with codex() as s:
        long = "Streaming a long answer word by word so the screen shows it in flight. " * 3
        s.fake.script(openai.Text(long, chunk_delay=0.15))
        await s.pane.submit("tell me a story")
        await s.wait("esc to interrupt")
        await s.settle(1.5)
        s.shot("busy", "streaming")
        await s.wait(r"Worked for", timeout=30)
        s.fake.script(openai.Hang())
        await s.pane.submit("think hard")
        await s.wait("esc to interrupt")
        await s.settle(1.5)
        s.shot("busy", "waiting-for-model")
        s.keys("Escape")
        await s.settle(1.0)
        s.shot("idle", "after-interrupt-escape")
    async with codex() as s:
        # Text arrived, then the stream stalls: Codex hides its "Working" line while an
        # answer streams, so this busy screen has no busy marker at all.
        s.fake.script(openai.Hang("Half an answer, then the stream stalls"))
        await s.pane.submit("answer slowly")
        await s.wait("the stream stalls")
        await s.settle(2.0)
        s.shot("busy", "stream-stalled-mid-answer")
    async with codex() as s:
        s.fake.script(openai.exec_command("sleep 4", justification=None), openai.Text("Slept."))
        await s.pane.submit("sleep")
        await s.wait("esc to interrupt")
        await s.settle(1.5)
        s.shot("busy", "running-command")
        await s.wait("Slept\\.", timeout=15)


async def codex_dialog(_: None) -> None:
    async with codex() as s:
        s.fake.script(openai.exec_command("touch a.txt", "Create a.txt?"), openai.Text("Done."))
        await s.pane.submit("create a.txt")
        await s.wait(XDIALOG)
        await s.settle()
        s.shot("waiting", "exec-approval")
        s.keys("Down", "Down")
        await s.settle(0.3)
        s.shot("waiting", "exec-approval-option-3-selected")
        s.keys("Up", "Up")
        await s.settle(0.3)
        s.keys("y")
        await s.wait(r"Done\.")
        await s.settle()
        s.shot("idle", "after-approve-y")
    async with codex() as s:
        s.fake.script(openai.exec_command("touch b.txt", "Create b.txt?"), openai.Text("Done."))
        await s.pane.submit("create b.txt")
        await s.wait(XDIALOG)
        await s.settle()
        s.keys("p")
        await s.wait(r"Done\.")
        await s.settle()
        s.shot("idle", "after-approve-prefix-p")
    async with codex() as s:
        s.fake.script(openai.exec_command("touch a.txt", "Create a.txt?"), openai.Text("OK."))
        await s.pane.submit("create a.txt")
        await s.wait(XDIALOG)
        await s.settle()
        s.keys("Escape")
        await s.wait(r"interrupted")
        await s.settle()
        s.shot("idle", "after-deny-escape")
        s.pane.type("use a.md instead")
        await s.settle(0.3)
        s.keys("Enter")
        await s.wait(r"OK\.")
        await s.settle()
        s.shot("idle", "after-deny-then-reason")


async def codex_hooks(_: None) -> None:
    hold = {
        "hooks": {
            "PermissionRequest": [
                {
                    "matcher": "*",
                    "hooks": [
                        {"type": "command", "command": "cat >/dev/null; sleep 3", "timeout": 30}
                    ],
                }
            ]
        }
    }
    async with codex(hooks=hold, extra_args=["--dangerously-bypass-hook-trust"]) as s:
        s.fake.script(openai.exec_command("touch a.txt", "Create a.txt?"), openai.Text("Done."))
        await s.pane.submit("create a.txt")
        await s.wait("Running hook")
        await s.settle(1.0)
        s.shot("busy", "permission-hook-running")
        await s.wait(XDIALOG, timeout=10)
        await s.settle()
        s.shot("waiting", "exec-approval-after-quiet-hook")
        s.keys("Escape")
    deny = json.dumps(hooks.permission_output({"behavior": "deny", "message": "alice said no"}))
    denying = {
        "hooks": {
            "PermissionRequest": [
                {
                    "matcher": "*",
                    "hooks": [
                        {
                            "type": "command",
                            "command": f"cat >/dev/null; echo '{deny}'",
                            "timeout": 30,
                        }
                    ],
                }
            ]
        }
    }
    async with codex(hooks=denying, extra_args=["--dangerously-bypass-hook-trust"]) as s:
        s.fake.script(openai.exec_command("touch a.txt", "Create a.txt?"), openai.Text("OK."))
        await s.pane.submit("create a.txt")
        await s.wait(r"OK\.")
        await s.settle()
        s.shot("idle", "after-hook-deny")


async def codex_errors(_: None) -> None:
    reset = int(time.time()) + 7200
    cases: list[tuple[str, openai.Failure]] = [
        ("error-429-rate-limit", openai.Failure(429, "Rate limit reached", times=100)),
        ("error-500", openai.Failure(500, "boom", times=100)),
        (
            "usage-limit",
            openai.Failure(
                429,
                times=100,
                body={
                    "error": {
                        "type": "usage_limit_reached",
                        "message": "The usage limit has been reached",
                        "plan_type": "plus",
                        "resets_at": reset,
                    }
                },
            ),
        ),
        (
            "quota-exceeded",
            openai.Failure(
                429,
                "You exceeded your current quota",
                error_type="insufficient_quota",
                code="insufficient_quota",
                times=100,
            ),
        ),
    ]
    for what, failure in cases:
        async with codex() as s:
            s.fake.script(failure)
            await s.pane.submit("hello")
            await s.wait(r"^■ ")
            await s.settle()
            s.shot("idle", what)


async def codex_exit(_: None) -> None:
    async with codex() as s:
        s.pane.type("/exit")
        await s.settle(0.8)  # Enter while the slash-command popup is still opening is lost
        s.keys("Enter")
        await s.died()
        s.shot("unknown", "exited")
    async with codex() as s:
        s.pane.kill_process("KILL")
        await s.died()
        s.shot("unknown", "killed-signal-9")
