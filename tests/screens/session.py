"""One CLI in a private tmux server against a fresh fake, and ``Session.shot`` to save screens.

Used by the scenario modules that ``capture.py`` runs; see ``tests/screens/README.md``.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests import agent_clis as clis
from tests.fakes import anthropic_api as anthropic
from tests.fakes import claude_hooks as hooks
from tests.fakes import openai_api as openai

REPO = Path(__file__).resolve().parents[2]

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
