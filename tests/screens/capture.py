"""Re-capture the screen corpus: drive each CLI through its states and save every screen.

    .venv/bin/python tests/screens/capture.py                 # claude, codex and demo
    .venv/bin/python tests/screens/capture.py codex           # one CLI
    .venv/bin/python tests/screens/capture.py claude --only dialog

Each scenario starts the CLI in a private tmux server (200x50, like farmbot's panes) against
the fakes in ``tests/fakes`` and writes ``tests/screens/<cli>/<version>/<expected>--<what>.txt``
(``capture-pane -p -J``). The working directory is always ``/tmp/farmbot-screens/<cli>/work``
so the captures do not differ by a random path. See ``tests/screens/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests import agent_clis as clis  # noqa: E402
from tests.fakes import anthropic_api as anthropic  # noqa: E402
from tests.fakes import claude_hooks as hooks  # noqa: E402
from tests.fakes import openai_api as openai  # noqa: E402

SCREENS = REPO / "tests" / "screens"
ROOT = Path("/tmp/farmbot-screens")
EXPECTED = ("idle", "busy", "waiting", "unknown")


@dataclass
class Session:
    """One running CLI and what it talks to; ``shot`` saves the current screen."""

    cli: str
    version: str
    pane: clis.CliPane
    setup: clis.CliSetup
    socket: str
    fake: Any = None
    receiver: hooks.HookReceiver | None = None
    saved: list[Path] = field(default_factory=list)

    def shot(self, expected: str, what: str) -> str:
        """Save the screen as ``<expected>--<what>.txt``; return it.

        A dead pane is saved as the last screenful of its history: after some exits the
        "Pane is dead" line has scrolled off the visible screen, which is then blank.
        """
        assert expected in EXPECTED, expected
        screen = self.pane.capture()
        if self.pane.dead and not screen.strip():
            lines = self.pane.capture(history=True).rstrip("\n").split("\n")
            screen = "\n".join(lines[-clis.PANE_HEIGHT :]) + "\n"
        folder = SCREENS / self.cli / self.version
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{expected}--{what}.txt"
        path.write_text(screen)
        self.saved.append(path)
        print(f"  {path.relative_to(SCREENS)}")
        return screen

    async def wait(self, pattern: str, timeout: float = 20.0) -> str:
        return await self.pane.wait_for(pattern, timeout=timeout)

    async def submit(self, text: str, pattern: str, timeout: float = 20.0) -> str:
        """Submit ``text``, then wait for one more ``pattern`` than the screen had before."""
        seen = self.pane.count(pattern)
        await self.pane.submit(text)
        return await self.pane.wait_for(pattern, timeout=timeout, count=seen + 1)

    async def died(self, timeout: float = 15.0) -> None:
        """Wait until the CLI's process has exited."""
        deadline = time.monotonic() + timeout
        while not self.pane.dead:
            assert time.monotonic() < deadline, "the CLI did not exit"
            await asyncio.sleep(0.1)
        # tmux writes "Pane is dead (...)" a moment later, and not always where it shows.
        deadline = time.monotonic() + 2.0
        while "Pane is dead" not in self.pane.capture(history=True):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.2)

    async def settle(self, seconds: float = 0.6) -> None:
        """Let the CLI finish drawing (and pass the dialogs' short key-refusal window)."""
        await asyncio.sleep(seconds)

    def keys(self, *keys: str) -> None:
        self.pane.keys(*keys)


def _fresh(cli: str) -> Path:
    """An empty ``/tmp/farmbot-screens/<cli>`` (a CLI that just died may still be writing)."""
    root = ROOT / cli
    for _ in range(20):
        shutil.rmtree(root, ignore_errors=True)
        if not root.exists():
            break
        time.sleep(0.1)
    root.mkdir(parents=True, exist_ok=True)
    return root


def _kill_server(socket: str) -> None:
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)


