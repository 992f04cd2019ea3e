"""A small toolkit for reading TOML tables into typed values with key-naming errors.

A ``Table`` knows its dotted key path, pops typed keys through converters (``text``,
``integer``, ``fs_path``, ...) and reports any key left unread as unknown, with a
did-you-mean hint. Every string may be written ``env:NAME`` to read the environment, or
``vault:NAME`` to read the vault in the state directory (``Table.vault`` looks it up).
"""

from __future__ import annotations

import difflib
import json
import re
import string
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, overload

from farmbot.errors import ConfigError, FarmbotError

if TYPE_CHECKING:  # schema imports config.alerts, which imports this module
    from farmbot.config.schema import AgentProfile

T = TypeVar("T")
SecretLookup = Callable[[str], str]  # vault secret name -> value; raises FarmbotError
Conv = Callable[["Table", str, object], T]  # (table, dotted key, raw TOML value) -> value
Check = Callable[[str, str], str | None]  # (value, how to show it) -> problem or None

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HTTP_URL = re.compile(r"https?://[^\s/]+(/\S*)?")
PROMPT_FIELDS = ("n", "project")
TASK_PROMPT_FIELDS = ("id", "title", "body", "project", "branch")
ROLES = ("viewer", "operator", "admin")
SEVERITIES = ("info", "warning", "critical")


# -- the toolkit ------------------------------------------------------------------------


class Table:
    """A TOML table being read: knows its key path, pops typed keys, reports leftovers."""

    def __init__(
        self,
        data: Mapping[str, object],
        path: str,
        environ: Mapping[str, str],
        base: Path,
        vault: SecretLookup | None = None,
    ) -> None:
        self.path = path
        self.environ = environ
        self.base = base  # relative paths are relative to this (the config file's dir)
        self.vault = vault  # None until server.state_dir (where the vault lives) is known
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

    def peek(self, name: str, conv: Conv[T], default: T) -> T:
        """``name`` through ``conv`` without taking it (``get`` or ``need`` still must)."""
        if name not in self._data:
            return default
        return conv(self, self.key(name), self._data[name])

    def table(self, name: str) -> Table:
        """Pop a sub-table; an empty one when absent."""
        empty = Table({}, self.key(name), self.environ, self.base, self.vault)
        return self.get(name, as_table, empty)

    def items(self, conv: Conv[T]) -> dict[str, T]:
        """Pop every key (for tables whose keys are names, like ``[agents.<name>]``)."""
        names = list(self._data)
        self._read.extend(names)
        return {n: conv(self, self.key(n), self._data.pop(n)) for n in names}

    def finish(self) -> None:
        """Fail on the first key nobody read."""
        for name in self._data:
            close = closest(name, self._read)
            hint = f" (did you mean '{close}'?)" if close else ""
            raise self.error(name, f"unknown key{hint}")


def closest(word: str, options: Iterable[str]) -> str | None:
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


def type_error(key: str, expected: str, raw: object, *, secret: bool = False) -> ConfigError:
    """``expected ..., got <the value>``; only the value's type when it may be a ``secret``."""
    got = _kind(raw) if secret else _describe(raw)
    return ConfigError(key, f"expected {expected}, got {got}")


def _kind(raw: object) -> str:
    """The type of a TOML value, in words, without the value."""
    return _describe(raw).split(" ")[0]


def is_reference(value: object) -> bool:
    """Whether a raw value is ``env:NAME`` or ``vault:NAME`` rather than a literal."""
    return isinstance(value, str) and value.startswith(("env:", "vault:"))


def source_of(value: object) -> str:
    """How to name where a reference's value came from: ``$NAME`` or ``vault:NAME``."""
    text = str(value)
    return f"${text[4:]}" if text.startswith("env:") else text


def _from_env(
    value: str, key: str, environ: Mapping[str, str], vault: SecretLookup | None = None
) -> tuple[str, str | None]:
    """Resolve ``env:NAME`` or ``vault:NAME``; return (value, how to show its source)."""
    if value.startswith("vault:"):
        name = value[6:]
        if not name:
            raise ConfigError(key, f'"vault:NAME" needs a secret name, got "{value}"')
        if vault is None:
            raise ConfigError(key, '"vault:" cannot be used here (the vault is in the state_dir)')
        try:
            return vault(name), value
        except FarmbotError as exc:  # VaultError: names the secret, never a value
            raise ConfigError(key, str(exc)) from None
    if not value.startswith("env:"):
        return value, None
    name = value[4:]
    if not ENV_NAME.fullmatch(name):
        raise ConfigError(key, f'"env:NAME" needs a variable name, got "{value}"')
    if name not in environ:
        raise ConfigError(key, f"environment variable {name} is not set")
    return environ[name], f"${name}"


