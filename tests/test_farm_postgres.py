"""A whole farmbot (farmbot.build) on PostgreSQL, with real tmux and the demo agent:
commands through the router, prompts delivered, events, alerts and their outbox stored,
and all of it still there for the next farmbot on the same database."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from farmbot.config.schema import UserConfig
from farmbot.messages import Incoming, Severity
from farmbot.models import AgentState, Role
from tests.backends import PostgresBackend
from tests.farm import farm_for, make_config, received_prompts

ADA = UserConfig("ada", Role.ADMIN, ids={"telegram": 1})


async def test_a_farm_on_postgresql_spawns_delivers_and_alerts(
    tmp_path: Path, tmux_socket: str, pg_backend: PostgresBackend
) -> None:
    config = dataclasses.replace(
        make_config(tmp_path, tmux_socket, users=(ADA,)), storage=pg_backend.storage_config()
    )
    async with farm_for(config, tmp_path) as farm:
        assert farm.storage.db.backend == "postgresql"
        reply = await farm.router.handle(Incoming("telegram", "1", "c1", "/spawn builder 7"))
        assert reply.ok, reply.text
        await farm.until_idle("builder-7")
        [prompt] = received_prompts(tmp_path)
        assert "issue #7" in prompt

        sent = await farm.router.handle(Incoming("telegram", "1", "c1", "/send builder-7 crash"))
        assert sent.ok, sent.text
        await farm.until_state("builder-7", AgentState.DEAD)
        [alert] = [a for a in await farm.storage.outbox.recent_alerts() if a.kind == "agent.dead"]
        assert alert.agent_id == "builder-7" and alert.severity is Severity.CRITICAL
        assert await farm.graph.alerts.notifier.deliver_due() >= 1  # to the web console
        assert (await farm.storage.outbox.outbox_summary())["delivered"] >= 1
        assert await farm.graph.problems() == {}  # the database answers its readiness check

    # What a farmbot stored is what the next one (another machine, say) finds.
    rows = pg_backend.run("SELECT kind FROM events ORDER BY id")
    kinds = [kind for (kind,) in rows]
    for kind in ("agent.spawned", "prompt.delivered", "agent.dead"):
        assert kind in kinds, kinds
    assert (
        kinds.index("agent.spawned") < kinds.index("prompt.delivered") < kinds.index("agent.dead")
    )
    audit = pg_backend.run("SELECT user_name, command, outcome FROM audit ORDER BY id")
    assert audit == [("ada", "/spawn builder 7", "ok"), ("ada", "/send builder-7 crash", "ok")]
    assert pg_backend.run("SELECT state, desired FROM agents WHERE id = 'builder-7'") == [
        ("dead", "running")
    ]
    assert not (tmp_path / "state" / "farmbot.db").exists()  # no SQLite file on the side
