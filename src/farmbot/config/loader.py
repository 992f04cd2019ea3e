"""Read farmbot's TOML configuration into a validated ``Config``.

Every problem raises one ``ConfigError`` naming the dotted key, e.g.
``config: server.port: expected an integer, got string "80a"``. A section is one small
function that reads a ``Table`` with the converters below and calls ``finish()``, which
reports any key it did not read as unknown. Any string may be written ``env:NAME``, or
``vault:NAME`` to read the vault in ``server.state_dir`` (opened only when one is used).
"""

from __future__ import annotations

import os
import subprocess
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import replace
from importlib import resources
from pathlib import Path

from farmbot.config import chats
from farmbot.config.alerts import parse_alerts, parse_webhooks
from farmbot.config.limits import parse_limits
from farmbot.config.node import node_name, parse_node
from farmbot.config.reader import (
    ENV_NAME,
    TASK_PROMPT_FIELDS,
    Table,
    as_table,
    as_tables,
    boolean,
    branch_name,
    closest,
    cron_expression,
    fs_path,
    integer,
    is_reference,
    nonempty,
    number,
    one_of,
    profile_ref,
    project_name,
    prompt_template,
    regex,
    resolve_secret,
    role_name,
    secret,
    socket_name,
    strings,
    template_with,
    text,
    type_error,
    zero_or_more,
)
from farmbot.config.routes import AlertRoute
from farmbot.config.schema import (
    LAND_WAYS,
    AgentProfile,
    Config,
    CronJob,
    GatesConfig,
    ProjectConfig,
    QaConfig,
    ServerConfig,
    SupervisorConfig,
    TmuxConfig,
    UserConfig,
    builtin_profiles,
)
from farmbot.config.storage import parse_storage
from farmbot.errors import ConfigError
from farmbot.hook import HOLD_TIMEOUT
from farmbot.models import AutopilotMode, Role

__all__ = [
    "Config",
    "find_config_path",
    "load_config",
    "load_server_config",
    "resolve_secret",
    "write_example",
]


EXAMPLE_NAME = "farmbot.example.toml"


# -- sections ---------------------------------------------------------------------------


METRICS_TOKEN_MIN = 16  # characters
# A held PermissionRequest must be let go while its hook still listens: `farmbot hook`
# gives up at HOLD_TIMEOUT (the CLI itself waits longer, hooks_install.PERMISSION_TIMEOUT),
# and the answer needs a moment to travel back.
HOLD_MARGIN = 30.0
MAX_PERMISSION_HOLD = HOLD_TIMEOUT - HOLD_MARGIN


def _server(t: Table, *, secrets: bool = True) -> ServerConfig:
    """``[server]``; ``secrets=False`` checks the metrics token's form without reading it
    (``farmbot secret set`` must work before the secret it names exists)."""
    d = ServerConfig()
    host = t.get("host", text(), d.host)
    port = t.get("port", integer(1, 65535), d.port)
    state_dir = t.get("state_dir", fs_path(), d.state_dir)
    t.vault = _vault_lookup(state_dir, t.environ)  # the vault is in the state directory
    token = t.get("metrics_token", _metrics_token if secrets else _reference)
    t.finish()
    return ServerConfig(
        host=host, port=port, state_dir=state_dir, metrics_token=token if secrets else None
    )


def _metrics_token(t: Table, key: str, raw: object) -> str:
    token = secret(t, key, raw)
    if len(token) < METRICS_TOKEN_MIN:
        raise ConfigError(key, f"too short: a token needs {METRICS_TOKEN_MIN} characters or more")
    return token


def _reference(t: Table, key: str, raw: object) -> str:
    """A secret's reference, unread."""
    if not is_reference(raw):
        raise ConfigError(
            key, 'secrets are never written in the file; use "env:NAME" or "vault:NAME"'
        )
    return str(raw)


def _tmux(t: Table) -> TmuxConfig:
    tmux = TmuxConfig(socket=t.get("socket", text(socket_name), TmuxConfig().socket))
    t.finish()
    return tmux


