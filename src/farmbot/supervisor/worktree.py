"""Builders' working directories: a git worktree on its own branch, or a plain directory."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from farmbot.errors import CommandError


async def _git(cwd: Path, *args: str) -> tuple[int, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            "git",
            "-C",
            str(cwd),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise CommandError("git is not installed; install it to give builders worktrees") from exc
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode("utf-8", "replace").strip()


async def is_git_repo(path: Path) -> bool:
    """True when ``path`` is inside a git work tree with at least one commit."""
    if shutil.which("git") is None or not path.is_dir():
        return False
    code, _ = await _git(path, "rev-parse", "--verify", "--quiet", "HEAD")
    return code == 0


async def ensure_worktree(repo: Path, path: Path, branch: str) -> None:
    """Make ``path`` a worktree of ``repo`` on ``branch``; reuse one that is already there.

    The branch is created from the repository's HEAD when it does not exist yet, so a
    builder spawned again after a kill continues on its own branch.
    """
    if (path / ".git").exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    await _git(repo, "worktree", "prune")
    code, _ = await _git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
    if code == 0:
        code, out = await _git(repo, "worktree", "add", str(path), branch)
    else:
        code, out = await _git(repo, "worktree", "add", "-b", branch, str(path), "HEAD")
    if code != 0:
        raise CommandError(f"could not create the worktree {path} on branch {branch}: {out}")


async def remove_worktree(repo: Path, path: Path) -> None:
    """Remove a builder's worktree (its branch stays, so no commit is lost)."""
    if not path.exists():
        return
    if (path / ".git").is_file():
        code, out = await _git(repo, "worktree", "remove", "--force", str(path))
        if code != 0:
            raise CommandError(f"could not remove the worktree {path}: {out}")
    else:
        await asyncio.to_thread(shutil.rmtree, path)
