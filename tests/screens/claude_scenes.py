"""Claude Code scenarios for the screen corpus (each saves screens with ``s.shot``)."""

from __future__ import annotations

import re
import time

from tests import agent_clis as clis
from tests.fakes import anthropic_api as anthropic
from tests.fakes import claude_hooks as hooks
from tests.screens.session import claude

DIALOG = clis.CLAUDE_DIALOG


async def claude_startup(_: None) -> None:
    async with claude() as s:
        s.shot("idle", "startup")
        s.pane.type("a draft nobody submitted")
        await s.settle(0.4)
        s.shot("idle", "draft-typed")
    async with claude(trusted=False, wait_idle=False) as s:
        await s.wait("trust", timeout=30)
        await s.settle()
        s.shot("waiting", "trust-folder")
    async with claude(key_approved=False, wait_idle=False) as s:
        await s.wait("API key", timeout=30)
        await s.settle()
        s.shot("waiting", "use-api-key")


async def claude_busy(_: None) -> None:
    async with claude() as s:
        long = "Streaming a long answer word by word so the screen shows it in flight. " * 3
        s.fake.script(anthropic.Text(long, chunk_delay=0.15))
        await s.pane.submit("tell me a story")
        await s.wait("esc to interrupt")
        await s.settle(1.5)
        s.shot("busy", "streaming")
        await s.wait(r"^✻ .+ for \d+s", timeout=30)  # "✻ Brewed for 6s[ · done 9:23 AM]"
        s.fake.script(anthropic.Hang("Thinking about it"))
        await s.pane.submit("think hard")
        await s.wait("esc to interrupt")
        await s.settle(1.5)
        s.shot("busy", "waiting-for-model")
        s.keys("Escape")
        await s.settle(1.0)
        s.shot("idle", "after-interrupt-escape")
        s.fake.release()


async def claude_dialog(_: None) -> None:
    async with claude() as s:
        s.fake.script(anthropic.bash("touch a.txt", "Create a.txt"), anthropic.Text("Created."))
        await s.pane.submit("create a.txt")
        await s.wait(DIALOG)
        await s.settle()
        s.shot("waiting", "bash-touch")
        s.keys("Down")
        await s.settle(0.3)
        s.shot("waiting", "bash-touch-option-2-selected")
        s.keys("1")
        await s.wait("Created\\.")
        await s.settle()
        s.shot("idle", "after-approve-key-1")
    async with claude() as s:
        s.fake.script(anthropic.bash("python3 -c pass", "Run python"), anthropic.Text("Ran it."))
        await s.pane.submit("run python")
        await s.wait(DIALOG)
        await s.settle()
        s.shot("waiting", "bash-dont-ask-again")
        s.keys("2")
        await s.wait("Ran it\\.")
        await s.settle()
        s.shot("idle", "after-approve-for-project-key-2")
    async with claude() as s:
        s.fake.script(anthropic.bash("sleep 4", "Wait a bit"), anthropic.Text("Slept."))
        await s.pane.submit("sleep")  # read-only commands like sleep need no approval
        await s.wait("esc to interrupt")
        await s.settle(1.5)
        s.shot("busy", "running-bash")
        await s.wait("Slept\\.", timeout=15)


async def claude_deny(_: None) -> None:
    async with claude() as s:
        s.fake.script(anthropic.bash("touch a.txt", "Create a.txt"), anthropic.Text("OK."))
        await s.pane.submit("create a.txt")
        await s.wait(DIALOG)
        await s.settle()
        s.keys("Escape")
        await s.wait("Interrupted")
        await s.settle()
        s.shot("idle", "after-deny-escape")
    async with claude() as s:
        s.fake.script(anthropic.bash("touch a.txt", "Create a.txt"), anthropic.Text("Will do."))
        await s.pane.submit("create a.txt")
        screen = await s.wait(DIALOG)
        await s.settle()
        # Down to "No", the last option: 4 in 2.1.332, 3 in 2.1.197 (the list wraps around).
        last = max(int(n) for n in re.findall(r"^\s*(?:❯ )?(\d+)\. ", screen, re.MULTILINE))
        s.keys(*["Down"] * (last - 1))
        await s.settle(0.3)
        s.keys("Tab")
        await s.settle(0.3)
        s.pane.type("use a.md instead")
        await s.settle(0.4)
        s.shot("waiting", "bash-no-amend-typing-reason")
        s.keys("Enter")
        await s.wait("Will do\\.")
        await s.settle()
        s.shot("idle", "after-deny-with-reason")


async def claude_tools(_: None) -> None:
    async with claude() as s:
        target = str(s.setup.workdir / "notes.md")
        s.fake.script(
            anthropic.ToolUse("Write", {"file_path": target, "content": "# Notes\n\nhello\n"}),
            anthropic.Text("Wrote it."),
        )
        await s.pane.submit("write notes.md")
        await s.wait(r"Do you want to create")
        await s.settle()
        s.shot("waiting", "write-create-file")
        s.keys("1")
        await s.wait("Wrote it\\.")
        s.fake.script(
            anthropic.ToolUse(
                "Edit", {"file_path": target, "old_string": "hello", "new_string": "hello world"}
            ),  # rejected with Escape below: no follow-up request, so no follow-up turn
        )
        await s.pane.submit("edit notes.md")
        await s.wait(r"Do you want to make this edit")
        await s.settle()
        s.shot("waiting", "edit-file")
        s.keys("Escape")
        await s.wait(r"[Rr]ejected update to notes\.md")
        await s.settle()
        s.shot("idle", "after-edit-rejected")
        question = {
            "questions": [
                {
                    "question": "Which design should I use?",
                    "header": "Design",
                    "multiSelect": False,
                    "options": [
                        {"label": "Tabs", "description": "One tab per agent"},
                        {"label": "Cards", "description": "One card per agent"},
                    ],
                }
            ]
        }
        s.fake.script(anthropic.ToolUse("AskUserQuestion", question), anthropic.Text("Noted."))
        await s.pane.submit("ask me")
        await s.wait("Which design should I use")
        await s.settle()
        s.shot("waiting", "ask-user-question")
        s.keys("Enter")
        await s.settle(1.5)
        s.shot("idle", "after-ask-user-question")