def resolve_secret(
    value: object, key: str, environ: Mapping[str, str], vault: SecretLookup | None = None
) -> str:
    """Resolve a secret, written ``env:NAME`` or ``vault:NAME``; never echo its value."""
    if not isinstance(value, str):
        raise type_error(key, 'a string "env:NAME" or "vault:NAME"', value, secret=True)
    if not is_reference(value):
        raise ConfigError(
            key, 'secrets are never written in the file; use "env:NAME" or "vault:NAME"'
        )
    secret, _ = _from_env(value, key, environ, vault)
    if not secret:  # the vault stores no empty values
        raise ConfigError(key, f"environment variable {value[4:]} is empty")
    return secret


def text(check: Check | None = None) -> Conv[str]:
    """A string, ``env:NAME`` resolved; ``check`` gets the value and a safe way to show it."""

    def conv(t: Table, key: str, raw: object) -> str:
        if not isinstance(raw, str):
            raise type_error(key, "a string", raw)
        value, source = _from_env(raw, key, t.environ, t.vault)
        shown = f"'{value}'" if source is None else source  # never echo a referenced value
        problem = check(value, shown) if check else None
        if problem:
            raise ConfigError(key, problem)
        return value

    return conv


def secret(t: Table, key: str, raw: object) -> str:
    """A secret: ``env:NAME`` or ``vault:NAME`` only."""
    return resolve_secret(raw, key, t.environ, t.vault)


def integer(minimum: int | None = None, maximum: int | None = None) -> Conv[int]:
    """An integer (not a boolean) within bounds."""

    def conv(t: Table, key: str, raw: object) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise type_error(key, "an integer", raw)
        if maximum is not None and minimum is not None and not minimum <= raw <= maximum:
            raise ConfigError(key, f"must be between {minimum} and {maximum}, got {raw}")
        if minimum is not None and raw < minimum:
            raise ConfigError(key, f"must be at least {minimum}, got {raw}")
        return raw

    return conv


def number(t: Table, key: str, raw: object) -> float:
    """A number (integer or float) greater than zero."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise type_error(key, "a number", raw)
    if not raw > 0:
        raise ConfigError(key, f"must be greater than 0, got {raw}")
    return float(raw)


def zero_or_more(t: Table, key: str, raw: object) -> float:
    """A number (integer or float) of 0 or more; 0 usually means "off"."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise type_error(key, "a number", raw)
    if raw < 0:
        raise ConfigError(key, f"must be 0 or more, got {raw}")
    return float(raw)


def boolean(t: Table, key: str, raw: object) -> bool:
    """``true`` or ``false``."""
    if not isinstance(raw, bool):
        raise type_error(key, "a boolean (true or false)", raw)
    return raw


def fs_path(*, directory: bool = False) -> Conv[Path]:
    """A path, ``~`` expanded, relative to the config file's directory."""

    def conv(t: Table, key: str, raw: object) -> Path:
        value = text(nonempty)(t, key, raw)
        try:
            resolved = (t.base / Path(value).expanduser()).resolve()
            missing = directory and not resolved.exists()
            not_a_directory = directory and not missing and not resolved.is_dir()
        except RuntimeError as exc:  # ~nosuchuser, or no home directory at all
            problem = f"cannot expand ~ in {_shown(raw, value)}: no such user or home directory"
            raise ConfigError(key, problem) from exc
        except (ValueError, OSError) as exc:  # a NUL byte, a name too long, no permission
            why = exc.strerror if isinstance(exc, OSError) else str(exc)  # never the path
            raise ConfigError(key, f"not a usable path {_shown(raw, value)}: {why}") from exc
        shown = source_of(raw) if is_reference(raw) else str(resolved)
        if missing:
            raise ConfigError(key, f"{shown}: no such directory")
        if not_a_directory:
            raise ConfigError(key, f"{shown}: not a directory")
        return resolved

    return conv


def _shown(raw: object, value: str) -> str:
    """A path as written, quoted and escaped; ``$NAME`` or ``vault:NAME`` for a reference."""
    return source_of(raw) if is_reference(raw) else repr(value)


def strings(t: Table, key: str, raw: object) -> tuple[str, ...]:
    """A non-empty array of non-empty strings."""
    if not isinstance(raw, list) or not raw or not all(isinstance(x, str) and x for x in raw):
        raise type_error(key, "a non-empty array of strings", raw)
    return tuple(raw)


