"""The configuration, as typed frozen dataclasses.

``config.loader`` builds a ``Config`` from TOML (plus ``env:NAME`` secrets) and validates
it once at start; everything else in farmbot only ever reads these objects.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from farmbot.models import Role

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_SOCKET = "farmbot"
DEFAULT_BUILDER_PROMPT = (
    "You are builder {n} on project {project}. Work on issue #{n}: read it, implement it "
    "in this worktree with tests, and commit on this branch. Say when you are done."
)


def default_state_dir() -> Path:
    return Path.home() / ".local" / "state" / "farmbot"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    state_dir: Path = field(default_factory=default_state_dir)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class TmuxConfig:
    socket: str = DEFAULT_SOCKET


@dataclass(frozen=True, slots=True)
class SupervisorConfig:
    default_agent: str = "demo"  # profile used when a project names none
    max_builders: int = 4  # per project, unless the project sets its own
    tick_seconds: float = 2.0  # reconciliation / monitor period
    ready_timeout: float = 120.0  # how long a new agent may take to show its prompt
    prompt_max_bytes: int = 16384


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    name: str
    path: Path
    verify: str | None = None  # shell command run in a builder's worktree by QA
    agent: str | None = None  # profile for this project's agents
    max_builders: int | None = None


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """How to run and read one agent CLI.

    Patterns are Python regular expressions matched against the pane's last lines.
    """

    name: str
    command: str
    builder_prompt: str = DEFAULT_BUILDER_PROMPT
    idle_pattern: str | None = None  # the CLI waits for input
    busy_pattern: str | None = None  # the CLI is working
    waiting_pattern: str | None = None  # the CLI asks a human (permission dialog)
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UserConfig:
    name: str
    role: Role
    telegram: int | None = None
    slack: str | None = None
    discord: int | None = None
    web: bool = False


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    tmux: TmuxConfig = field(default_factory=TmuxConfig)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    projects: tuple[ProjectConfig, ...] = ()
    agents: dict[str, AgentProfile] = field(default_factory=dict)
    users: tuple[UserConfig, ...] = ()
    source: Path | None = None  # the file it was read from; None when on defaults

    def profile(self, name: str) -> AgentProfile:
        return self.agents[name]

    def project(self, name: str) -> ProjectConfig | None:
        return next((p for p in self.projects if p.name == name), None)


def builtin_profiles() -> dict[str, AgentProfile]:
    """Profiles farmbot knows without configuration; ``[agents.<name>]`` overrides them."""
    python = sys.executable or "python3"
    return {
        "demo": AgentProfile(
            name="demo",
            command=f"{python} -m farmbot demo-agent",
            idle_pattern=r"^demo> ?$",
            busy_pattern=r"working\.\.\.|⠋|⠙|⠹|⠸",
            waiting_pattern=r"Do you want to proceed\?",
        ),
        "claude": AgentProfile(
            name="claude",
            command="claude",
            idle_pattern=r"^\s*[>❯]\s*$",
            busy_pattern=r"esc to interrupt",
            waiting_pattern=r"Do you want to proceed\?",
        ),
        "codex": AgentProfile(
            name="codex",
            command="codex --no-daemon",
            idle_pattern=r"^\s*›\s",
            busy_pattern=r"esc to interrupt",
            waiting_pattern=r"Would you like to run the following command\?",
        ),
        "gemini": AgentProfile(
            name="gemini",
            command="gemini",
            idle_pattern=r"Type your message",
            busy_pattern=r"esc to cancel",
            waiting_pattern=r"Allow execution|Apply this change\?",
        ),
        "aider": AgentProfile(
            name="aider",
            command="aider",
            idle_pattern=r"^\S*> ?$",
            waiting_pattern=r"\(Y\)es/\(N\)o",
        ),
    }
