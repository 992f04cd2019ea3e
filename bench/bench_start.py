"""Measure `farmbot serve`'s start: the wall time until /healthz answers, and its memory.

Targets (no chat interface configured): start to /healthz at most 0.25 s, resident memory
at most 45 MiB. Each run starts a fresh daemon on its own state directory, tmux socket and
port, polls /healthz every 5 ms from the moment the process is created, then reads the
daemon's VmRSS once it has been up a second (with 10 idle demo agents supervised in a
last run, to show what agents add). Each run then stops it and starts it again on the same
state directory -- a restart, the common case under systemd: the database exists and is
migrated, the local key is there -- and times that start too. Medians are printed with the
spread. Last, where the import time goes: the CPU of each layer the daemon imports (Python,
the stdlib, libtmux, aiosqlite and h11, farmbot's own modules), the floor under the start.

The daemons run as an installed farmbot does: with its bytecode cached (pip compiles it
at install). ``PYTHONDONTWRITEBYTECODE`` is dropped from their environment, so the warm-up
run writes the ``.pyc`` files a checkout lacks; with it, every start would compile all of
farmbot's sources again (about 0.25 s more here).

Run: ``.venv/bin/python bench/bench_start.py [--runs 10]``
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_START = 0.25
TARGET_RSS_MIB = 45.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def write_config(root: Path, port: int, socket_name: str) -> Path:
    config = root / "farmbot.toml"
    config.write_text(
        f"""
[server]
port = {port}
state_dir = "{root / "state"}"

[tmux]
socket = "{socket_name}"

[qa]
interval_minutes = 0

[[projects]]
name = "bench"
path = "{root}"
"""
    )
    return config


# As installed: bytecode cached (see the module's docstring).
ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def one_start(root: Path, agents: int = 0) -> tuple[float, float]:
    """(seconds to /healthz, RSS in MiB a second later) of one daemon on ``root``'s state
    directory: a fresh one the first time, a restart after that."""
    port, socket_name = free_port(), f"bench-start-{os.getpid()}-{time.monotonic_ns()}"
    config = write_config(root, port, socket_name)
    farmbot = [sys.executable, "-m", "farmbot", "--config", str(config)]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*farmbot, "serve"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=root,
        env=ENV,
    )
    try:
        while not healthy(port):
            if proc.poll() is not None:
                raise RuntimeError(f"farmbot serve exited with {proc.returncode}")
            if time.perf_counter() - started > 20:
                raise RuntimeError("farmbot serve did not answer /healthz within 20 s")
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        for _ in range(agents):
            done = subprocess.run(
                [*farmbot, "cmd", "/spawn shell"],
                capture_output=True,
                text=True,
                timeout=30,
                env=ENV,
            )
            if done.returncode != 0:
                raise RuntimeError(f"/spawn shell: {done.stdout}{done.stderr}")
        time.sleep(1.0 if not agents else 4.0)
        return elapsed, rss_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        subprocess.run(["tmux", "-L", socket_name, "kill-server"], capture_output=True, check=False)


# Where the import time goes: CPU of each layer, imported in this order in a fresh
# interpreter with the collector paused (as `farmbot serve` imports the daemon).
FLOOR = """
import gc, sys, time
gc.disable()
clock = time.process_time
marks = [("python", clock())]
import asyncio, json, logging, sqlite3, subprocess
marks.append(("stdlib (asyncio, logging, sqlite3, ...)", clock()))
import libtmux
marks.append(("libtmux", clock()))
import aiosqlite, h11
marks.append(("aiosqlite, h11", clock()))
import farmbot.daemon
marks.append(("farmbot's own modules", clock()))
print(" ".join(f"{b - a:.4f}" for (_, a), (_, b) in zip([("", 0.0), *marks], marks)))
print("|".join(name for name, _ in marks))
"""


def import_floor(runs: int) -> list[tuple[str, float]]:
    """The median CPU seconds of each layer of the daemon's imports (see FLOOR)."""
    samples: list[list[float]] = []
    names: list[str] = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", FLOOR], capture_output=True, text=True, env=ENV, check=True
        )
        figures, line = done.stdout.splitlines()[-2:]
        samples.append([float(f) for f in figures.split()])
        names = line.split("|")
    return [(name, statistics.median(s[i] for s in samples)) for i, name in enumerate(names)]


def spread(values: list[float], unit: str, digits: int) -> str:
    return (
        f"median {statistics.median(values):.{digits}f} {unit} "
        f"(min {min(values):.{digits}f}, max {max(values):.{digits}f}, n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    starts: list[float] = []
    restarts: list[float] = []
    memory: list[float] = []
    warm = Path(tempfile.mkdtemp(prefix="bench-start-"))
    try:
        one_start(warm)  # warm the page cache
    finally:
        shutil.rmtree(warm, ignore_errors=True)
    for _ in range(args.runs):
        root = Path(tempfile.mkdtemp(prefix="bench-start-"))
        try:
            elapsed, rss = one_start(root)
            restarts.append(one_start(root)[0])
        finally:
            shutil.rmtree(root, ignore_errors=True)
        starts.append(elapsed)
        memory.append(rss)
    root = Path(tempfile.mkdtemp(prefix="bench-start-"))
    try:
        _, with_agents = one_start(root, agents=10)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    start_ok = statistics.median(starts) <= TARGET_START
    rss_ok = statistics.median(memory) <= TARGET_RSS_MIB
    print(f"start to /healthz: {spread(starts, 's', 3)}; target <= {TARGET_START} s", end="")
    print(" ok" if start_ok else " MISSED")
    print(f"restart to /healthz (existing state directory): {spread(restarts, 's', 3)}")
    print(
        f"RSS, no chat interface: {spread(memory, 'MiB', 1)}; target <= {TARGET_RSS_MIB} MiB",
        end="",
    )
    print(" ok" if rss_ok else " MISSED")
    print(f"RSS with 10 shell agents supervised: {with_agents:.1f} MiB")
    layers = import_floor(args.runs)
    print(f"import CPU, median of {args.runs}: {sum(t for _, t in layers) * 1e3:.0f} ms =")
    for name, seconds in layers:
        print(f"  {seconds * 1e3:5.0f} ms  {name}")


if __name__ == "__main__":
    main()