def cron_expression(value: str, shown: str) -> str | None:
    """Five crontab fields, as apscheduler reads them."""
    from apscheduler.triggers.cron import CronTrigger

    if len(value.split()) != 5:
        return f"expected five crontab fields (minute hour day month weekday), got {shown}"
    try:
        CronTrigger.from_crontab(value, timezone="UTC")
    except ValueError as exc:
        return f"invalid cron expression {shown}: {exc}"
    return None


def as_table(t: Table, key: str, raw: object) -> Table:
    """A sub-table, to be read with its own ``get``/``finish``."""
    if not isinstance(raw, dict):
        raise type_error(key, "a table", raw)
    return Table(raw, key, t.environ, t.base, t.vault)


def as_tables(t: Table, key: str, raw: object) -> list[Table]:
    """An array of tables (``[[name]]``); items are keyed ``name[0]``, ``name[1]``, ..."""
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise type_error(key, "an array of tables ([[...]])", raw)
    return [Table(item, f"{key}[{i}]", t.environ, t.base, t.vault) for i, item in enumerate(raw)]


# -- checks -----------------------------------------------------------------------------


def nonempty(value: str, shown: str) -> str | None:
    return None if value else "must not be empty"


def project_name(value: str, shown: str) -> str | None:
    if NAME.fullmatch(value):
        return None
    return f"invalid name {shown}: use 1-32 of a-z, 0-9, '-' and '_', starting alphanumeric"


def socket_name(value: str, shown: str) -> str | None:
    if re.fullmatch(r"[^/\s]+", value):
        return None
    return "must be a non-empty name without '/' or whitespace"


def regex(value: str, shown: str) -> str | None:
    try:
        re.compile(value)
    except (re.error, OverflowError) as exc:  # a{4294967296} overflows
        return f"invalid regular expression: {exc}"
    except RecursionError:
        return "invalid regular expression: nested too deeply"
    return None


def severity(value: str, shown: str) -> str | None:
    """An alert severity: info, warning or critical."""
    if value in SEVERITIES:
        return None
    return f"unknown severity {shown} (use info, warning or critical)"


def http_url(value: str, shown: str) -> str | None:
    """An http:// or https:// URL with a host."""
    if _HTTP_URL.fullmatch(value):
        return None
    # The value is never echoed: URLs often carry a token.
    return "must be an http:// or https:// URL"


def prompt_template(value: str, shown: str) -> str | None:
    """A builder prompt: {n} and {project}."""
    return template_with(PROMPT_FIELDS)(value, shown)


def template_with(names: tuple[str, ...]) -> Check:
    """A ``str.format`` template that may use exactly the placeholders ``names``."""
    shown_names = ["{" + f + "}" for f in names]
    allowed = " and ".join(
        [", ".join(shown_names[:-1]), shown_names[-1]] if len(names) > 1 else shown_names
    )
    sample = dict.fromkeys(names, "x")

    def check(value: str, shown: str) -> str | None:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
            for field in fields:
                if field not in names:
                    return f"unknown placeholder {{{field}}}; only {allowed} may be used"
            value.format(**sample)  # catches bad format specs and nested fields
        except (KeyError, IndexError, AttributeError) as exc:
            return f"unknown placeholder {exc}; only {allowed} may be used"
        except ValueError as exc:
            return f"malformed braces: {exc} (write {{{{ and }}}} for literal braces)"
        return None

    return check


def one_of(options: tuple[str, ...]) -> Check:
    def check(value: str, shown: str) -> str | None:
        if value in options:
            return None
        close = closest(value, options)
        hint = f"; did you mean '{close}'?" if close else ""
        return f"unknown value {shown} (use one of: {', '.join(options)}){hint}"

    return check


def branch_name(value: str, shown: str) -> str | None:
    """A plausible git branch name (git itself has the last word)."""
    if re.fullmatch(r"[^\s~^:?*\[\\]+", value) and not value.startswith(("-", "/")):
        if ".." not in value and not value.endswith((".lock", "/", ".")):
            return None
    return f"invalid branch name {shown}"


def role_name(value: str, shown: str) -> str | None:
    return None if value in ROLES else f"unknown role {shown} (use viewer, operator or admin)"


def profile_ref(agents: Mapping[str, AgentProfile]) -> Check:
    def check(value: str, shown: str) -> str | None:
        if value in agents:
            return None
        close = closest(value, agents)
        hint = f"; did you mean '{close}'?" if close else ""
        return f"unknown agent profile {shown} (known: {', '.join(sorted(agents))}){hint}"

    return check
