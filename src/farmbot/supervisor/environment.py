"""What an agent's environment holds: built on purpose, never the daemon's own.

The daemon's environment carries its secrets (chat tokens, signing secrets, webhook
headers: ``env:NAME`` in the config) and the way to its state directory. None of it
reaches an agent or the tmux server the agents run on. An agent gets:

- the variables of ``BASE`` (and every ``LC_*``) that the daemon has -- what programs need
  to find things and speak the right language;
- the names the config lists in ``[supervisor] pass_env`` (an API key kept in the daemon's
  environment, a proxy), when the daemon has them;
- who it is (``FARMBOT_AGENT``, ``_PROJECT``, ``_KIND``, ``_NUMBER``, ``_PROFILE``,
  ``_BRANCH``, ``_WORKDIR``) and what its hooks need (``FARMBOT_URL``,
  ``FARMBOT_HOOK_TOKEN``, ``FARMBOT_SPOOL_DIR``) -- never ``FARMBOT_STATE_DIR``;
- its profile's ``env`` (``env:NAME`` / ``vault:NAME`` values resolved), which wins.

The tmux server itself is started with ``BASE`` only (``server_environment``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

BASE = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TERM",
    "TMPDIR",
)
LOCALE_PREFIX = "LC_"
# tmux finds its socket through TMUX_TMPDIR: the client that starts the server needs it.
SERVER_EXTRA = ("TMUX_TMPDIR",)
# Kept in the tmux session's own environment (what `farmbot serve` reads back to adopt a
# session after a restart); everything else is given to the pane's process only.
IDENTITY = (
    "FARMBOT_AGENT",
    "FARMBOT_PROJECT",
    "FARMBOT_KIND",
    "FARMBOT_NUMBER",
    "FARMBOT_PROFILE",
    "FARMBOT_BRANCH",
    "FARMBOT_WORKDIR",
)


def base_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The allowlisted variables of ``environ``: ``BASE`` and ``LC_*``."""
    return {
        name: value
        for name, value in environ.items()
        if name in BASE or name.startswith(LOCALE_PREFIX)
    }


def server_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What the tmux server is started with: the base, and where tmux keeps its socket."""
    env = base_environment(environ)
    env.update({name: environ[name] for name in SERVER_EXTRA if name in environ})
    return env


def agent_environment(
    environ: Mapping[str, str],
    *,
    pass_env: Iterable[str] = (),
    farmbot: Mapping[str, str],
    profile: Mapping[str, str],
) -> dict[str, str]:
    """An agent's whole environment (see the module docstring for what and why)."""
    env = base_environment(environ)
    env.update({name: environ[name] for name in pass_env if name in environ})
    env.update(farmbot)
    env.update(profile)
    return env
