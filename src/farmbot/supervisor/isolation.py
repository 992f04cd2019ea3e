"""Agents as another Unix user (a profile's ``run_as``): real isolation from farmbot.

An agent running as farmbot's own user can read every file farmbot can (the local key,
the vault key, the database) and reach its tmux server; an environment without secrets
is hygiene, not a boundary. ``run_as = "farmbot-agent"`` puts the boundary in the kernel:

- the pane runs ``runuser -u USER`` (farmbot as root) or ``sudo -n -u USER`` (otherwise:
  a sudoers rule lets farmbot's user run anything as USER without a password and keep
  the variables it names, ``NOPASSWD:SETENV:``), so the agent's processes are USER's;
- what it works in is shared with USER's group (``share``): group-owned, group-writable,
  new files inheriting the group (setgid directories), nothing for others -- the builder's
  worktree, the project's ``.git`` (``core.sharedRepository = group``) for its commits;
  farmbot's user must be in that group to chgrp (``usermod -aG``), and the agent works
  under ``umask 007`` so what it writes stays the group's;
- its spool directory is its own, group-shared; the state directory above it is 0711
  (passable, not listable) and every file in it stays 0600.

The agent then cannot read farmbot's files, connect to its tmux server (its socket lives
in a 0700 directory of farmbot's user) or read farmbot's process environment.
"""

from __future__ import annotations

import os
import pwd
import shlex
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from farmbot.errors import CommandError

UMASK = "007"
SHARED_DIR = 0o2770  # group rwx, setgid: new files keep the group
TRAVERSE = 0o711


@dataclass(frozen=True, slots=True)
class RunAs:
    """The Unix user an agent profile runs as."""

    user: str
    uid: int
    gid: int
    home: str


def lookup(user: str) -> RunAs:
    """The Unix user an agent runs as; ``CommandError`` when there is none."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise CommandError(f"run_as: there is no Unix user {user!r} on this machine") from None
    return RunAs(user, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def wrap(command: str, run_as: RunAs, keep: list[str], *, root: bool) -> str:
    """``command`` as a shell command that runs it as ``run_as``, keeping the variables
    named in ``keep`` (the agent's environment) and a group-friendly umask."""
    inner = shlex.quote(f"umask {UMASK}; {command}")
    if root:  # runuser keeps the environment; it sets HOME, SHELL, USER, LOGNAME for USER
        return f"exec runuser -u {shlex.quote(run_as.user)} -- /bin/sh -c {inner}"
    names = ",".join(name for name in keep if name not in ("HOME", "USER", "LOGNAME"))
    return (
        f"exec sudo -n -H -u {shlex.quote(run_as.user)} --preserve-env={names} "
        f"-- /bin/sh -c {inner}"
    )


def git_environment(workdir: Path) -> dict[str, str]:
    """Let git, run as the agent's user, work in a checkout farmbot's user owns."""
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "safe.directory",
        "GIT_CONFIG_VALUE_0": str(workdir),
    }


def share(path: Path, gid: int) -> None:
    """Give group ``gid`` the tree at ``path`` (rw, setgid directories), others nothing."""
    try:
        for item in [path, *path.rglob("*")]:
            if item.is_symlink():
                continue
            os.chown(item, -1, gid)
            mode = stat.S_IMODE(item.stat().st_mode)
            if item.is_dir():
                os.chmod(item, SHARED_DIR)
            else:
                group = ((mode & 0o700) >> 3) | 0o060  # the owner's bits, and rw
                os.chmod(item, (mode & 0o700) | group)
    except OSError as exc:
        raise CommandError(
            f"run_as: could not share {path} with group {gid} ({exc}); farmbot's user must "
            "be a member of the agent user's group (README: Security)"
        ) from exc


def share_repository(workdir: Path, gid: int) -> None:
    """Share the git repository of ``workdir`` (its common ``.git``) with group ``gid``,
    so commits made as the agent's user can write objects and refs."""
    found = subprocess.run(
        ["git", "-C", str(workdir), "rev-parse", "--path-format=absolute", "--git-common-dir"],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        return
    common = Path(found.stdout.strip())
    subprocess.run(
        ["git", "--git-dir", str(common), "config", "core.sharedRepository", "group"],
        capture_output=True,
        check=False,
    )
    share(common, gid)


def traversable(*paths: Path) -> None:
    """Let others pass through ``paths`` (to what they may open by name), never list."""
    for path in paths:
        if path.is_dir() and stat.S_IMODE(path.stat().st_mode) != TRAVERSE:
            os.chmod(path, TRAVERSE)


def spool_dir(root: Path, agent_id: str, gid: int) -> Path:
    """The agent's own spool directory, group-shared (farmbot replays it at start)."""
    root.mkdir(mode=TRAVERSE, parents=True, exist_ok=True)
    traversable(root)
    path = root / agent_id
    path.mkdir(exist_ok=True)
    os.chown(path, -1, gid)
    os.chmod(path, SHARED_DIR)
    return path
