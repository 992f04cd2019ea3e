"""Read farmbot's TOML configuration into a validated ``Config``.

Every problem raises one ``ConfigError`` naming the dotted key, e.g.
``config: server.port: expected an integer, got string "80a"``. A section is one small
function that reads a ``_Table`` with the converters below and calls ``finish()``, which
reports any key it did not read as unknown. Any string may be written ``env:NAME``.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import string
import subprocess
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TypeVar, overload

from farmbot.config.schema import (
    AgentProfile,
    Config,
    ProjectConfig,
    ServerConfig,
    SupervisorConfig,
    TmuxConfig,
    UserConfig,
    builtin_profiles,
)
from farmbot.errors import ConfigError
from farmbot.models import Role

__all__ = ["Config", "find_config_path", "load_config", "resolve_secret", "write_example"]

T = TypeVar("T")
Conv = Callable[["_Table", str, object], T]  # (table, dotted key, raw TOML value) -> value
Check = Callable[[str, str], str | None]  # (value, how to show it) -> problem or None

EXAMPLE_NAME = "farmbot.example.toml"
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PROMPT_FIELDS = ("n", "project")
_ROLES = ("viewer", "operator", "admin")


# -- the toolkit ------------------------------------------------------------------------


class _Table:
    """A TOML table being read: knows its key path, pops typed keys, reports leftovers."""

    def __init__(
        self, data: Mapping[str, object], path: str, environ: Mapping[str, str], base: Path
    ) -> None:
        self.path = path
        self.environ = environ
        self.base = base  # relative paths are relative to this (the config file's dir)
        self._data = dict(data)
        self._read: list[str] = []

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, problem: str) -> ConfigError:
        return ConfigError(self.key(name), problem)

    @overload
    def get(self, name: str, conv: Conv[T]) -> T | None: ...
    @overload
    def get(self, name: str, conv: Conv[T], default: T) -> T: ...
    def get(self, name: str, conv: Conv[T], default: T | None = None) -> T | None:
        """Pop ``name`` through ``conv``; ``default`` when absent."""
        self._read.append(name)
        if name not in self._data:
            return default
        return conv(self, self.key(name), self._data.pop(name))

    def need(self, name: str, conv: Conv[T], why: str = "") -> T:
        """Pop a required key; its absence is an error (``why`` explains, if given)."""
        self._read.append(name)
        if name not in self._data:
            raise self.error(name, f"missing{why}")
        return conv(self, self.key(name), self._data.pop(name))

    def table(self, name: str) -> _Table:
        """Pop a sub-table; an empty one when absent."""
        return self.get(name, as_table, _Table({}, self.key(name), self.environ, self.base))

    def items(self, conv: Conv[T]) -> dict[str, T]:
        """Pop every key (for tables whose keys are names, like ``[agents.<name>]``)."""
        names = list(self._data)
        self._read.extend(names)
        return {n: conv(self, self.key(n), self._data.pop(n)) for n in names}

    def finish(self) -> None:
        """Fail on the first key nobody read."""
        for name in self._data:
            close = _closest(name, self._read)
            hint = f" (did you mean '{close}'?)" if close else ""
            raise self.error(name, f"unknown key{hint}")


def _closest(word: str, options: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(dict.fromkeys(options)), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _describe(raw: object) -> str:
    if isinstance(raw, bool):
        return f"boolean {str(raw).lower()}"
    if isinstance(raw, int):
        return f"integer {raw}"
    if isinstance(raw, float):
        return f"float {raw}"
    if isinstance(raw, str):
        return "string " + json.dumps(
            raw if len(raw) <= 40 else raw[:37] + "...", ensure_ascii=False
        )
    if isinstance(raw, list):
        return "array"
    if isinstance(raw, dict):
        return "table"
    return type(raw).__name__  # datetime, date, time


def _type_error(key: str, expected: str, raw: object) -> ConfigError:
    return ConfigError(key, f"expected {expected}, got {_describe(raw)}")


def _from_env(value: str, key: str, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """Resolve ``env:NAME``; return (value, NAME or None for a literal)."""
    if not value.startswith("env:"):
        return value, None
    name = value[4:]
    if not _ENV_NAME.fullmatch(name):
        raise ConfigError(key, f'"env:NAME" needs a variable name, got "{value}"')
    if name not in environ:
        raise ConfigError(key, f"environment variable {name} is not set")
    return environ[name], name


def resolve_secret(value: object, key: str, environ: Mapping[str, str]) -> str:
    """Resolve a secret, which must be written ``env:NAME``; never echo its value."""
    if not isinstance(value, str):
        kind = _describe(value).split(" ")[0]  # the type only: the value may be a secret
        raise ConfigError(key, f'expected a string "env:NAME", got {kind}')
    if not value.startswith("env:"):
        raise ConfigError(key, 'secrets are never written in the file; use "env:NAME"')
    secret, name = _from_env(value, key, environ)
    if not secret:
        raise ConfigError(key, f"environment variable {name} is empty")
    return secret


def text(check: Check | None = None) -> Conv[str]:
    """A string, ``env:NAME`` resolved; ``check`` gets the value and a safe way to show it."""

    def conv(t: _Table, key: str, raw: object) -> str:
        if not isinstance(raw, str):
            raise _type_error(key, "a string", raw)
        value, var = _from_env(raw, key, t.environ)
        shown = f"'{value}'" if var is None else f"${var}"  # never echo an env value
        problem = check(value, shown) if check else None
        if problem:
            raise ConfigError(key, problem)
        return value

    return conv


def secret(t: _Table, key: str, raw: object) -> str:
    """A secret: ``env:NAME`` only."""
    return resolve_secret(raw, key, t.environ)


def integer(minimum: int | None = None, maximum: int | None = None) -> Conv[int]:
    """An integer (not a boolean) within bounds."""

    def conv(t: _Table, key: str, raw: object) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise _type_error(key, "an integer", raw)
        if maximum is not None and minimum is not None and not minimum <= raw <= maximum:
            raise ConfigError(key, f"must be between {minimum} and {maximum}, got {raw}")
        if minimum is not None and raw < minimum:
            raise ConfigError(key, f"must be at least {minimum}, got {raw}")
        return raw

    return conv


def number(t: _Table, key: str, raw: object) -> float:
    """A number (integer or float) greater than zero."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise _type_error(key, "a number", raw)
    if not raw > 0:
        raise ConfigError(key, f"must be greater than 0, got {raw}")
    return float(raw)


