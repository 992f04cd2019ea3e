"""The configuration, as typed frozen dataclasses.

``config.loader`` builds a ``Config`` from TOML (plus ``env:NAME`` secrets) and validates
it once at start; everything else in farmbot only ever reads these objects.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from farmbot.config.alerts import AlertsConfig, WebhookConfig
from farmbot.config.limits import LimitsConfig
from farmbot.config.node import NodeConfig
from farmbot.config.storage import StorageConfig
from farmbot.models import AutopilotMode, Role

T = TypeVar("T")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_SOCKET = "farmbot"
DEFAULT_BUILDER_PROMPT = (
    "You are builder {n} on project {project}. Work on issue #{n}: read it, implement it "
    "in this worktree with tests, and commit on this branch. Say when you are done."
)


DEFAULT_TASK_PROMPT = (
    "Task {id}: {title}\n\n{body}\n\n"
    "You work on project {project}, on branch {branch} in this worktree. Implement the task "
    "with tests and commit your work on this branch. When it is done, run:\n"
    '  farmbot task done --note "<one line: what you did>"'
)
LAND_WAYS = ("merge", "rebase", "command")
# Which CLI's hooks farmbot installs for a profile: Claude Code's (in the agent's
# .claude/settings.local.json) or Codex's (on its command line, with their trust).
HookStyle = Literal["claude", "codex"]
HOOK_STYLES: tuple[HookStyle, ...] = ("claude", "codex")


def default_state_dir() -> Path:
    return Path.home() / ".local" / "state" / "farmbot"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """``[server]``: where the web server listens and where state is kept."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    state_dir: Path = field(default_factory=default_state_dir)
    # GET /metrics takes this bearer token as well as the local key; a secret, not in repr.
    metrics_token: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class TmuxConfig:
    """``[tmux]``: the private tmux socket farmbot's sessions run on."""

    socket: str = DEFAULT_SOCKET


@dataclass(frozen=True, slots=True)
class SupervisorConfig:
    """``[supervisor]``: how agents are run, prompted and given tasks."""

    default_agent: str = "demo"  # profile used when a project names none
    max_builders: int = 4  # per project, unless the project sets its own
    tick_seconds: float = 2.0  # reconciliation / monitor period
    ready_timeout: float = 120.0  # how long a new agent may take to show its prompt
    prompt_max_bytes: int = 16384
    # How long a CLI's PermissionRequest hook is held open for a person's decision before
    # it answers nothing (the CLI's own dialog then stays, and is answered through the pane).
    permission_hold: float = 600.0
    max_agents: int = 16  # running agents in the whole farm (the autopilot stays under it)
    task_timeout: float = 7200.0  # seconds an attempt at a task may take (120 min)
    max_attempts: int = 3  # attempts at a task before it fails
    max_file_bytes: int = 8 * 1024 * 1024  # a file /file sends or /send saves, at most
    # Variables of farmbot's own environment that agents get too (e.g. an API key); by
    # default they get only farmbot.supervisor.environment.BASE (see the README).
    pass_env: tuple[str, ...] = ()
    # A prompt not delivered this long after it was queued (the agent never became ready
    # for it) fails, with an alert, instead of holding up the prompts behind it.
    prompt_timeout: float = 3600.0


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    """``[[projects]]``: a repository agents work in, and how its work is verified and landed."""

    name: str
    path: Path
    verify: str | None = None  # shell command run in a builder's worktree by QA
    agent: str | None = None  # profile for this project's agents
    max_builders: int | None = None
    base_branch: str | None = None  # tasks branch from and land on it (None: the current)
    land: str = "merge"  # "merge", "rebase", or "command" (land_command)
    land_command: str | None = None  # a shell command that lands a task (opens a PR, ...)
    deploy_staging: str | None = None  # run after each wave in auto_staging / auto_prod
    deploy_prod: str | None = None  # run once a wave's gate is approved, in auto_prod
    autopilot: AutopilotMode = AutopilotMode.OFF  # the mode until a person sets another
    nodes: tuple[str, ...] = ()  # the nodes holding a checkout; empty: where the path exists
    held: bool = True  # this node holds a checkout (and may run the project's agents)


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """How to run and read one agent CLI.

    Patterns are Python regular expressions matched against the pane's last lines.
    Times are seconds. Keys are tmux key names (``Enter``, ``Escape``, ``1``).
    """

    name: str
    command: str
    builder_prompt: str = DEFAULT_BUILDER_PROMPT
    task_prompt: str = DEFAULT_TASK_PROMPT  # {id} {title} {body} {project} {branch}
    idle_pattern: str | None = None  # the CLI waits for input
    busy_pattern: str | None = None  # the CLI is working
    waiting_pattern: str | None = None  # the CLI asks a human (permission dialog)
    # For CLIs that show no busy marker while an answer streams: a prompt as the CLI echoes
    # it, and a line that ends its turn; an echo with no end after it is busy.
    echo_pattern: str | None = None
    turn_end_pattern: str | None = None
    # The CLI's input line; group 1 is what is typed on it (no match of the group, or an
    # empty one: nothing). Read to find text left there when farmbot stopped mid-prompt.
    input_pattern: str | None = None
    clear_keys: tuple[str, ...] = ("C-u",)  # empty the input line (before typing again)
    env: dict[str, str] = field(default_factory=dict)
    # Run the agent as this Unix user (sudo, or runuser when farmbot runs as root), so it
    # cannot read farmbot's files or reach its tmux server. See the README (security).
    run_as: str | None = None
    hooks: HookStyle | None = None  # the CLI's hooks farmbot installs at spawn, if any
    approve_keys: tuple[str, ...] = ("1",)  # answer "yes" to a permission question
    session_keys: tuple[str, ...] = ()  # "yes, and don't ask again"; none: not offered
    session_note: str = ""  # what "for the session" really means for this CLI, when it differs
    deny_keys: tuple[str, ...] = ("Escape",)  # answer "no" (a reason follows as a prompt)
    error_pattern: str = r"(?i)^\s*(error|fatal|traceback|exception)\b|\berror:"
    help_pattern: str = (
        r"(?i)\b(need (some )?(human )?help|can't decide|cannot decide|please advise|"
        r"need (your )?input)\b"
    )
    limit_pattern: str = r"(?i)(limit reached|hit your (usage )?limit|usage limit).*\breset"
    continue_prompt: str = "continue"  # typed when a usage limit resets; "" turns it off
    stuck_no_output: float = 600.0  # busy with no new output
    stuck_no_tool: float = 300.0  # busy with no tool call (CLIs with hooks)
    stuck_repeated_error: int = 3  # the same error line this many times
    waiting_warn: float = 600.0  # waiting on a human: a warning alert after this long
    waiting_critical: float = 1800.0  # ... and a critical one after this long

    @property
    def hook_grants_rules(self) -> bool:
        """Whether the CLI's hook can answer with a session rule (Claude Code's can, and
        hooks posted for a profile without ``hooks`` are Claude Code's: ``farmbot hooks
        install``; Codex's allows or denies only, so farmbot keeps "for the session")."""
        return self.hooks != "codex"

    @property
    def dialog_after_hook(self) -> bool:
        """Whether the CLI draws its permission dialog only once its hook answered
        (Codex; Claude Code draws it while the hook is pending)."""
        return self.hooks == "codex"


