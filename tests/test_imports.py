"""What `farmbot serve` loads on embedded defaults: no library of a part that is not used.

Each chat library, aiohttp, the PostgreSQL driver, the vault's cryptography, the metrics
client and the cron scheduler cost start time and memory (bench/bench_start.py measures
them); they load only when configured or first used. So do farmbot's own modules that
only a part in use needs: the autopilot's planning modules load with the first task or
run. A graph is built in a fresh interpreter, as the daemon builds it (with a project,
but no task), the autopilot ticks once, the status page is made, and the modules loaded
are listed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

UNUSED = (
    "aiohttp",  # farmbot's own server (farmbot/adapters/http.py) serves; aiohttp is a client
    "telegram",
    "slack_bolt",
    "slack_sdk",
    "discord",
    "httpx",
    "psycopg",
    "psycopg_pool",
    "cryptography",
    "prometheus_client",
    "apscheduler",
    "selenium",
    "zoneinfo",  # the time zone database (with sysconfig): only a usage limit's reset reads it
)

# farmbot's own: what only a task, a run or an autopilot command needs.
UNUSED_OWN = tuple(
    f"farmbot.supervisor.autopilot.{name}"
    for name in ("tasks", "waves", "assigner", "steps", "landing", "pilot")
)

PROGRAM = """
import asyncio, json, os, sys
from pathlib import Path
import farmbot.cli, farmbot.daemon, farmbot.entry
from farmbot.build import build
from farmbot.config import load_config

async def main():
    config = load_config(Path(sys.argv[1]), os.environ, Path.cwd())
    async with build(config) as farm:
        await farm.autopilot.step()  # an idle tick and the status page, as after a start
        await farm.status()

asyncio.run(main())
print(json.dumps(sorted(sys.modules)))
"""


def test_embedded_defaults_load_no_library_they_do_not_use(
    tmp_path: Path, tmux_socket: str
) -> None:
    config = tmp_path / "farmbot.toml"
    (tmp_path / "app").mkdir()
    config.write_text(
        f'[server]\nstate_dir = "state"\n\n[tmux]\nsocket = "{tmux_socket}"\n\n'
        '[[projects]]\nname = "app"\npath = "app"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARMBOT_")}
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(config)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    loaded = {name.split(".")[0] for name in modules}
    assert "farmbot" in loaded and "h11" in loaded
    assert sorted(loaded & set(UNUSED)) == []
    assert "farmbot.supervisor.autopilot.runner" in modules
    assert sorted(modules & set(UNUSED_OWN)) == []