def boolean(t: _Table, key: str, raw: object) -> bool:
    """``true`` or ``false``."""
    if not isinstance(raw, bool):
        raise _type_error(key, "a boolean (true or false)", raw)
    return raw


def fs_path(*, directory: bool = False) -> Conv[Path]:
    """A path, ``~`` expanded, relative to the config file's directory."""

    def conv(t: _Table, key: str, raw: object) -> Path:
        value = text(_nonempty)(t, key, raw)
        resolved = (t.base / Path(value).expanduser()).resolve()
        shown = str(resolved) if not str(raw).startswith("env:") else f"${str(raw)[4:]}"
        if directory and not resolved.exists():
            raise ConfigError(key, f"{shown}: no such directory")
        if directory and not resolved.is_dir():
            raise ConfigError(key, f"{shown}: not a directory")
        return resolved

    return conv


def as_table(t: _Table, key: str, raw: object) -> _Table:
    """A sub-table, to be read with its own ``get``/``finish``."""
    if not isinstance(raw, dict):
        raise _type_error(key, "a table", raw)
    return _Table(raw, key, t.environ, t.base)


def as_tables(t: _Table, key: str, raw: object) -> list[_Table]:
    """An array of tables (``[[name]]``); items are keyed ``name[0]``, ``name[1]``, ..."""
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise _type_error(key, "an array of tables ([[...]])", raw)
    return [_Table(item, f"{key}[{i}]", t.environ, t.base) for i, item in enumerate(raw)]


# -- checks -----------------------------------------------------------------------------


def _nonempty(value: str, shown: str) -> str | None:
    return None if value else "must not be empty"


def _name(value: str, shown: str) -> str | None:
    if _NAME.fullmatch(value):
        return None
    return f"invalid name {shown}: use 1-32 of a-z, 0-9, '-' and '_', starting alphanumeric"


def _socket(value: str, shown: str) -> str | None:
    if re.fullmatch(r"[^/\s]+", value):
        return None
    return "must be a non-empty name without '/' or whitespace"


def _regex(value: str, shown: str) -> str | None:
    try:
        re.compile(value)
    except re.error as exc:
        return f"invalid regular expression: {exc}"
    return None


def _prompt(value: str, shown: str) -> str | None:
    allowed = " and ".join("{" + f + "}" for f in _PROMPT_FIELDS)
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
        for field in fields:
            if field not in _PROMPT_FIELDS:
                return f"unknown placeholder {{{field}}}; only {allowed} may be used"
        value.format(n=42, project="demo")  # catches bad format specs and nested fields
    except (KeyError, IndexError, AttributeError) as exc:
        return f"unknown placeholder {exc}; only {allowed} may be used"
    except ValueError as exc:
        return f"malformed braces: {exc} (write {{{{ and }}}} for literal braces)"
    return None


def _role(value: str, shown: str) -> str | None:
    return None if value in _ROLES else f"unknown role {shown} (use viewer, operator or admin)"


def _profile_ref(agents: Mapping[str, AgentProfile]) -> Check:
    def check(value: str, shown: str) -> str | None:
        if value in agents:
            return None
        close = _closest(value, agents)
        hint = f"; did you mean '{close}'?" if close else ""
        return f"unknown agent profile {shown} (known: {', '.join(sorted(agents))}){hint}"

    return check


