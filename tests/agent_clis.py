"""Run the real Claude Code and Codex CLIs (and aider) offline, against ``tests/fakes``.

``.ci/install-clis.sh`` installs the pinned versions into ``<repo>/.clis``. A test marked
``clis`` asks for a binary with :func:`require_claude` / :func:`require_codex`: it skips
with a clear reason when the binary is missing, except under ``CI=true``, where a missing
binary fails the test (CI must have run the install script).

:func:`claude_setup` and :func:`codex_setup` build an isolated home in a temporary
directory, seeded so that the CLI lands directly on its input prompt (onboarding done, the
API key approved, the working directory trusted), plus the environment and command line.
``setup.env`` is a complete environment: pass it to tmux ``new-session -e`` / ``env -i``.
What each seeded key does is in ``docs/agent-clis.md``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

REPO = Path(__file__).resolve().parent.parent
CLAUDE_VERSION = "2.1.332"
CODEX_VERSION = "0.171.0"
FAKE_ANTHROPIC_KEY = "sk-ant-api03-farmbot-fake-key-0000000000000000000000000000AAAAAAAAAA"
FAKE_CLAUDE_OAUTH_TOKEN = "sk-ant-oat01-farmbot-fake-token-000000000000000000000000"
FAKE_OPENAI_KEY = "sk-farmbot-fake-openai-key-000000000000"
#: The pane size farmbot uses; the screen corpus is captured at this size.
PANE_WIDTH, PANE_HEIGHT = 200, 50


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"true", "1", "yes"}


def clis_dir() -> Path:
    """Where ``.ci/install-clis.sh`` installs: ``$FARMBOT_CLIS_DIR``, else ``<repo>/.clis``."""
    return Path(os.environ.get("FARMBOT_CLIS_DIR") or REPO / ".clis")


def _missing(what: str) -> NoReturn:
    reason = f"{what} not installed: run .ci/install-clis.sh (installs into {clis_dir()})"
    if _in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def find_claude() -> Path | None:
    """The Claude Code binary: ``.clis/`` first, then ``claude`` on PATH."""
    local = clis_dir() / "node_modules/@anthropic-ai/claude-code/bin/claude.exe"
    if local.is_file() and os.access(local, os.X_OK):
        return local
    found = shutil.which("claude")
    return Path(found) if found else None


def find_codex() -> Path | None:
    """The Codex binary: ``.clis/`` first (the native one, not the node wrapper), then PATH."""
    pattern = "node_modules/@openai/codex-linux-*/vendor/*/bin/codex"
    for candidate in sorted(clis_dir().glob(pattern)):
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("codex")
    return Path(found) if found else None


def require_claude() -> Path:
    """The Claude Code binary, or skip (fail under CI) with the reason."""
    found = find_claude()
    if found is None:
        _missing("Claude Code")
    return found


def require_codex() -> Path:
    """The Codex binary, or skip (fail under CI) with the reason."""
    found = find_codex()
    if found is None:
        _missing("Codex")
    return found


def version_of(binary: Path) -> str:
    """``<binary> --version`` as the CLI prints it (first line)."""
    out = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


def _package_version(binary: Path, default: str) -> str:
    """The npm package's version for a binary under ``node_modules/<pkg>/bin/``."""
    manifest = binary.resolve().parent.parent / "package.json"
    try:
        return str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return default


@dataclass
class CliSetup:
    """Everything needed to start one CLI: where, with which environment, and how."""

    binary: Path
    workdir: Path
    home: Path
    env: dict[str, str]
    argv: list[str]
    extra: dict[str, Path] = field(default_factory=dict)

    @property
    def command(self) -> str:
        """The CLI's own command line as one shell string."""
        return shlex.join(self.argv)

    @property
    def profile_command(self) -> str:
        """A farmbot profile ``command`` that starts the CLI in ``workdir`` with exactly
        ``env`` (``cd DIR && exec env -i K=V ... ARGV``), whatever the daemon's own env."""
        return self.command_keeping()

    def command_keeping(self, *names: str) -> str:
        """:attr:`profile_command`, plus the variables ``names`` passed on from the pane's
        environment (e.g. the ``FARMBOT_*`` ones the supervisor gives every agent)."""
        assignments = [f"{key}={value}" for key, value in sorted(self.env.items())]
        kept = "".join(f' "{name}=${{{name}}}"' for name in names)
        env = shlex.join(["env", "-i", *assignments])
        return f"cd {shlex.quote(str(self.workdir))} && exec {env}{kept} {shlex.join(self.argv)}"

    def tmux_env_args(self) -> list[str]:
        """``-e K=V`` pairs for ``tmux new-session``."""
        args: list[str] = []
        for key, value in sorted(self.env.items()):
            args += ["-e", f"{key}={value}"]
        return args


