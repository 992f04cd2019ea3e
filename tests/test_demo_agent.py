"""The demo agent, driven in real tmux the way farmbot drives agents."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import libtmux
import pytest

from farmbot import demo_agent
from tests.helpers import retry_until

STEP = 0.05
IDLE = re.compile(r"^demo> ?$")


@dataclass
class DemoPane:
    """One demo agent in its own tmux session, and the file it logs prompts to."""

    server: libtmux.Server
    pane: libtmux.Pane
    log: Path

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.pane.capture_pane() or []]

    def screen(self) -> str:
        return "\n".join(self.lines())

    def idle(self) -> bool:
        shown = [line for line in self.lines() if line]
        return bool(shown) and IDLE.match(shown[-1]) is not None

    def type(self, text: str) -> None:
        self.pane.cmd("send-keys", "-l", text)

    def keys(self, *keys: str) -> None:
        self.pane.cmd("send-keys", *keys)

    def submit(self, text: str) -> None:
        self.type(text)
        self.keys("Enter")

    async def exit_status(self) -> str:
        """Wait for the agent to exit; its exit status as tmux reports it."""

        def probe() -> str:
            fields = "#{pane_dead}:#{pane_dead_status}:#{pid}"
            out = self.pane.cmd("display-message", "-p", fields).stdout[0]
            dead, status, server_pid = out.split(":")
            if dead == "1" and not status:
                # tmux built with libutempter can miss the SIGCHLD of a pane that exits
                # while it closes the pty (tmux/tmux#311); a nudge makes it reap the child.
                os.kill(int(server_pid), signal.SIGCHLD)
            return status if dead == "1" else ""

        return await retry_until(probe, timeout=5.0, message="the agent to exit")

    def prompts(self) -> list[str]:
        if not self.log.exists():
            return []
        return [json.loads(line)["prompt"] for line in self.log.read_text("utf-8").splitlines()]

    async def wait_for(self, needle: str, *, idle: bool = False) -> str:
        """Wait until ``needle`` is on screen (and, with ``idle``, the prompt is back)."""

        def probe() -> str:
            screen = self.screen()
            return screen if needle in screen and (not idle or self.idle()) else ""

        what = f"{needle!r}{' then the prompt' if idle else ''}"
        return await retry_until(probe, timeout=5.0, message=what)


@pytest.fixture
async def demo(tmux_server: libtmux.Server, tmp_path: Path) -> DemoPane:
    log = tmp_path / "prompts.jsonl"
    agent = [sys.executable, "-m", "farmbot.demo_agent", "--step", str(STEP), "--steps", "4"]
    command = shlex.join(["env", f"FARMBOT_DEMO_LOG={log}", *agent])
    session = tmux_server.new_session(session_name="demo", window_command=command, x=120, y=50)
    pane = session.active_window.active_pane
    assert pane is not None
    # Keep the pane after the process ends, to read its exit status and last words.
    pane.cmd("set-option", "-w", "remain-on-exit", "on")
    agent_pane = DemoPane(tmux_server, pane, log)
    await retry_until(agent_pane.idle, timeout=5.0, message="the first prompt")
    return agent_pane


async def test_banner_then_prompt_then_work_reaches_done(demo: DemoPane) -> None:
    assert demo.lines()[0] == "farmbot demo agent — type 'help' for the inputs it understands"

    demo.submit("write the release notes")
    await demo.wait_for("working... step")
    screen = await demo.wait_for("✓ done: write the release notes", idle=True)

    assert "> received: write the release notes" in screen
    # The status line is redrawn in place and erased when the work is done, as real
    # CLIs' spinners are -- so a finished agent's screen shows no busy indicator.
    assert "working..." not in screen
    assert demo.prompts() == ["write the release notes"]


async def test_permission_dialog_approved_with_1(demo: DemoPane) -> None:
    demo.submit("ask for permission please")
    screen = await demo.wait_for("Esc to cancel")

    dialog = screen.splitlines()[-7:]
    assert dialog == [
        " Bash command",
        "   touch demo.txt",
        " Do you want to proceed?",
        " ❯ 1. Yes",
        "   2. Yes, and don't ask again for: touch demo.txt",
        "   3. No",
        " Esc to cancel",
    ]
    assert not demo.idle()
    demo.type("1")
    screen = await demo.wait_for("✓ done: ask for permission please", idle=True)
    assert "✓ approved: touch demo.txt" in screen


async def test_run_command_dialog_approved_with_enter(demo: DemoPane) -> None:
    demo.submit("run pytest -x")
    await demo.wait_for("Do you want to proceed?")
    assert "   pytest -x" in demo.lines()

    demo.keys("Enter")
    screen = await demo.wait_for("✓ done: run pytest -x", idle=True)
    assert "✓ approved: pytest -x" in screen


async def test_2_approves_and_the_same_command_is_not_asked_again(demo: DemoPane) -> None:
    demo.submit("run make lint")
    await demo.wait_for("Esc to cancel")
    demo.type("2")
    await demo.wait_for("✓ done: run make lint", idle=True)

    demo.submit("run make lint")
    screen = await demo.wait_for("✓ allowed (don't ask again): make lint", idle=True)
    assert screen.count("Do you want to proceed?") == 1
    demo.submit("run make test")  # another command still asks
    await demo.wait_for("   make test")


async def test_after_a_denial_the_next_text_is_the_answer(demo: DemoPane) -> None:
    demo.submit("run rm -rf build")
    await demo.wait_for("Esc to cancel")
    demo.type("3")
    await demo.wait_for("✗ denied. What should I do instead?", idle=True)
    demo.submit("clean only build/tmp")
    await demo.wait_for("✓ done: clean only build/tmp", idle=True)
    assert demo.prompts() == ["run rm -rf build", "clean only build/tmp"]


async def test_escape_denies_the_dialog(demo: DemoPane) -> None:
    demo.submit("run rm -rf build")
    await demo.wait_for("Esc to cancel")

    demo.keys("Escape")
    screen = await demo.wait_for("✗ denied. What should I do instead?", idle=True)
    assert "approved" not in screen
    assert "✓ done" not in screen


async def test_multiline_paste_then_enter_is_one_prompt(demo: DemoPane, tmp_path: Path) -> None:
    text = "fix the login bug\n  - keep the API stable\n\nthen run the tests"
    source = tmp_path / "prompt.txt"
    source.write_text(text, "utf-8")
    demo.server.cmd("load-buffer", "-b", "prompt", str(source))
    demo.server.cmd("paste-buffer", "-p", "-b", "prompt", "-t", demo.pane.pane_id)
    await demo.wait_for("  ... then run the tests")
    assert "> received" not in demo.screen()  # a paste is not submitted by itself

    demo.keys("Enter")
    screen = await demo.wait_for("✓ done: fix the login bug", idle=True)

    assert "> received: fix the login bug (+3 more lines)" in screen
    assert demo.prompts() == [text]


async def test_escape_sequences_and_backspace_do_not_reach_the_prompt(demo: DemoPane) -> None:
    demo.type("abc\x1b[Ddef")  # an arrow key's escape sequence, mid-text
    demo.keys("Left", "Up", "F5")
    demo.type("gx")
    demo.keys("BSpace")
    await retry_until(lambda: "demo> abcdefg" in demo.lines(), timeout=5.0, message="echo")

    demo.keys("Enter")
    await demo.wait_for("✓ done: abcdefg", idle=True)
    assert demo.prompts() == ["abcdefg"]


async def test_ctrl_c_clears_the_line_at_the_prompt(demo: DemoPane) -> None:
    demo.type("never mind")
    await retry_until(lambda: "demo> never mind" in demo.lines(), timeout=5.0, message="echo")

    demo.keys("C-c")
    await retry_until(demo.idle, timeout=5.0, message="an empty prompt")
    demo.submit("hello")
    await demo.wait_for("✓ done: hello", idle=True)
    assert demo.prompts() == ["hello"]


async def test_crash_exits_with_status_3(demo: DemoPane) -> None:
    demo.submit("crash")

    assert await demo.exit_status() == "3"
    assert "Fatal: demo agent crashed" in demo.screen()


async def test_hang_prints_one_busy_line_then_nothing_until_ctrl_c(demo: DemoPane) -> None:
    demo.submit("hang")
    await demo.wait_for("⠋ working... step 1/4")
    before = demo.screen()
    await asyncio.sleep(STEP * 8)  # twice the time a whole task would take

    assert demo.screen() == before
    assert not demo.idle()
    demo.keys("C-c")
    screen = await demo.wait_for("Interrupted", idle=True)
    assert "step 2/4" not in screen


async def test_failure_help_and_limit_outputs(demo: DemoPane) -> None:
    demo.submit("fail")
    screen = await demo.wait_for("Error: build failed: exit status 1", idle=True)
    assert "working..." not in screen  # its status line was erased before the error

    demo.submit("repeat-error")
    screen = await demo.wait_for("> received: repeat-error")
    await retry_until(
        lambda: (
            demo.screen().count("Error: test_login failed: AssertionError") == 3 and demo.idle()
        ),
        timeout=5.0,
        message="three identical error lines",
    )

    demo.submit("could you HELP ME decide")
    await demo.wait_for(
        "I need human help: I can't decide between two designs. Which one should I use?",
        idle=True,
    )

    demo.submit("limit")
    screen = await demo.wait_for("Usage limit reached", idle=True)
    found = re.search(r"Usage limit reached\. Your limit resets at (\d\d:\d\d) UTC\.", screen)
    assert found is not None
    soon = datetime.now(UTC) + timedelta(minutes=2)
    expected = {f"{soon + timedelta(minutes=d):%H:%M}" for d in (-1, 0)}
    assert found.group(1) in expected
    assert demo.prompts() == ["fail", "repeat-error", "could you HELP ME decide", "limit"]


async def test_exit_says_bye_with_status_0(demo: DemoPane) -> None:
    demo.submit("/exit")

    assert await demo.exit_status() == "0"
    assert "bye" in demo.lines()


def test_without_a_terminal_it_reads_lines() -> None:
    script = "hello\nrun make\n1\nneed help\nexit\n"
    agent = [sys.executable, "-m", "farmbot.demo_agent", "--step", "0", "--steps", "2"]
    result = subprocess.run(agent, input=script, capture_output=True, text=True, timeout=10)

    assert result.returncode == 0
    assert result.stdout.splitlines()[1:5] == [
        "demo> hello",
        "> received: hello",
        "⠋ working... step 1/2",
        "⠙ working... step 2/2",
    ]
    assert "✓ approved: make" in result.stdout
    assert "I need human help" in result.stdout
    assert result.stdout.endswith("bye\n")


@pytest.mark.parametrize(
    ("argv", "env", "complaint"),
    [
        (["--step", "soon"], {}, "argument --step: expected a number of seconds >= 0, got 'soon'"),
        (["--steps", "0"], {}, "argument --steps: expected a whole number >= 1, got '0'"),
        ([], {"FARMBOT_DEMO_STEPS": "many"}, "FARMBOT_DEMO_STEPS: expected a whole number >= 1"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    argv: list[str],
    env: dict[str, str],
    complaint: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert demo_agent.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert complaint in err


@pytest.fixture(autouse=True)
def _no_inherited_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("FARMBOT_DEMO_STEP", "FARMBOT_DEMO_STEPS", "FARMBOT_DEMO_LOG"):
        monkeypatch.delenv(name, raising=False)
    yield