def _supervisor(t: Table, agents: Mapping[str, AgentProfile]) -> SupervisorConfig:
    d = SupervisorConfig()
    supervisor = SupervisorConfig(
        default_agent=t.get("default_agent", text(profile_ref(agents)), d.default_agent),
        max_builders=t.get("max_builders", integer(1), d.max_builders),
        tick_seconds=t.get("tick_seconds", number, d.tick_seconds),
        ready_timeout=t.get("ready_timeout", number, d.ready_timeout),
        prompt_max_bytes=t.get("prompt_max_bytes", integer(64), d.prompt_max_bytes),
        permission_hold=t.get("permission_hold", _permission_hold, d.permission_hold),
        max_agents=t.get("max_agents", integer(1), d.max_agents),
        task_timeout=t.get("task_timeout", number, d.task_timeout),
        max_attempts=t.get("max_attempts", integer(1), d.max_attempts),
        max_file_bytes=t.get("max_file_bytes", integer(1), d.max_file_bytes),
        pass_env=t.get("pass_env", _env_names, d.pass_env),
        prompt_timeout=t.get("prompt_timeout", number, d.prompt_timeout),
    )
    t.finish()
    return supervisor


def _permission_hold(t: Table, key: str, raw: object) -> float:
    """Seconds (0: never hold), and no longer than the hook that is held waits."""
    hold = zero_or_more(t, key, raw)
    if hold > MAX_PERMISSION_HOLD:
        raise ConfigError(
            key,
            f"at most {MAX_PERMISSION_HOLD:g} s, got {raw}: `farmbot hook` gives up on its "
            f"answer after {HOLD_TIMEOUT:g} s, so a longer hold would answer a hook nobody "
            "listens to any more",
        )
    return hold


def _env_names(t: Table, key: str, raw: object) -> tuple[str, ...]:
    names = strings(t, key, raw)
    for name in names:
        if not ENV_NAME.fullmatch(name):
            raise ConfigError(key, f"{name!r} is not a valid environment variable name")
    return names


def _keys(t: Table, key: str, raw: object) -> tuple[str, ...]:
    """An array of tmux key names; empty is allowed (nothing to press)."""
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        raise type_error(key, "an array of tmux key names", raw)
    return tuple(raw)


def _unix_user(value: str, shown: str) -> str | None:
    import pwd

    if not ENV_NAME.fullmatch(value.replace("-", "_")):
        return f"expected a Unix user name, got {shown}"
    try:
        pwd.getpwnam(value)
    except KeyError:
        return f"no Unix user {shown} on this machine (create it first: see the README)"
    return None


def _agents(t: Table) -> dict[str, AgentProfile]:
    profiles = builtin_profiles()
    for name, sub in t.items(as_table).items():
        problem = project_name(name, f"'{name}'")
        if problem:
            raise ConfigError(sub.path, problem)
        profiles[name] = _profile(name, sub, profiles.get(name))
    return profiles


def _profile(name: str, t: Table, base: AgentProfile | None) -> AgentProfile:
    """Merge ``[agents.<name>]`` over the builtin profile of that name, if any."""
    if base is None:
        command = t.need("command", text(nonempty), "; a new agent profile needs a command")
        base = AgentProfile(name=name, command=command)
    env = t.get("env", as_table)
    profile = replace(
        base,
        command=t.get("command", text(nonempty), base.command),
        builder_prompt=t.get("builder_prompt", text(prompt_template), base.builder_prompt),
        task_prompt=t.get("task_prompt", text(template_with(TASK_PROMPT_FIELDS)), base.task_prompt),
        idle_pattern=t.get("idle_pattern", text(regex), base.idle_pattern) or None,
        busy_pattern=t.get("busy_pattern", text(regex), base.busy_pattern) or None,
        waiting_pattern=t.get("waiting_pattern", text(regex), base.waiting_pattern) or None,
        echo_pattern=t.get("echo_pattern", text(regex), base.echo_pattern) or None,
        turn_end_pattern=t.get("turn_end_pattern", text(regex), base.turn_end_pattern) or None,
        input_pattern=t.get("input_pattern", text(regex), base.input_pattern) or None,
        clear_keys=t.get("clear_keys", _keys, base.clear_keys),
        env=base.env if env is None else _env_table(env),
        run_as=t.get("run_as", text(_unix_user), base.run_as),
        hooks=t.get("hooks", boolean, base.hooks),
        approve_keys=t.get("approve_keys", strings, base.approve_keys),
        session_keys=t.get("session_keys", strings, base.session_keys),
        session_note=t.get("session_note", text(), base.session_note),
        deny_keys=t.get("deny_keys", strings, base.deny_keys),
        error_pattern=t.get("error_pattern", text(regex), base.error_pattern),
        help_pattern=t.get("help_pattern", text(regex), base.help_pattern),
        limit_pattern=t.get("limit_pattern", text(regex), base.limit_pattern),
        continue_prompt=t.get("continue_prompt", text(), base.continue_prompt),
        stuck_no_output=t.get("stuck_no_output", number, base.stuck_no_output),
        stuck_no_tool=t.get("stuck_no_tool", number, base.stuck_no_tool),
        stuck_repeated_error=t.get("stuck_repeated_error", integer(2), base.stuck_repeated_error),
        waiting_warn=t.get("waiting_warn", number, base.waiting_warn),
        waiting_critical=t.get("waiting_critical", number, base.waiting_critical),
    )
    t.finish()
    return profile


