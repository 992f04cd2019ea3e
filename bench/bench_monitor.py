"""What supervising N agents costs, and how fast a death is seen (issue: 1,000 agents).

Runs a real daemon (farmbot.daemon.Daemon, its loops running) with N idle agents whose
program is ``cat``, on a private tmux server, and prints for N = 10, 100, 500:

- CPU per agent per tick, every process counted: the daemon (all its threads), the tmux
  clients it ran, the tmux server (the agents themselves, ``cat``, use none);
- how long after ``kill -9`` of one agent's process it is marked dead;
- the same while a burst of 50 spawns is under way.

Targets: <= 0.3 ms of CPU per agent per tick; death seen within 2 s, burst or not.
Run: ``.venv/bin/python bench/bench_monitor.py [--agents 10,100,500] [--seconds 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from farmbot.config.limits import LimitsConfig
from farmbot.config.schema import (
    AgentProfile,
    Config,
    ProjectConfig,
    ServerConfig,
    SupervisorConfig,
    TmuxConfig,
    builtin_profiles,
)
from farmbot.daemon import Daemon
from farmbot.messages import Incoming
from farmbot.models import AgentState

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _cpu_self() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND  # utime + stime


def _config(root: Path, socket: str, tick: float) -> Config:
    project = root / "project"
    project.mkdir()
    profiles = builtin_profiles()
    profiles["cat"] = AgentProfile(name="cat", command="cat")
    return Config(
        server=ServerConfig(host="127.0.0.1", port=0, state_dir=root / "state"),
        tmux=TmuxConfig(socket=socket),
        supervisor=SupervisorConfig(default_agent="cat", tick_seconds=tick, max_builders=100),
        projects=(ProjectConfig("farm", project, agent="cat"),),
        agents=profiles,
        limits=LimitsConfig(spawns_per_minute=0),  # the burst is the point
    )


async def _until(probe: Callable[[], Awaitable[bool]], limit: float) -> float:
    """Seconds until ``probe()`` is true (or ``limit`` seconds)."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if await probe():
            break
        await asyncio.sleep(0.01)
    return time.perf_counter() - started


async def measure(agents: int, seconds: float, tick: float) -> dict[str, float]:
    socket = f"farmbot-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="farmbot-bench-") as tmp:
        config = _config(Path(tmp), socket, tick)
        async with Daemon(config) as daemon:
            farm = daemon.farm
            workdir = config.projects[0].path
            for i in range(1, agents + 1):  # sessions farmbot started, adopted by the monitor
                name = f"shell-{i}"
                env = {
                    "FARMBOT_AGENT": name,
                    "FARMBOT_PROJECT": "farm",
                    "FARMBOT_KIND": "shell",
                    "FARMBOT_NUMBER": str(i),
                    "FARMBOT_PROFILE": "cat",
                }
                await farm.tmux.new_session(name, "cat", workdir, env)
            stop = asyncio.Event()
            running = asyncio.create_task(daemon.run(stop))
            try:

                async def settled() -> bool:  # every agent adopted and its screen read once
                    found = await farm.storage.agents.list_agents()
                    return len(found) == agents and farm.monitor.reads >= agents

                await _until(settled, 600)
                await asyncio.sleep(tick)
                [server] = await farm.tmux._observe("display-message", "-p", "#{pid}")
                ticks, cpu, cpu_server = farm.monitor.ticks, _cpu_self(), _cpu_of(int(server))
                await asyncio.sleep(seconds)
                ticks = farm.monitor.ticks - ticks
                used = _cpu_self() - cpu + _cpu_of(int(server)) - cpu_server
                per_agent = used / max(ticks, 1) / agents * 1000

                async def killed(name: str) -> float:
                    pane = await farm.tmux.pane(name)
                    assert pane is not None and pane.pid is not None
                    os.kill(pane.pid, signal.SIGKILL)

                    async def dead() -> bool:
                        agent = await farm.storage.agents.get_agent(name)
                        return agent is not None and agent.state is AgentState.DEAD

                    return await _until(dead, 30)

                death = await killed("shell-1")
                spawns = [
                    asyncio.create_task(
                        farm.router.handle(
                            Incoming("cli", "local", "bench", f"/spawn builder {1000 + n}")
                        )
                    )
                    for n in range(50)
                ]
                await asyncio.sleep(0.3)  # the burst is under way
                death_in_burst = await killed("shell-2")
                replies = await asyncio.gather(*spawns)
                failed = [r.text for r in replies if not r.ok]
                assert not failed, failed[:3]
            finally:
                stop.set()
                await running
        killing = await asyncio.create_subprocess_exec(
            "tmux", "-L", socket, "kill-server", stderr=asyncio.subprocess.DEVNULL
        )
        await killing.wait()
        Path(f"/tmp/tmux-{os.getuid()}/{socket}").unlink(missing_ok=True)
    return {
        "agents": agents,
        "ticks": ticks,
        "cpu_ms_per_agent_tick": per_agent,
        "death_s": death,
        "death_in_burst_s": death_in_burst,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="10,100,500")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--tick", type=float, default=SupervisorConfig().tick_seconds)
    args = parser.parse_args()
    print(f"monitor cost, {os.cpu_count()} cores, tick {args.tick:g} s, {args.seconds:g} s each")
    for n in (int(x) for x in args.agents.split(",")):
        r = await measure(n, args.seconds, args.tick)
        print(
            f"  {n:4d} idle agents: {r['cpu_ms_per_agent_tick']:.3f} ms CPU per agent per tick"
            f" ({int(r['ticks'])} ticks); kill -9 seen dead in {r['death_s']:.2f} s,"
            f" {r['death_in_burst_s']:.2f} s during a burst of 50 spawns"
        )
    print("targets: <= 0.3 ms per agent per tick; dead within 2 s, burst or not")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
