"""``[limits]``: how many commands of each kind one person may run a minute.

::

    [limits]
    spawns_per_minute = 10       # /spawn (and buttons that spawn)
    sends_per_minute = 30        # /send (and buttons that send)
    commands_per_minute = 60     # every other command, typed or a button
    exempt = ["cron"]            # not limited: "cron" jobs, the local "console"

A limit of 0 turns that kind's limit off. A person is one ``[users.<name>]`` on every
platform at once; cron jobs count against the user they run as, and the web console and
``farmbot cmd`` against the user with ``web = true`` (or "local"), unless exempt.
"""

from __future__ import annotations

from dataclasses import dataclass

from farmbot.config import reader as tk
from farmbot.errors import ConfigError

ORIGINS = ("cron", "console")  # what ``exempt`` may name
MAX_PER_MINUTE = 100_000


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """``[limits]``: how many spawns, prompts and commands a person may send a minute."""

    spawns_per_minute: int = 10
    sends_per_minute: int = 30
    commands_per_minute: int = 60
    exempt: tuple[str, ...] = ()  # of ORIGINS

    def per_minute(self, kind: str) -> int:
        """The limit of a kind ("spawn", "send", "command"); 0 is no limit."""
        return {
            "spawn": self.spawns_per_minute,
            "send": self.sends_per_minute,
        }.get(kind, self.commands_per_minute)


def parse_limits(t: tk.Table) -> LimitsConfig:
    """Read ``[limits]``; every problem names its key."""
    d = LimitsConfig()
    count = tk.integer(0, MAX_PER_MINUTE)
    limits = LimitsConfig(
        spawns_per_minute=t.get("spawns_per_minute", count, d.spawns_per_minute),
        sends_per_minute=t.get("sends_per_minute", count, d.sends_per_minute),
        commands_per_minute=t.get("commands_per_minute", count, d.commands_per_minute),
        exempt=t.get("exempt", _origins, d.exempt),
    )
    t.finish()
    return limits


def _origins(t: tk.Table, key: str, raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise tk.type_error(key, 'an array like ["cron", "console"]', raw)
    check = tk.one_of(ORIGINS)
    for item in raw:
        problem = check(item, f"'{item}'")
        if problem:
            raise ConfigError(key, problem)
    return tuple(dict.fromkeys(raw))
