"""Runs, their waves, and each project's autopilot mode.

A run is created with its waves and the tasks it takes in one transaction; at most one
run per project is open (running or paused), which the schema enforces. Waves move by
compare-and-set on their state, so a wave gate is opened, and a deploy started, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from farmbot.models import AutopilotMode, ModeSetting, Run, RunState, Wave, WaveState
from farmbot.storage.db import Database, Row, Tx


class RunStore(Protocol):
    async def add_run(
        self, project: str, by: str, waves: Mapping[int, int], now: float
    ) -> Run | None:
        """Open a run taking ``waves`` (task id -> wave number); None when the project
        already has an open run."""

    async def get_run(self, run_id: int) -> Run | None:
        """The run with its waves, or None."""

    async def open_run(self, project: str) -> Run | None:
        """The project's running or paused run, or None."""

    async def list_runs(self, project: str | None = None, limit: int = 20) -> list[Run]:
        """Runs (of a project), newest first."""

    async def set_run_state(
        self, run_id: int, state: RunState, reason: str, now: float, *, expect: RunState
    ) -> Run | None:
        """Move a run from ``expect`` to ``state`` (compare-and-set); None if it was not."""

    async def join_run(self, run_id: int, task_id: int, wave: int, now: float) -> None:
        """Put a task in a run's wave (adding the wave when it is new)."""

    async def set_wave(self, wave: Wave, *, expect: WaveState, now: float) -> Wave | None:
        """Write a wave if it is still in state ``expect`` (compare-and-set)."""

    async def get_mode(self, project: str) -> ModeSetting | None:
        """The mode a person set for the project, or None (the configured one applies)."""

    async def set_mode(self, project: str, mode: AutopilotMode, by: str, now: float) -> None:
        """Record the project's mode."""


class SqlRunStore(RunStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_run(
        self, project: str, by: str, waves: Mapping[int, int], now: float
    ) -> Run | None:
        async with self._db.transaction() as tx:
            found = await tx.fetchone(
                "SELECT id FROM runs WHERE project = ? AND state IN ('running', 'paused')",
                (project,),
            )
            if found is not None:
                return None
            run_id = await tx.insert(
                "INSERT INTO runs (project, state, started_by, created_at, updated_at)"
                " VALUES (?, 'running', ?, ?, ?) RETURNING id",
                (project, by, now, now),
            )
            numbers = sorted(set(waves.values()))
            await tx.executemany(
                "INSERT INTO waves (run_id, number, state) VALUES (?, ?, 'open')",
                [(run_id, n) for n in numbers],
            )
            await tx.executemany(
                "UPDATE tasks SET run_id = ?, wave = ?, updated_at = ? WHERE id = ?",
                [(run_id, wave, now, task_id) for task_id, wave in waves.items()],
            )
            return await _run_in(tx, run_id)

    async def get_run(self, run_id: int) -> Run | None:
        async with self._db.transaction() as tx:
            return await _run_in(tx, run_id)

    async def open_run(self, project: str) -> Run | None:
        row = await self._db.fetchone(
            "SELECT id FROM runs WHERE project = ? AND state IN ('running', 'paused')",
            (project,),
        )
        return None if row is None else await self.get_run(int(row["id"]))

    async def list_runs(self, project: str | None = None, limit: int = 20) -> list[Run]:
        if project is None:
            rows = await self._db.fetchall("SELECT id FROM runs ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = await self._db.fetchall(
                "SELECT id FROM runs WHERE project = ? ORDER BY id DESC LIMIT ?", (project, limit)
            )
        found = [await self.get_run(int(r["id"])) for r in rows]
        return [r for r in found if r is not None]

    async def set_run_state(
        self, run_id: int, state: RunState, reason: str, now: float, *, expect: RunState
    ) -> Run | None:
        finished = None if state.is_open else now
        async with self._db.transaction() as tx:
            if state.is_open and not expect.is_open:  # reopening: still one open per project
                other = await tx.fetchone(
                    "SELECT r.id FROM runs r JOIN runs me ON me.project = r.project"
                    " WHERE me.id = ? AND r.state IN ('running', 'paused')",
                    (run_id,),
                )
                if other is not None:
                    return None
            row = await tx.fetchone(
                "UPDATE runs SET state = ?, reason = ?, updated_at = ?, finished_at = ?"
                " WHERE id = ? AND state = ? RETURNING id",
                (state.value, reason, now, finished, run_id, expect.value),
            )
            return None if row is None else await _run_in(tx, run_id)

    async def join_run(self, run_id: int, task_id: int, wave: int, now: float) -> None:
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO waves (run_id, number, state) VALUES (?, ?, 'open')"
                " ON CONFLICT (run_id, number) DO NOTHING",
                (run_id, wave),
            )
            await tx.execute(
                "UPDATE tasks SET run_id = ?, wave = ?, updated_at = ? WHERE id = ?",
                (run_id, wave, now, task_id),
            )

    async def set_wave(self, wave: Wave, *, expect: WaveState, now: float) -> Wave | None:
        row = await self._db.fetchone(
            "UPDATE waves SET state = ?, gate_id = ?, staging = ?, prod = ?, closed_at = ?,"
            " deploys = ? WHERE run_id = ? AND number = ? AND state = ? RETURNING *",
            (
                wave.state.value,
                wave.gate_id,
                wave.staging,
                wave.prod,
                wave.closed_at,
                wave.deploys,
                wave.run_id,
                wave.number,
                expect.value,
            ),
        )
        if row is not None:
            await self._db.execute(
                "UPDATE runs SET updated_at = ? WHERE id = ?", (now, wave.run_id)
            )
        return None if row is None else _wave(row)

    async def get_mode(self, project: str) -> ModeSetting | None:
        row = await self._db.fetchone("SELECT * FROM autopilot_modes WHERE project = ?", (project,))
        if row is None:
            return None
        return ModeSetting(row["project"], AutopilotMode(row["mode"]), row["set_by"], row["set_at"])

    async def set_mode(self, project: str, mode: AutopilotMode, by: str, now: float) -> None:
        await self._db.execute(
            "INSERT INTO autopilot_modes (project, mode, set_by, set_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (project) DO UPDATE SET mode = excluded.mode,"
            " set_by = excluded.set_by, set_at = excluded.set_at",
            (project, mode.value, by, now),
        )


async def _run_in(tx: Tx, run_id: int) -> Run | None:
    row = await tx.fetchone("SELECT * FROM runs WHERE id = ?", (run_id,))
    if row is None:
        return None
    waves = await tx.fetchall("SELECT * FROM waves WHERE run_id = ? ORDER BY number", (run_id,))
    return Run(
        **{**dict(row), "state": RunState(row["state"]), "waves": tuple(_wave(w) for w in waves)}
    )


def _wave(r: Row) -> Wave:
    return Wave(**{**dict(r), "state": WaveState(r["state"])})
