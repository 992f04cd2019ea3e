"""The state directory and the database files are for farmbot's own Unix user only, even
when an older farmbot (or a plain mkdir) left them readable by everyone."""

from __future__ import annotations

import logging
import sqlite3
import stat
from pathlib import Path

import pytest

from tests.farm import farm_for, make_config


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_world_readable_state_dir_and_database_are_tightened_with_a_warning(
    tmp_path: Path, tmux_socket: str, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    db = state / "farmbot.db"
    sqlite3.connect(db).close()
    for file in (db, state / "farmbot.db-wal"):
        file.touch()
        file.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        async with farm_for(make_config(tmp_path, tmux_socket), tmp_path):
            assert mode(state) == 0o700
            for file in state.glob("farmbot.db*"):
                assert mode(file) == 0o600, file
    [warning] = [r.getMessage() for r in caplog.records if "state directory" in r.getMessage()]
    assert warning == (
        f"the state directory {state} was mode 0755: other users of this machine could "
        "read farmbot's files in it; it is 0700 now"
    )


async def test_a_new_state_dir_is_private_and_says_nothing(
    tmp_path: Path, tmux_socket: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        async with farm_for(make_config(tmp_path, tmux_socket), tmp_path) as farm:
            state = farm.config.server.state_dir
            assert mode(state) == 0o700
            assert {mode(f) for f in state.glob("farmbot.db*")} == {0o600}
            assert mode(state / "local-key") == 0o600
    assert not [r for r in caplog.records if "state directory" in r.getMessage()]