@dataclass(frozen=True, slots=True)
class QaConfig:
    """``[qa]``: when builders' work is verified."""

    interval_minutes: float = 15.0  # the scheduled QA cycle; 0 turns it off
    timeout: float = 600.0  # seconds a verify command may run
    on_idle: bool = True  # also run when a builder goes idle after working
    min_gap: float = 60.0  # seconds between two idle-triggered runs of one builder


@dataclass(frozen=True, slots=True)
class CronJob:
    """A chat command run on a schedule, as a configured user (and audited as such)."""

    name: str
    cron: str  # five crontab fields, UTC: "0 9 * * 1-5"
    command: str  # "/send architect write the daily status report"
    user: str  # a [users.<name>]


@dataclass(frozen=True, slots=True)
class GatesConfig:
    """Who may decide gates, beyond the admin role ``/approve`` needs."""

    approvers: tuple[str, ...] = ()  # [users.<name>] names ("local": the local key); all
    interfaces: tuple[str, ...] = ()  # where decisions may come from ("telegram", ...); all


@dataclass(frozen=True, slots=True)
class UserConfig:
    """A person on the allowlist: ``[users.<name>]``."""

    name: str
    role: Role
    # Their id on each chat platform they use, by platform (config.chats): written
    # ``telegram = 1001`` or ``slack = "U0123ABCD"``; matched by authz.People.
    ids: Mapping[str, int | str] = field(default_factory=dict)
    web: bool = False


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration, as read from farmbot.toml."""

    server: ServerConfig = field(default_factory=ServerConfig)
    tmux: TmuxConfig = field(default_factory=TmuxConfig)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    projects: tuple[ProjectConfig, ...] = ()
    agents: dict[str, AgentProfile] = field(default_factory=dict)
    users: tuple[UserConfig, ...] = ()
    qa: QaConfig = field(default_factory=QaConfig)
    gates: GatesConfig = field(default_factory=GatesConfig)
    cron: tuple[CronJob, ...] = ()
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    webhooks: tuple[WebhookConfig, ...] = ()
    # Each configured chat platform's section, by name (config.chats lists them):
    # "telegram" -> TelegramConfig. Absent: that platform is not configured.
    chats: Mapping[str, object] = field(default_factory=dict)
    storage: StorageConfig = field(default_factory=StorageConfig)  # default: SQLite
    limits: LimitsConfig = field(default_factory=LimitsConfig)  # per person, per minute
    node: NodeConfig = field(default_factory=NodeConfig)
    source: Path | None = None  # the file it was read from; None when on defaults

    def profile(self, name: str) -> AgentProfile:
        return self.agents[name]

    def project(self, name: str) -> ProjectConfig | None:
        return next((p for p in self.projects if p.name == name), None)

    def chat(self, kind: type[T]) -> T | None:
        """The configured chat section of that type (``config.chat(TelegramConfig)``)."""
        return next((c for c in self.chats.values() if isinstance(c, kind)), None)


def builtin_profiles() -> dict[str, AgentProfile]:
    """Profiles farmbot knows without configuration; ``[agents.<name>]`` overrides them."""
    python = sys.executable or "python3"
    return {
        "demo": AgentProfile(
            name="demo",
            command=f"{python} -m farmbot demo-agent",
            idle_pattern=r"^demo> ?$",
            input_pattern=r"^demo>(?: (.*))?$",
            busy_pattern=r"working\.\.\.|⠋|⠙|⠹|⠸",
            waiting_pattern=r"Do you want to proceed\?",
            session_keys=("2",),
        ),
        # Claude Code 2.1.332 and 2.1.197 (tests/screens/claude): the input box is a line
        # `❯ ...` (empty, a draft, or a placeholder) between two rules, on screen even while
        # busy; every dialog ends with an "Esc to cancel" footer.
        "claude": AgentProfile(
            name="claude",
            command="claude",
            hooks="claude",
            idle_pattern=r"^\s*[>❯](\s|$)",
            input_pattern=r"^\s*[>❯](?:\s(?:Resend your message to try again|(?!\d+\.\s)(.*)))?$",
            busy_pattern=r"esc to interrupt",
            waiting_pattern=(
                r"Do you want to (proceed|create|make this edit|use this API key)|"
                r"Is this a project you created or one you trust|What do you want to do\?|"
                r"Enter to (select|confirm) · |Esc to cancel · Tab to amend"
            ),
            session_keys=("2",),
            # Used only through the pane (the hook's hold expired): through the hook,
            # "for session" is a real session rule. See docs/agent-clis.md.
            session_note=(
                "Claude's option 2, which is not a session rule: on a command it is "
                "\"don't ask again for <command prefix>\", written to the worktree's "
                ".claude/settings.local.json so later sessions skip the question too, or "
                '"always allow access to <directory> from this project", after which the '
                "same command still asks; on a file edit, every edit is accepted for the "
                "rest of the session"
            ),
        ),
        # Codex 0.171.0 (tests/screens/codex): `›` marks both the composer and a dialog's
        # selected option; nothing says busy while an answer streams, so a prompt with no
        # "Worked for" (or an error) after it is still being answered. Its hooks are given
        # as -c arguments appended to the command (farmbot/codex_hooks.py); the keys
        # answer its dialog when the hook answered nothing.
        "codex": AgentProfile(
            name="codex",
            command="codex --no-daemon",
            hooks="codex",
            idle_pattern=r"^\s*›\s(?!\d+\.\s)",
            input_pattern=r"^\s*›(?:\s(?:Ask Codex to do anything|(?!\d+\.\s)(.*)))?$",
            busy_pattern=r"esc to interrupt",
            waiting_pattern=(
                r"Would you like to (run the following command|make the following edits)\?|"
                r"^\s*›\s\d+\.\s|Press enter to confirm or esc to cancel|"
                r"^\s*enter (confirm|continue) · esc"
            ),
            echo_pattern=r"^\s*›\s(?!\d+\.\s)",
            turn_end_pattern=r"Worked for [<\d]|^\s*■|^\s*✗",
            approve_keys=("y",),
            session_keys=("p",),
            session_note=(
                "Codex keeps this as a rule for every later session too "
                "($CODEX_HOME/rules/default.rules)"
            ),
        ),
        # aider 0.86.2 (tests/screens/aider): one-line questions ending "[Yes]: ", answered
        # in place; a bare `>` prompt under a rule when idle.
        "aider": AgentProfile(
            name="aider",
            command="aider",
            idle_pattern=r"^>\s*$",
            busy_pattern=r"Waiting for \S|Retrying in [\d.]+ seconds",
            waiting_pattern=r"\(Y\)es/\(N\)o.*\]:\s*$",
            echo_pattern=r"^> \S",
            turn_end_pattern=r"^Tokens: .* sent",
            input_pattern=r"^\S*>(?: (.*))?$",
            approve_keys=("y", "Enter"),
            deny_keys=("n", "Enter"),
        ),
    }
