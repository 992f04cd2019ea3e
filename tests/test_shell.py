"""The shell-command runner QA and the autopilot share, with real processes."""

from __future__ import annotations

from pathlib import Path

from farmbot.supervisor.shell import KEEP_BYTES, run_command
from tests.helpers import retry_until


async def test_a_command_runs_in_the_worktree_with_its_environment(tmp_path: Path) -> None:
    ran = await run_command(
        'echo "$FARMBOT_AGENT in $PWD"; exit 3', tmp_path, {"FARMBOT_AGENT": "b-1"}, 10
    )
    assert (ran.exit_code, ran.timed_out, ran.passed) == (3, False, False)
    assert ran.output.strip() == f"b-1 in {tmp_path}"
    assert ran.outcome == "failed (exit 3)"


async def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child"
    ran = await run_command(f"sleep 60 & echo $! > {pid_file}; echo started; wait", tmp_path, {}, 1)
    assert ran.timed_out and ran.outcome == "timed out" and not ran.passed
    assert ran.output.startswith("started\n")
    assert ran.output.endswith("(timed out after 1 s and was killed)")
    child = int(pid_file.read_text())

    def reaped() -> bool:  # killed with its shell, not left behind (a zombie counts as gone)
        try:
            return Path(f"/proc/{child}/stat").read_text().split()[2] == "Z"
        except FileNotFoundError:
            return True

    assert await retry_until(reaped, message="the background child killed")


async def test_only_the_end_of_a_long_output_is_kept(tmp_path: Path) -> None:
    ran = await run_command(
        "head -c 300000 /dev/zero | tr '\\0' x; echo; echo last", tmp_path, {}, 10
    )
    assert ran.passed and len(ran.output) <= KEEP_BYTES
    assert ran.tail.endswith("last") and len(ran.tail) <= 4000


async def test_a_command_that_cannot_start_says_so(tmp_path: Path) -> None:
    ran = await run_command("true", tmp_path / "missing", {}, 10)
    assert (ran.exit_code, ran.timed_out) == (None, False)
    assert ran.output.startswith("could not start it: ") and not ran.passed