async def claude_hooks(_: None) -> None:
    events = ("PermissionRequest",)
    async with claude(hook_events=events) as s:
        assert s.receiver is not None
        s.receiver.answers["PermissionRequest"] = hooks.Answer(hooks.allow().body, delay=4)
        s.fake.script(anthropic.bash("touch a.txt", "Create a.txt"), anthropic.Text("Created."))
        await s.pane.submit("create a.txt")
        await s.wait(DIALOG)
        await s.settle(1.0)
        s.shot("waiting", "dialog-while-http-hook-pending")
        await s.wait("Created\\.", timeout=10)
        await s.settle()
        s.shot("idle", "after-hook-allow")
    async with claude(hook_events=events) as s:
        assert s.receiver is not None
        s.receiver.answers["PermissionRequest"] = hooks.deny("farmbot: alice said no")
        s.fake.script(anthropic.bash("touch a.txt", "Create a.txt"), anthropic.Text("OK."))
        await s.pane.submit("create a.txt")
        await s.wait("Denied by PermissionRequest hook")
        await s.settle()
        s.shot("idle", "after-hook-deny")


async def claude_errors(_: None) -> None:
    async with claude() as s:
        s.fake.script(anthropic.Failure(429, "Rate limited", {"retry-after": "2"}, times=100))
        await s.pane.submit("hello")
        await s.wait(r"attempt 2/10")
        await s.settle(0.3)
        s.shot("busy", "api-429-retrying")
    async with claude() as s:
        s.fake.script(anthropic.Failure(500, "Internal server error", times=100))
        await s.pane.submit("hello")
        await s.wait(r"attempt 2/10")
        await s.settle(0.3)
        s.shot("busy", "api-500-retrying")
    async with claude(extra_env={"CLAUDE_CODE_MAX_RETRIES": "0"}) as s:
        s.fake.script(anthropic.Failure(500, "Internal server error", times=100))
        await s.pane.submit("hello")
        await s.wait(r"API Error")
        await s.settle()
        s.shot("idle", "api-500-gave-up")
    async with claude() as s:
        s.fake.script(anthropic.Failure(529, "Overloaded", times=100))
        await s.pane.submit("hello")
        await s.wait(r"API Error", timeout=30)
        await s.settle()
        s.shot("idle", "api-529-overloaded-gave-up")
    async with claude() as s:
        reset = str(int(time.time()) + 7200)
        limited = {
            "anthropic-ratelimit-unified-status": "rejected",
            "anthropic-ratelimit-unified-reset": reset,
            "anthropic-ratelimit-unified-representative-claim": "five_hour",
        }
        s.fake.script(anthropic.Failure(429, "Rate limited", limited, times=100))
        await s.pane.submit("hello")
        await s.wait(r"(5-hour|Session) limit reached · [Rr]etrying")
        await s.settle(0.3)
        s.shot("busy", "api-429-5-hour-limit-retrying")
    async with claude() as s:
        limited["retry-after"] = "7200"
        s.fake.script(anthropic.Failure(429, "Rate limited", limited, times=100))
        await s.pane.submit("hello")
        await s.wait(r"API Error")
        await s.settle()
        s.shot("idle", "api-429-limit-with-long-retry-after")


async def claude_usage_limit(_: None) -> None:
    reset = str(int(time.time()) + 7200)
    limited = {
        "anthropic-ratelimit-unified-status": "rejected",
        "anthropic-ratelimit-unified-reset": reset,
        "anthropic-ratelimit-unified-representative-claim": "five_hour",
    }
    async with claude(subscription=True) as s:
        s.fake.script(anthropic.Failure(429, "Rate limited", limited, times=100))
        await s.pane.submit("hello")
        await s.wait(r"hit your .*limit")
        await s.settle(1.0)
        screen = s.pane.capture()
        if re.search(r"^\s*❯ \d+\. ", screen, re.M):  # 2.1.197 opens its options dialog
            s.shot("waiting", "usage-limit-options")
            return
        s.shot("idle", "usage-limit-continues-automatically")
    async with claude(subscription=True, settings={"autoContinueAtUsageLimit": False}) as s:
        s.fake.script(anthropic.Failure(429, "Rate limited", limited, times=100))
        await s.pane.submit("hello")
        await s.wait(r"limit")
        await s.settle(1.0)
        screen = s.pane.capture()
        s.shot(
            "waiting" if re.search(r"^\s*❯ \d+\. ", screen, re.M) else "idle",
            "usage-limit-auto-continue-off",
        )


async def claude_exit(_: None) -> None:
    async with claude() as s:
        await s.pane.submit("/exit")
        await s.died()
        s.shot("unknown", "exited")
    async with claude() as s:
        s.pane.kill_process("KILL")
        await s.died()
        s.shot("unknown", "killed-signal-9")
