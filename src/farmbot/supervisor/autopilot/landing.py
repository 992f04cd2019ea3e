"""Landing a task's branch on its project's base branch, and running deploy commands.

Three ways, as the project says: ``merge`` (a merge commit on the base), ``rebase`` (the
task's commits replayed on the base, which then fast-forwards) or ``land_command`` (a
shell command, e.g. one that opens a pull request). Merges and rebases happen in the
project's own landing worktree (``<state_dir>/worktrees/<project>/_landing``, detached),
never in a builder's; the base then moves by fast-forward -- in the checkout that has it
(so that checkout's files follow) or, when none has, by compare-and-set on the ref.

Landing is re-runnable: when the task's work is already on the base (a landing cut short
by a crash after the base moved), it is reported as landed, not landed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from farmbot.supervisor.autopilot import repo as git
from farmbot.supervisor.autopilot.repo import IDENTITY, GitError

LANDING_DIR = "_landing"  # not an agent id: those never start with "_"

Outcome = Literal["landed", "conflict", "refused"]


@dataclass(frozen=True, slots=True)
class Landing:
    """How a landing ended."""

    outcome: Outcome
    detail: str = ""
    base: str = ""  # the base's tip before
    commit: str = ""  # ... and after
    commits: tuple[str, ...] = ()  # what landed (for a merge: the task's commits, then it)
    how: str = ""


async def land_git(
    repo: Path,
    landing_dir: Path,
    *,
    branch: str,
    base_branch: str,
    how: Literal["merge", "rebase"],
    message: str,
) -> Landing:
    """Merge or rebase ``branch`` onto ``base_branch``; re-running after success is a no-op."""
    try:
        return await _land_git(repo, landing_dir, branch, base_branch, how, message)
    except GitError as exc:
        return Landing("refused", str(exc))


async def _land_git(
    repo: Path, landing_dir: Path, branch: str, base_branch: str, how: str, message: str
) -> Landing:
    head = await git.branch_tip(repo, branch)
    if head is None:
        return Landing("refused", f"branch {branch} does not exist")
    base = await git.branch_tip(repo, base_branch)
    if base is None:
        return Landing("refused", f"the base branch {base_branch} does not exist")
    verb = f"{how} {'into' if how == 'merge' else 'onto'} {base_branch}"
    if await _already_on(repo, base, head, how):
        return Landing("landed", "it was already on the base", base, base, (), verb)
    own = await git.commits(repo, base, head)
    if not own:
        return Landing("refused", f"{branch} has no commits that {base_branch} lacks")
    await git.ensure_detached(repo, landing_dir, base if how == "merge" else head)
    if how == "merge":
        done = await git.git(
            landing_dir, "merge", "--no-ff", "--no-edit", "-m", message, head, env=IDENTITY
        )
    else:
        done = await git.git(landing_dir, "rebase", base, env=IDENTITY)
    if not done.ok:
        conflicted = await git.git(landing_dir, "diff", "--name-only", "--diff-filter=U")
        await git.git(landing_dir, "merge" if how == "merge" else "rebase", "--abort")
        files = ", ".join(conflicted.out.split()) or done.out.strip()[-800:]
        return Landing("conflict", f"{how} conflicts with {base_branch} in: {files}")
    result = await git.must(landing_dir, "rev-parse", "HEAD")
    moved = await _advance(repo, base_branch, base, result)
    if moved is not None:
        return Landing("refused", moved)
    landed = (
        (*(sha for sha, _ in own), result)
        if how == "merge"
        else tuple(sha for sha, _ in await git.commits(repo, base, result))
    )
    return Landing("landed", "", base, result, landed, verb)


async def _already_on(repo: Path, base: str, head: str, how: str) -> bool:
    if await git.is_ancestor(repo, head, base):
        return True
    if how != "rebase":
        return False
    # A rebase rewrote the commits: they are on the base when no patch is missing there.
    cherry = await git.must(repo, "cherry", base, head)
    return bool(cherry) and all(line.startswith("-") for line in cherry.splitlines())


async def _advance(repo: Path, base_branch: str, old: str, new: str) -> str | None:
    """Fast-forward the base to ``new``; None when done, else why it could not."""
    holder = (await git.checkouts(repo)).get(base_branch)
    if holder is not None:
        done = await git.git(holder, "merge", "--ff-only", "-q", new)
        if not done.ok:
            return (
                f"the checkout of {base_branch} at {holder} could not move to the landed work "
                f"(commit, stash or remove what is in the way, then approve again): "
                f"{done.out.strip()[-500:]}"
            )
        return None
    done = await git.git(repo, "update-ref", f"refs/heads/{base_branch}", new, old)
    if not done.ok:
        return f"{base_branch} moved while landing; approve again: {done.out.strip()[-300:]}"
    return None