@asynccontextmanager
async def claude(
    *,
    hook_events: tuple[str, ...] | None = None,
    wait_idle: bool = True,
    **seed: Any,
) -> AsyncIterator[Session]:
    """Claude Code against a fresh fake; with ``hook_events``, http hooks to a receiver."""
    root = _fresh("claude")
    async with anthropic.FakeAnthropic() as fake, hooks.HookReceiver() as receiver:
        project = hooks.http_hooks(receiver.url, events=hook_events) if hook_events else None
        setup = clis.claude_setup(root, fake.url, project_settings=project, **seed)
        version = clis.version_of(setup.binary).split()[0]
        socket = f"screens-{uuid.uuid4().hex[:8]}"
        pane = clis.CliPane.start(socket, setup)
        try:
            session = Session("claude", version, pane, setup, socket, fake, receiver)
            if wait_idle:
                await session.wait(clis.CLAUDE_PROMPT, timeout=30)
                await session.settle(0.4)
            yield session
        finally:
            _kill_server(socket)


@asynccontextmanager
async def codex(*, wait_idle: bool = True, **seed: Any) -> AsyncIterator[Session]:
    """Codex against a fresh fake."""
    root = _fresh("codex")
    async with openai.FakeOpenAI() as fake:
        setup = clis.codex_setup(root, fake.url, **seed)
        version = clis.version_of(setup.binary).split()[-1]
        socket = f"screens-{uuid.uuid4().hex[:8]}"
        pane = clis.CliPane.start(socket, setup)
        try:
            session = Session("codex", version, pane, setup, socket, fake)
            if wait_idle:
                await session.wait(clis.CODEX_PROMPT, timeout=30)
                await session.settle(0.6)
            yield session
        finally:
            _kill_server(socket)


@asynccontextmanager
async def demo(step: float = 0.5) -> AsyncIterator[Session]:
    """farmbot's demo agent (``python -m farmbot demo-agent``)."""
    root = _fresh("demo")
    home = root / "home"
    (home / "tmp").mkdir(parents=True)
    (root / "work").mkdir()
    env = {
        "HOME": str(home),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "FARMBOT_DEMO_STEP": str(step),
    }
    setup = clis.CliSetup(
        Path(sys.executable),
        root / "work",
        home,
        env,
        [sys.executable, "-m", "farmbot", "demo-agent"],
    )
    version = importlib.metadata.version("farmbot")
    socket = f"screens-{uuid.uuid4().hex[:8]}"
    pane = clis.CliPane.start(socket, setup)
    try:
        session = Session("demo", version, pane, setup, socket)
        await session.wait(r"^demo> ?$", timeout=20)
        yield session
    finally:
        _kill_server(socket)


# -- Claude Code ------------------------------------------------------------------------

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


# -- Codex ------------------------------------------------------------------------------

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


# -- aider (optional: $AIDER_BIN or aider on PATH) ---------------------------------------


@asynccontextmanager
async def aider() -> AsyncIterator[Session]:
    """aider against the fake's Chat Completions endpoint."""
    binary = clis.find_aider()
    if binary is None:
        raise RuntimeError("aider not found: set AIDER_BIN (pip install aider-chat in a venv)")
    root = _fresh("aider")
    async with openai.FakeOpenAI() as fake:
        setup = clis.aider_setup(root, fake.url, binary=binary)
        version = clis.version_of(binary).split()[-1]
        socket = f"screens-{uuid.uuid4().hex[:8]}"
        pane = clis.CliPane.start(socket, setup)
        try:
            yield Session("aider", version, pane, setup, socket, fake)
        finally:
            _kill_server(socket)


