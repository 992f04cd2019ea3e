"""Builders' working directories: a git worktree on its own branch, or a plain directory."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from farmbot.errors import CommandError
from farmbot.hooks_install import SETTINGS, TOKEN_FILE

# What farmbot itself keeps in a worktree (git-ignored through info/exclude): not a loss.
OWN_FILES = frozenset({SETTINGS.as_posix(), TOKEN_FILE.as_posix()})


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


async def worktree_losses(path: Path) -> list[str]:
    """What removing the worktree at ``path`` would lose, for people ("2 untracked files
    (notes.txt, b.py)"); empty when everything in it is committed on a branch.

    Its branch stays, so committed work is safe; uncommitted changes (staged, modified,
    untracked), git-ignored files and folders (a ``.env``, local data, build output: git
    keeps no copy of them either; farmbot's own hook files aside) and commits on a detached
    HEAD that no branch holds are not. A plain directory (a project that is not a git
    repository) loses all of it.
    """
    if not path.exists():
        return []
    if not (path / ".git").exists():
        files = await asyncio.to_thread(_files_in, path)
        return [f"{_count(len(files), 'file')} not in git ({_some(files)})"] if files else []
    # --ignored=matching: an ignored folder is one entry ("node_modules/"), not its files.
    code, out = await _git(
        path, "status", "--porcelain=v1", "--untracked-files=all", "--ignored=matching"
    )
    if code != 0:
        return [f"it could not be checked ({out[:200]})"]
    changed: list[str] = []
    untracked: list[str] = []
    ignored: list[str] = []
    for line in out.splitlines():
        kind, name = line[:2], line[3:]
        if kind == "!!":
            if name not in OWN_FILES:
                ignored.append(name)
        else:
            (untracked if kind == "??" else changed).append(name)
    losses = []
    if changed:
        losses.append(f"{_count(len(changed), 'uncommitted change')} ({_some(changed)})")
    if untracked:
        losses.append(f"{_count(len(untracked), 'untracked file')} ({_some(untracked)})")
    if ignored:
        losses.append(f"{_ignored(ignored)} ({_some(ignored)})")
    code, out = await _git(path, "rev-list", "--count", "HEAD", "--not", "--branches")
    if code == 0 and out.strip().isdigit() and int(out.strip()):
        losses.append(f"{_count(int(out.strip()), 'commit')} on no branch (a detached HEAD)")
    return losses


def _files_in(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if not p.is_dir())


def _ignored(names: list[str]) -> str:
    """ "2 git-ignored files", "1 git-ignored folder", "3 git-ignored files and folders"."""
    folders = sum(name.endswith("/") for name in names)
    if folders == 0:
        return _count(len(names), "git-ignored file")
    if folders == len(names):
        return _count(len(names), "git-ignored folder")
    return f"{len(names)} git-ignored files and folders"


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _some(names: list[str], shown: int = 3) -> str:
    more = f", and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


async def remove_worktree(repo: Path, path: Path) -> None:
    """Remove a builder's worktree (its branch stays; check ``worktree_losses`` first)."""
    if not path.exists():
        return
    if (path / ".git").is_file():
        code, out = await _git(repo, "worktree", "remove", "--force", str(path))
        if code != 0:
            raise CommandError(f"could not remove the worktree {path}: {out}")
    else:
        await asyncio.to_thread(shutil.rmtree, path)