def _qa(t: Table) -> QaConfig:
    d = QaConfig()
    qa = QaConfig(
        interval_minutes=t.get("interval_minutes", zero_or_more, d.interval_minutes),
        timeout=t.get("timeout", number, d.timeout),
        on_idle=t.get("on_idle", boolean, d.on_idle),
        min_gap=t.get("min_gap", zero_or_more, d.min_gap),
    )
    t.finish()
    return qa


def _cron(tables: list[Table], users: list[UserConfig]) -> list[CronJob]:
    names = [u.name for u in users]
    jobs: list[CronJob] = []
    for t in tables:
        job = CronJob(
            name=t.need("name", text(project_name)),
            cron=t.need("cron", text(cron_expression)),
            command=t.need("command", text(nonempty)),
            user=t.need("user", text(nonempty)),
        )
        if job.user not in names:
            hint = f" (known: {', '.join(names)})" if names else "; add [users.<name>] first"
            raise t.error("user", f"unknown user '{job.user}'{hint}")
        if any(j.name == job.name for j in jobs):
            raise t.error("name", f"duplicate cron job name '{job.name}'")
        t.finish()
        jobs.append(job)
    return jobs


def _env_table(t: Table) -> dict[str, str]:
    env = t.items(text())
    for var in env:
        if not ENV_NAME.fullmatch(var):
            raise t.error(var, "not a valid environment variable name")
    return env


def _projects(
    tables: list[Table], agents: Mapping[str, AgentProfile], node: str, shared: bool
) -> list[ProjectConfig]:
    """``[[projects]]``. On a shared database (``shared``) a project is held by the nodes
    it names, or else by every node where its path exists; its path must exist only where
    it is held. With SQLite the one node holds every project."""
    projects: list[ProjectConfig] = []
    first: dict[str, str] = {}
    for t in tables:
        name = t.need("name", text(project_name))
        if name in first:
            raise t.error("name", f"duplicate project name '{name}' (also {first[name]})")
        first[name] = t.key("name")
        land_command = t.get("land_command", text(nonempty))
        land = t.get("land", text(one_of(LAND_WAYS)), "command" if land_command else "merge")
        if land == "command" and not land_command:
            raise t.error("land_command", 'missing (land = "command" runs it to land a task)')
        if land_command and land != "command":
            raise t.error(
                "land", f'is "{land}", but land_command is set: use "command" or drop one'
            )
        modes = tuple(m.value for m in AutopilotMode)
        nodes: tuple[str, ...] = t.get("nodes", strings, ())
        for index, each in enumerate(nodes):
            problem = node_name(each, f"'{each}'")
            if problem:
                raise ConfigError(f"{t.key('nodes')}[{index}]", problem)
        if nodes and not shared:
            raise t.error("nodes", "is used only with a shared database (storage.url)")
        if nodes:
            held = node in nodes
        else:
            held = not shared or t.peek("path", fs_path(), Path()).is_dir()
        project = ProjectConfig(
            name=name,
            path=t.need("path", fs_path(directory=held)),
            verify=t.get("verify", text()) or None,
            agent=t.get("agent", text(profile_ref(agents))),
            max_builders=t.get("max_builders", integer(1)),
            base_branch=t.get("base_branch", text(branch_name)),
            land=land,
            land_command=land_command,
            deploy_staging=t.get("deploy_staging", text(nonempty)),
            deploy_prod=t.get("deploy_prod", text(nonempty)),
            autopilot=AutopilotMode(t.get("autopilot", text(one_of(modes)), "off")),
            nodes=nodes,
            held=held,
        )
        t.finish()
        projects.append(project)
    return projects


