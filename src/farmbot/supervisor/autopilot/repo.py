"""The autopilot's git: every git call it makes, off the event loop, each with a timeout.

Reads (tips, ancestry, commits, diffstats, diffs, where a branch is checked out) and the
few writes a builder's worktree needs (switching it to a task's branch). Merging and
rebasing onto a base branch are in landing.py, on top of these.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

GIT_TIMEOUT = 60.0  # seconds for one git command
MAX_OUTPUT = 4 * 1024 * 1024  # bytes of a diff kept (the rest is cut, and says so)
IDENTITY = {  # farmbot's own commits (merges it makes when landing)
    "GIT_AUTHOR_NAME": "farmbot",
    "GIT_AUTHOR_EMAIL": "farmbot@localhost",
    "GIT_COMMITTER_NAME": "farmbot",
    "GIT_COMMITTER_EMAIL": "farmbot@localhost",
}


class GitError(Exception):
    """A git command could not run, failed where it must not, or timed out."""


@dataclass(frozen=True, slots=True)
class Done:
    """How a git command ended: its exit code and output."""

    code: int
    out: str

    @property
    def ok(self) -> bool:
        return self.code == 0


async def git(
    cwd: Path,
    *args: str,
    seconds: float = GIT_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> Done:
    """Run ``git -C cwd args...``; its exit status and output (stdout and stderr)."""
    environ = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **(env or {})}
    environ.pop("GIT_DIR", None)  # a hook's GIT_DIR must not redirect us
    try:
        proc = await asyncio.create_subprocess_exec(
            "git", "-C", str(cwd), *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=environ,
        )  # fmt: skip
    except OSError as exc:
        raise GitError(f"git could not run: {exc}") from exc
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), seconds)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise GitError(f"git {' '.join(args[:2])} took longer than {seconds:.0f} s") from None
    text = out[:MAX_OUTPUT].decode("utf-8", "replace")
    if len(out) > MAX_OUTPUT:
        text += f"\n… ({len(out) - MAX_OUTPUT} more bytes not shown)"
    return Done(proc.returncode or 0, text)


async def must(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run git; its output, stripped; ``GitError`` naming the command when it fails."""
    done = await git(cwd, *args, env=env)
    if not done.ok:
        raise GitError(f"git {' '.join(args)} failed: {done.out.strip()[-500:]}")
    return done.out.strip()


async def current_branch(repo: Path) -> str | None:
    """The branch checked out in ``repo`` (None when detached)."""
    done = await git(repo, "symbolic-ref", "--short", "-q", "HEAD")
    return done.out.strip() or None if done.ok else None


async def tip(repo: Path, ref: str) -> str | None:
    """The commit ``ref`` names, or None."""
    done = await git(repo, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}")
    return done.out.strip() if done.ok and done.out.strip() else None


async def branch_tip(repo: Path, branch: str) -> str | None:
    return await tip(repo, f"refs/heads/{branch}")


async def is_ancestor(repo: Path, older: str, newer: str) -> bool:
    return (await git(repo, "merge-base", "--is-ancestor", older, newer)).ok


async def commits(repo: Path, base: str, head: str, limit: int = 200) -> list[tuple[str, str]]:
    """(sha, subject) of the commits on ``head`` that ``base`` lacks, oldest first."""
    out = await must(
        repo, "log", "--reverse", f"--max-count={limit}", "--format=%H%x09%s", f"{base}..{head}"
    )
    found = []
    for line in out.splitlines():
        sha, _, subject = line.partition("\t")
        found.append((sha, subject))
    return found


async def diffstat(repo: Path, base: str, head: str) -> str:
    """What ``head`` changed since it left ``base`` (``git diff --stat base...head``)."""
    return await must(repo, "diff", "--stat=100", f"{base}...{head}")


async def diff(repo: Path, base: str, head: str) -> str:
    done = await git(repo, "diff", f"{base}...{head}")
    if not done.ok:
        raise GitError(f"git diff failed: {done.out.strip()[-500:]}")
    return done.out


async def checkouts(repo: Path) -> dict[str, Path]:
    """Which worktree has each branch checked out: branch name -> worktree path."""
    out = await must(repo, "worktree", "list", "--porcelain")
    found: dict[str, Path] = {}
    path: Path | None = None
    for line in out.splitlines():
        if line.startswith("worktree "):
            path = Path(line[len("worktree ") :])
        elif line.startswith("branch refs/heads/") and path is not None:
            found[line[len("branch refs/heads/") :]] = path
    return found


async def switch(worktree: Path, branch: str, start: str) -> None:
    """Check ``branch`` out in a builder's worktree, creating it at ``start`` if new.

    The worktree's tracked changes are dropped (they belong to no task any more);
    untracked files stay (a CLI's own settings live there). A branch checked out in
    another worktree is detached there first.
    """
    if await current_branch(worktree) == branch:
        return
    elsewhere = (await checkouts(worktree)).get(branch)
    if elsewhere is not None and elsewhere.resolve() != worktree.resolve():
        await must(elsewhere, "checkout", "-q", "--detach", "-f")
    if await branch_tip(worktree, branch) is not None:
        await must(worktree, "checkout", "-q", "-f", branch)
    else:
        await must(worktree, "checkout", "-q", "-f", "-b", branch, start)


async def ensure_detached(repo: Path, path: Path, commit: str) -> None:
    """A worktree of ``repo`` at ``path``, detached at ``commit`` (created when missing)."""
    if not (path / ".git").exists():
        await git(repo, "worktree", "prune")
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        await must(repo, "worktree", "add", "-q", "--detach", str(path), commit)
        return
    await git(path, "merge", "--abort")
    await git(path, "rebase", "--abort")
    await must(path, "checkout", "-q", "-f", "--detach", commit)
