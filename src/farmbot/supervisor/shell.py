"""Shell commands farmbot runs for a project (QA's verify, a land_command, a deploy):
in the worktree, in a process group of their own, killed as a group at their timeout,
with only the end of their output kept while they run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

KEEP_BYTES = 64 * 1024  # of output, from the end, while the command runs
TAIL_LINES = 60
TAIL_CHARS = 4000


@dataclass(frozen=True, slots=True)
class CommandRun:
    """How a shell command ended (verify, land_command, deploy_staging, deploy_prod)."""

    command: str
    exit_code: int | None
    timed_out: bool
    output: str

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    @property
    def outcome(self) -> str:
        """``passed``, ``timed out`` or ``failed (exit 2)``."""
        if self.passed:
            return "passed"
        return "timed out" if self.timed_out else f"failed (exit {self.exit_code})"

    @property
    def tail(self) -> str:
        """Its last lines of output, as alerts and gates show them."""
        lines = self.output.rstrip().splitlines()[-TAIL_LINES:]
        return "\n".join(lines)[-TAIL_CHARS:]


async def run_command(
    command: str, cwd: Path, env: Mapping[str, str], seconds: float
) -> CommandRun:
    """Run a shell command in its own process group; kill the group at the timeout."""
    try:
        proc = await asyncio.create_subprocess_shell(
            command,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **env},
        )
    except OSError as exc:
        return CommandRun(command, None, False, f"could not start it: {exc}")
    kept = bytearray()

    async def read() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            kept.extend(chunk)
            del kept[:-KEEP_BYTES]

    timed_out = False
    try:
        await asyncio.wait_for(asyncio.gather(read(), proc.wait()), seconds)
    except TimeoutError:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
    text = kept.decode("utf-8", "replace")
    if timed_out:
        text += f"\n(timed out after {int(seconds)} s and was killed)"
    return CommandRun(command, proc.returncode, timed_out, text)