GATE_INTERFACES = ("web", "cli", *chats.NAMES, "scheduler")


def _gates(t: Table, users: list[UserConfig]) -> GatesConfig:
    names = [u.name for u in users] + ["local"]

    def approver(value: str, shown: str) -> str | None:
        if value in names:
            return None
        close = closest(value, names)
        hint = f"; did you mean '{close}'?" if close else f" (known: {', '.join(names)})"
        return f"unknown user {shown}{hint}"

    def interface(value: str, shown: str) -> str | None:
        if value in GATE_INTERFACES:
            return None
        return f"unknown interface {shown} (one of: {', '.join(GATE_INTERFACES)})"

    def checked(check: Callable[[str, str], str | None]) -> Callable[..., tuple[str, ...]]:
        def conv(tt: Table, key: str, raw: object) -> tuple[str, ...]:
            values = strings(tt, key, raw)
            for value in values:
                problem = check(value, f"'{value}'")
                if problem:
                    raise ConfigError(key, problem)
            return values

        return conv

    gates = GatesConfig(
        approvers=t.get("approvers", checked(approver), ()),
        interfaces=t.get("interfaces", checked(interface), ()),
    )
    t.finish()
    return gates


def _users(t: Table) -> list[UserConfig]:
    users: list[UserConfig] = []
    claimed: dict[tuple[str, object], str] = {}  # (platform, identity) -> user key
    for name, sub in t.items(as_table).items():
        role = Role.parse(sub.need("role", text(role_name)))
        ids: dict[str, int | str] = {}
        for chat in chats.CHATS:  # [users.<name>] telegram = 1001, slack = "U0123ABCD"
            chat_id = sub.get(chat.name, chat.ids.read)
            if chat_id is not None:
                ids[chat.name] = chat_id
        user = UserConfig(name=name, role=role, ids=ids, web=sub.get("web", boolean, False))
        sub.finish()
        identities: dict[str, object] = dict(user.ids)
        if user.web:
            identities["web"] = True  # the web console logs in as exactly one person
        for platform, identity in identities.items():
            owner = claimed.setdefault((platform, identity), sub.path)
            if owner != sub.path and platform == "web":
                raise sub.error("web", f"only one user may have web = true (already {owner})")
            if owner != sub.path:
                raise sub.error(platform, f"this {platform} identity is already claimed by {owner}")
        users.append(user)
    return users


# -- entry points -----------------------------------------------------------------------


def find_config_path(explicit: str | Path | None, environ: Mapping[str, str]) -> Path | None:
    """Pick the config file: ``--config``, else ``$FARMBOT_CONFIG``, else the user's file."""
    if explicit is not None:
        return _existing(Path(explicit).expanduser(), "")
    if environ.get("FARMBOT_CONFIG"):
        return _existing(Path(environ["FARMBOT_CONFIG"]).expanduser(), " (from $FARMBOT_CONFIG)")
    default = Path.home() / ".config" / "farmbot" / "farmbot.toml"
    return default if default.is_file() else None


def _existing(path: Path, origin: str) -> Path:
    if not path.exists():
        raise ConfigError("", f"{path}: no such file{origin}")
    if not path.is_file():
        raise ConfigError("", f"{path}: not a file{origin}")
    return path