def _base_env(home: Path) -> dict[str, str]:
    """A minimal environment: no inherited API keys, proxies or CI variables reach the CLI."""
    path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    return {
        "HOME": str(home),
        "PATH": path,
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "SHELL": "/bin/bash",
        "USER": os.environ.get("USER", "root"),
        "TMPDIR": str(home / "tmp"),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def claude_setup(
    tmp_path: Path,
    base_url: str,
    *,
    binary: Path | None = None,
    workdir: Path | None = None,
    settings: dict[str, Any] | None = None,
    project_settings: dict[str, Any] | None = None,
    permission_mode: str = "default",
    extra_args: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
    trusted: bool = True,
    key_approved: bool = True,
    subscription: bool = False,
) -> CliSetup:
    """Claude Code seeded to start on its ``❯`` prompt, talking to ``base_url``.

    ``subscription=True`` logs in with a (fake) ``CLAUDE_CODE_OAUTH_TOKEN`` instead of an API
    key, as a claude.ai subscriber would be: the usage-limit screens exist only then.

    ``trusted=False`` / ``key_approved=False`` leave out that part of the seed, so the
    CLI stops on its "trust this folder" / "use this API key?" screen instead.

    ``settings`` go to the user settings (``$CLAUDE_CONFIG_DIR/settings.json``), merged over
    ``{"permissions": {"defaultMode": permission_mode}}``; ``project_settings`` to
    ``<workdir>/.claude/settings.local.json`` (where farmbot puts its hooks).
    """
    binary = binary or require_claude()
    version = _package_version(binary, CLAUDE_VERSION)
    home = tmp_path / "claude-home"
    config_dir = home / ".claude"
    workdir = workdir or tmp_path / "work"
    for directory in (home / "tmp", config_dir, workdir):
        directory.mkdir(parents=True, exist_ok=True)
    workdir = workdir.resolve()
    state = {
        "hasCompletedOnboarding": True,
        "lastOnboardingVersion": version,
        "lastReleaseNotesSeen": version,
        "numStartups": 1,
        "theme": "dark",
        "autoUpdates": False,
        "hasSeenTasksHint": True,
        "hasIdeOnboardingBeenShown": {"vscode": True},
        "hasSeenAutoDefaultNudge": True,  # 2.1.332: "Make auto mode your default ...?"
        "customApiKeyResponses": {
            "approved": [FAKE_ANTHROPIC_KEY[-20:]] if key_approved else [],
            "rejected": [],
        },
        "projects": {
            str(workdir): {
                "hasTrustDialogAccepted": trusted,
                "hasCompletedProjectOnboarding": True,
                "projectOnboardingSeenCount": 1,
                "allowedTools": [],
            }
        },
    }
    # With CLAUDE_CONFIG_DIR set the state is $CLAUDE_CONFIG_DIR/.claude.json (not ~/).
    (config_dir / ".claude.json").write_text(json.dumps(state, indent=2))
    user_settings: dict[str, Any] = {"permissions": {"defaultMode": permission_mode}}
    user_settings.update(settings or {})
    (config_dir / "settings.json").write_text(json.dumps(user_settings, indent=2))
    if project_settings is not None:
        (workdir / ".claude").mkdir(exist_ok=True)
        (workdir / ".claude" / "settings.local.json").write_text(
            json.dumps(project_settings, indent=2)
        )
    env = _base_env(home)
    env.update(
        {
            "CLAUDE_CONFIG_DIR": str(config_dir),
            "ANTHROPIC_BASE_URL": base_url,
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "DISABLE_BUG_COMMAND": "1",
            "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
            "CLAUDE_CODE_TMPDIR": str(home / "tmp"),
            "CLAUDE_CODE_IDE_SKIP_AUTO_INSTALL": "1",
        }
    )
    if subscription:
        env["CLAUDE_CODE_OAUTH_TOKEN"] = FAKE_CLAUDE_OAUTH_TOKEN
    else:
        env["ANTHROPIC_API_KEY"] = FAKE_ANTHROPIC_KEY
    env.update(extra_env or {})
    argv = [str(binary), *(extra_args or [])]
    return CliSetup(binary, workdir, home, env, argv, {"config_dir": config_dir})


def codex_setup(
    tmp_path: Path,
    base_url: str,
    *,
    binary: Path | None = None,
    workdir: Path | None = None,
    approval_policy: str = "on-request",
    sandbox_mode: str = "workspace-write",
    config_extra: str = "",
    extra_args: list[str] | None = None,
    hooks: dict[str, Any] | None = None,
    trusted: bool = True,
) -> CliSetup:
    """Codex seeded to start on its ``›`` prompt, talking to ``base_url`` (``.../v1``).

    0.171.0 knows only ``on-request`` and ``never`` (``untrusted`` is refused at start):
    with ``on-request`` a command asks for approval when the model's call requests
    escalation (``sandbox_permissions: "require_escalated"``, see ``openai_api``).
    ``config_extra`` is appended to ``config.toml`` verbatim. ``hooks`` is written to
    ``$CODEX_HOME/hooks.json`` (Claude's format); Codex runs hooks only once trusted: pass
    ``farmbot.codex_hooks.overrides(...)`` in ``extra_args`` (hooks and their trust, as
    farmbot spawns Codex), or, to pin down Codex's own behaviour with a hook,
    ``--dangerously-bypass-hook-trust`` (else it shows its hook review screen at start).
    ``trusted=False`` leaves the project untrusted.
    """
    binary = binary or require_codex()
    home = tmp_path / "codex-home"
    codex_home = home / ".codex"
    workdir = workdir or tmp_path / "work"
    for directory in (home / "tmp", codex_home, workdir):
        directory.mkdir(parents=True, exist_ok=True)
    workdir = workdir.resolve()
    trust_level = "trusted" if trusted else "untrusted"
    config = f"""\
model = "gpt-5-codex"
model_provider = "fake"
approval_policy = "{approval_policy}"
sandbox_mode = "{sandbox_mode}"
check_for_update_on_startup = false

[model_providers.fake]
name = "fake"
base_url = "{base_url}"
env_key = "OPENAI_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 300000

[projects."{workdir}"]
trust_level = "{trust_level}"

[analytics]
enabled = false

[otel]
exporter = "none"
{config_extra}
"""
    (codex_home / "config.toml").write_text(config)
    (codex_home / "auth.json").write_text(json.dumps({"OPENAI_API_KEY": FAKE_OPENAI_KEY}))
    if hooks is not None:
        (codex_home / "hooks.json").write_text(json.dumps(hooks, indent=2))
    env = _base_env(home)
    env.update(
        {
            "CODEX_HOME": str(codex_home),
            "OPENAI_API_KEY": FAKE_OPENAI_KEY,
            "OPENAI_BASE_URL": base_url,
            "CODEX_DISABLE_UPDATE_CHECK": "1",
            "RUST_LOG": "error",
        }
    )
    argv = [str(binary), "--no-daemon", *(extra_args or [])]
    return CliSetup(binary, workdir, home, env, argv, {"codex_home": codex_home})


class CliPane:
    """One CLI in its own tmux session on a private socket, 200x50 like farmbot's panes.

    The command runs under ``env -i`` with exactly ``setup.env``, so nothing from the test
    process (API keys, ``CI``) leaks in. ``remain-on-exit`` keeps a dead pane readable.
    """

    def __init__(self, socket: str, target: str) -> None:
        self.socket = socket
        self.target = target

    @classmethod
    def start(
        cls,
        socket: str,
        setup: CliSetup,
        name: str = "agent",
        *,
        width: int = PANE_WIDTH,
        height: int = PANE_HEIGHT,
    ) -> CliPane:
        """Start ``setup`` in a new detached session ``name``."""
        conf = setup.home / "tmux.conf"
        conf.write_text("set -g remain-on-exit on\nset -g history-limit 5000\n")
        env = [f"{key}={value}" for key, value in sorted(setup.env.items())]
        _tmux(
            socket,
            "-f",
            str(conf),
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            str(width),
            "-y",
            str(height),
            "-c",
            str(setup.workdir),
            "--",
            "env",
            "-i",
            *env,
            *setup.argv,
        )
        _tmux(socket, "set-option", "-g", "remain-on-exit", "on")
        return cls(socket, f"{name}:0.0")

    def capture(self, *, history: bool = False) -> str:
        """The visible screen as ``capture-pane -p -J`` prints it (``history``: with the
        scrollback, ``-S -``)."""
        start = ["-S", "-"] if history else []
        return _tmux(self.socket, "capture-pane", "-p", "-J", *start, "-t", self.target)

    @property
    def dead(self) -> bool:
        """The CLI has exited (the pane stays, with ``remain-on-exit``)."""
        return self.field("pane_dead").strip() == "1"

    def keys(self, *keys: str) -> None:
        """tmux key names (``Enter``, ``Escape``, ``Tab``, ``1`` ...)."""
        _tmux(self.socket, "send-keys", "-t", self.target, *keys)

    def type(self, text: str) -> None:
        """Literal text, no Enter."""
        _tmux(self.socket, "send-keys", "-t", self.target, "-l", text)

    def field(self, name: str) -> str:
        """One ``#{...}`` format of the pane, e.g. ``pane_dead_signal``."""
        return _tmux(self.socket, "display-message", "-p", "-t", self.target, f"#{{{name}}}")

    def kill_process(self, signal: str = "KILL") -> None:
        """Send a signal to the CLI (the pane's process)."""
        subprocess.run(["kill", f"-{signal}", self.field("pane_pid").strip()], check=False)

    async def submit(self, text: str) -> None:
        """Type ``text`` and press Enter (a short pause between, as a person would)."""
        await asyncio.to_thread(self.type, text)
        await asyncio.sleep(0.2)
        await asyncio.to_thread(self.keys, "Enter")

    def count(self, pattern: str) -> int:
        """How often ``pattern`` occurs on the screen now."""
        return len(re.findall(pattern, self.capture(), re.MULTILINE))

    async def wait_for(
        self,
        pattern: str | re.Pattern[str],
        *,
        timeout: float = 20.0,
        absent: bool = False,
        count: int = 1,
    ) -> str:
        """Poll the screen until ``pattern`` occurs ``count`` times (or is gone, with
        ``absent``); return the screen."""
        regex = re.compile(pattern, re.MULTILINE) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = await asyncio.to_thread(self.capture)
            found = len(regex.findall(screen))
            if (found == 0) if absent else (found >= count):
                return screen
            await asyncio.sleep(0.1)
        state = "still there" if absent else f"not found {count} time(s)"
        raise AssertionError(f"{regex.pattern!r} {state} after {timeout}s; screen:\n{screen}")


def _tmux(socket: str, *args: str) -> str:
    out = subprocess.run(
        ["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=15, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"tmux {' '.join(args[:3])}: {out.stderr.strip()}")
    return out.stdout


# Patterns the tests wait for (observed on the pinned versions; see docs/agent-clis.md).
# The input prompts are also on screen while the CLI is busy: they say "started", not "idle".
CLAUDE_PROMPT = r"^❯\s*$"  # an empty input box: "❯" + U+00A0 NO-BREAK SPACE
CLAUDE_DIALOG = r"Do you want to proceed\?"
CODEX_PROMPT = r"^› Ask Codex to do anything"  # the empty composer's placeholder
CODEX_DIALOG = r"Would you like to run the following command\?"


def find_aider() -> Path | None:
    """aider, if installed: ``$AIDER_BIN``, else ``aider`` on PATH (not installed by CI)."""
    named = os.environ.get("AIDER_BIN")
    if named and os.access(named, os.X_OK):
        return Path(named)
    found = shutil.which("aider")
    return Path(found) if found else None


def aider_setup(
    tmp_path: Path, base_url: str, *, binary: Path, workdir: Path | None = None
) -> CliSetup:
    """aider talking to a fake Chat Completions endpoint (``FakeOpenAI.url``).

    Its model-price cache is seeded from litellm's bundled copy, so it does not download
    one, and every other outbound request goes to a closed local proxy port and fails.
    """
    home = tmp_path / "aider-home"
    workdir = workdir or tmp_path / "work"
    for directory in (home / "tmp", home / ".aider" / "caches", workdir):
        directory.mkdir(parents=True, exist_ok=True)
    bundled = sorted(
        binary.resolve().parent.parent.glob(
            "lib/python3*/site-packages/litellm/model_prices_and_context_window_backup.json"
        )
    )
    if bundled:
        cache = home / ".aider" / "caches" / "model_prices_and_context_window.json"
        shutil.copyfile(bundled[0], cache)
    env = _base_env(home)
    env.update(
        {
            "OPENAI_API_KEY": FAKE_OPENAI_KEY,
            "OPENAI_API_BASE": base_url,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "HTTP_PROXY": "http://127.0.0.1:9",
            "HTTPS_PROXY": "http://127.0.0.1:9",
        }
    )
    argv = [
        str(binary),
        "--model",
        "openai/gpt-4o",
        "--no-check-update",
        "--analytics-disable",
        "--no-show-model-warnings",
        "--no-auto-commits",
        "--no-show-release-notes",
    ]
    return CliSetup(binary, workdir.resolve(), home, env, argv)