async def aider_all(_: None) -> None:
    async with aider() as s:
        await s.wait(r"\(Y\)es/\(N\)o", timeout=60)
        await s.settle()
        s.shot("waiting", "create-git-repo")
        s.keys("y", "Enter")
        await s.wait(r"^> ", timeout=60)
        await s.settle(1.0)
        s.shot("idle", "startup")
        s.fake.script(openai.Hang("Thinking slowly"))
        await s.pane.submit("think about it")
        await s.wait("Thinking slowly")
        await s.settle(1.5)
        s.shot("busy", "streaming-stalled")
        s.fake.release()
        await s.wait(r"Tokens: ")
        await s.settle(1.0)
        s.shot("idle", "after-answer")
        s.fake.script(openai.Text("Run this to list the files:\n\n```bash\ntouch a.txt\n```\n"))
        await s.submit("create a.txt", r"Run shell command\? \(Y\)es/\(N\)o")
        await s.settle()
        s.shot("waiting", "run-shell-command")
        s.keys("n", "Enter")
        await s.settle(1.0)
        s.shot("idle", "after-deny")
        s.fake.script(openai.Failure(500, "boom", times=100))
        await s.submit("hello", r"Retrying in|InternalServerError|Error")
        await s.settle(1.0)
        s.shot("busy", "api-500-retrying")


# -- demo agent -------------------------------------------------------------------------


async def demo_all(_: None) -> None:
    async with demo() as s:
        s.shot("idle", "startup")
        await s.submit("write the tests", "working")
        s.shot("busy", "working")
        await s.wait("done: write", timeout=10)
        await s.settle(0.3)
        s.shot("idle", "after-task")
        await s.submit("run pytest -x", "Do you want to proceed")
        await s.settle(0.3)
        s.shot("waiting", "permission")
        s.keys("1")
        await s.wait("done: run pytest", timeout=10)
        await s.settle(0.3)
        s.shot("idle", "after-approve")
        await s.submit("run rm -rf build", "Do you want to proceed")
        await s.settle(0.3)
        s.keys("Escape")
        await s.wait("denied")
        await s.settle(0.3)
        s.shot("idle", "after-deny")
        await s.submit("fail", "Error: build failed")
        await s.settle(0.3)
        s.shot("idle", "error")
        await s.submit("limit", "Usage limit reached")
        await s.settle(0.3)
        s.shot("idle", "usage-limit")
        await s.submit("please help me", "I need human help")
        await s.settle(0.3)
        s.shot("idle", "asks-for-help")
        await s.submit("hang", "working")
        await s.settle(1.0)
        s.shot("busy", "hang")
        s.keys("C-c")
        await s.wait("Interrupted")
        await s.pane.submit("crash")
        await s.died()
        s.shot("unknown", "crashed")
    async with demo() as s:
        s.pane.kill_process("KILL")
        await s.died()
        s.shot("unknown", "killed-signal-9")


Scenario = Callable[[None], Awaitable[None]]
SCENARIOS: dict[str, dict[str, Scenario]] = {
    "claude": {
        "startup": claude_startup,
        "busy": claude_busy,
        "dialog": claude_dialog,
        "deny": claude_deny,
        "tools": claude_tools,
        "hooks": claude_hooks,
        "errors": claude_errors,
        "usage-limit": claude_usage_limit,
        "exit": claude_exit,
    },
    "codex": {
        "startup": codex_startup,
        "busy": codex_busy,
        "dialog": codex_dialog,
        "hooks": codex_hooks,
        "errors": codex_errors,
        "exit": codex_exit,
    },
    "demo": {"all": demo_all},
    "aider": {"all": aider_all},
}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "clis", nargs="*", default=["claude", "codex", "demo"], choices=list(SCENARIOS)
    )
    parser.add_argument("--only", action="append", help="scenario names to run (repeatable)")
    args = parser.parse_args()
    failed = 0
    for cli in args.clis:
        for name, scenario in SCENARIOS[cli].items():
            if args.only and name not in args.only:
                continue
            print(f"{cli}/{name}")
            try:
                await asyncio.wait_for(scenario(None), timeout=180)
            except Exception as exc:  # report and go on with the other scenarios
                failed += 1
                print(f"  FAILED: {type(exc).__name__}: {exc}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