def load_config(path: Path | None, environ: Mapping[str, str], cwd: Path) -> Config:
    """Read and validate the config; ``path=None`` runs on defaults."""
    source = Path(cwd, path) if path is not None else None
    data = _read_toml(source) if source is not None else {}
    root = Table(data, "", environ, source.parent if source is not None else cwd)
    server = _server(root.table("server"))
    root.vault = _vault_lookup(server.state_dir, environ)
    storage = parse_storage(root.table("storage"))
    node = parse_node(root.table("node"))
    tmux = _tmux(root.table("tmux"))
    agents = _agents(root.table("agents"))
    supervisor = _supervisor(root.table("supervisor"), agents)
    projects = _projects(
        root.get("projects", as_tables, []), agents, node.name, storage.url is not None
    )
    users = _users(root.table("users"))
    qa = _qa(root.table("qa"))
    gates = _gates(root.table("gates"), users)
    cron = _cron(root.get("cron", as_tables, []), users)
    limits = parse_limits(root.table("limits"))
    webhooks = parse_webhooks(root.get("webhooks", as_tables, []))
    alerts = parse_alerts(root.table("alerts"), webhooks)
    sections: dict[str, object] = {}  # [telegram], [slack], ...: see config.chats
    for chat in chats.CHATS:
        table = root.get(chat.name, as_table)
        if table is None:
            continue
        section = chat.parse(table, [p.name for p in projects])
        sections[chat.name] = section
        alerts = replace(alerts, routes=alerts.routes + chat.routes(section))
    _check_routes(alerts.routes, sections)
    root.finish()
    if not projects and _inside_git_work_tree(cwd):
        projects = [ProjectConfig(name="default", path=cwd)]
    return Config(
        server=server,
        tmux=tmux,
        supervisor=supervisor,
        projects=tuple(projects),
        agents=agents,
        users=tuple(users),
        qa=qa,
        gates=gates,
        cron=tuple(cron),
        alerts=alerts,
        webhooks=webhooks,
        chats=sections,
        storage=storage,
        limits=limits,
        node=node,
        source=source,
    )


def load_server_config(path: Path | None, environ: Mapping[str, str], cwd: Path) -> ServerConfig:
    """Only ``[server]``: where the state directory is, for commands that must work even
    when the rest does not load (``farmbot secret set`` for a secret the config lacks)."""
    source = Path(cwd, path) if path is not None else None
    data = _read_toml(source) if source is not None else {}
    root = Table(data, "", environ, source.parent if source is not None else cwd)
    return _server(root.table("server"), secrets=False)


def names_storage_url(path: Path | None, cwd: Path) -> bool:
    """Whether the config keeps farmbot's state in PostgreSQL (``[storage] url`` is set),
    read without resolving a secret (``farmbot backup`` only copies SQLite)."""
    if path is None:
        return False
    storage = _read_toml(Path(cwd, path)).get("storage")
    return isinstance(storage, dict) and storage.get("url") is not None


def _vault_lookup(state_dir: Path, environ: Mapping[str, str]) -> Callable[[str], str]:
    def lookup(name: str) -> str:
        from farmbot.storage.vault import Vault  # cryptography loads only when used

        return Vault(state_dir, environ).get(name)

    return lookup


def _check_routes(routes: tuple[AlertRoute, ...], configured: Mapping[str, object]) -> None:
    """A route to a chat interface needs that interface configured (else: dead letters)."""
    for index, route in enumerate(routes):
        if route.interface in chats.NAMES and route.interface not in configured:
            raise ConfigError(
                f"alerts.routes[{index}].interface",
                f"'{route.interface}' is not configured; add a [{route.interface}] section",
            )


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("", f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError("", f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError("", f"{path}: not valid UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        message = " ".join(str(exc).split())
        raise ConfigError("", f"{path}: invalid TOML: {message}") from None


def _inside_git_work_tree(cwd: Path) -> bool:
    try:
        done = subprocess.run(
            ["git", "-C", str(cwd), "rev-parse", "--is-inside-work-tree"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):  # git missing or hung: not a work tree
        return False
    return done.returncode == 0 and done.stdout.strip() == "true"


def write_example(path: Path, *, force: bool = False) -> Path:
    """Write the commented example config to ``path`` (mode 0600); refuse to overwrite.

    ``path`` may be a directory: the file is then ``farmbot.toml`` in it.
    """
    if path.is_dir():
        path = path / "farmbot.toml"
    if path.exists() and not force:
        raise ConfigError("", f"{path}: already exists; use --force to overwrite")
    content = resources.files("farmbot.config").joinpath(EXAMPLE_NAME).read_bytes()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        path.chmod(0o600)
    except OSError as exc:
        where = exc.filename or path
        # mkdir(exist_ok=True) over a file says "File exists": the file is in the way
        why = "Not a directory" if isinstance(exc, FileExistsError) else exc.strerror or exc
        raise ConfigError("", f"{where}: cannot write: {why}") from None
    return path