# -- sections ---------------------------------------------------------------------------


def _server(t: _Table) -> ServerConfig:
    d = ServerConfig()
    server = ServerConfig(
        host=t.get("host", text(), d.host),
        port=t.get("port", integer(1, 65535), d.port),
        state_dir=t.get("state_dir", fs_path(), d.state_dir),
    )
    t.finish()
    return server


def _tmux(t: _Table) -> TmuxConfig:
    tmux = TmuxConfig(socket=t.get("socket", text(_socket), TmuxConfig().socket))
    t.finish()
    return tmux


def _supervisor(t: _Table, agents: Mapping[str, AgentProfile]) -> SupervisorConfig:
    d = SupervisorConfig()
    supervisor = SupervisorConfig(
        default_agent=t.get("default_agent", text(_profile_ref(agents)), d.default_agent),
        max_builders=t.get("max_builders", integer(1), d.max_builders),
        tick_seconds=t.get("tick_seconds", number, d.tick_seconds),
        ready_timeout=t.get("ready_timeout", number, d.ready_timeout),
        prompt_max_bytes=t.get("prompt_max_bytes", integer(64), d.prompt_max_bytes),
    )
    t.finish()
    return supervisor


def _agents(t: _Table) -> dict[str, AgentProfile]:
    profiles = builtin_profiles()
    for name, sub in t.items(as_table).items():
        problem = _name(name, f"'{name}'")
        if problem:
            raise ConfigError(sub.path, problem)
        profiles[name] = _profile(name, sub, profiles.get(name))
    return profiles


def _profile(name: str, t: _Table, base: AgentProfile | None) -> AgentProfile:
    """Merge ``[agents.<name>]`` over the builtin profile of that name, if any."""
    if base is None:
        command = t.need("command", text(_nonempty), "; a new agent profile needs a command")
        base = AgentProfile(name=name, command=command)
    env = t.get("env", as_table)
    profile = replace(
        base,
        command=t.get("command", text(_nonempty), base.command),
        builder_prompt=t.get("builder_prompt", text(_prompt), base.builder_prompt),
        idle_pattern=t.get("idle_pattern", text(_regex), base.idle_pattern) or None,
        busy_pattern=t.get("busy_pattern", text(_regex), base.busy_pattern) or None,
        waiting_pattern=t.get("waiting_pattern", text(_regex), base.waiting_pattern) or None,
        env=base.env if env is None else _env_table(env),
    )
    t.finish()
    return profile


def _env_table(t: _Table) -> dict[str, str]:
    env = t.items(text())
    for var in env:
        if not _ENV_NAME.fullmatch(var):
            raise t.error(var, "not a valid environment variable name")
    return env


def _projects(tables: list[_Table], agents: Mapping[str, AgentProfile]) -> list[ProjectConfig]:
    projects: list[ProjectConfig] = []
    first: dict[str, str] = {}
    for t in tables:
        name = t.need("name", text(_name))
        if name in first:
            raise t.error("name", f"duplicate project name '{name}' (also {first[name]})")
        first[name] = t.key("name")
        project = ProjectConfig(
            name=name,
            path=t.need("path", fs_path(directory=True)),
            verify=t.get("verify", text()) or None,
            agent=t.get("agent", text(_profile_ref(agents))),
            max_builders=t.get("max_builders", integer(1)),
        )
        t.finish()
        projects.append(project)
    return projects


def _users(t: _Table) -> list[UserConfig]:
    users: list[UserConfig] = []
    claimed: dict[tuple[str, object], str] = {}  # (platform, identity) -> user key
    for name, sub in t.items(as_table).items():
        user = UserConfig(
            name=name,
            role=Role.parse(sub.need("role", text(_role))),
            telegram=sub.get("telegram", integer(1)),
            slack=sub.get("slack", text(_nonempty)),
            discord=sub.get("discord", integer(1)),
            web=sub.get("web", boolean, False),
        )
        sub.finish()
        identities = {"telegram": user.telegram, "slack": user.slack, "discord": user.discord}
        if user.web:
            identities["web"] = True  # the web console logs in as exactly one person
        for platform, identity in identities.items():
            if identity is None:
                continue
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
    root = _Table(data, "", environ, source.parent if source is not None else cwd)
    server = _server(root.table("server"))
    tmux = _tmux(root.table("tmux"))
    agents = _agents(root.table("agents"))
    supervisor = _supervisor(root.table("supervisor"), agents)
    projects = _projects(root.get("projects", as_tables, []), agents)
    users = _users(root.table("users"))
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
        source=source,
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
    """Write the commented example config to ``path`` (mode 0600); refuse to overwrite."""
    if path.exists() and not force:
        raise ConfigError("", f"{path}: already exists; use --force to overwrite")
    content = resources.files("farmbot.config").joinpath(EXAMPLE_NAME).read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    path.chmod(0o600)
    return path
