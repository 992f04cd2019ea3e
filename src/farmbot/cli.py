"""The ``farmbot`` command line.

``farmbot hook`` never comes here (``farmbot.entry`` routes it first). Imports are lazy:
``farmbot demo-agent`` is the default agent and should not pay for aiohttp or libtmux.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse
    from pathlib import Path
    from typing import Any

    from farmbot.config.schema import Config


def _parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog="farmbot",
        description="Run a fleet of AI coding agents in tmux, driven from chat and a web console.",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="farmbot.toml to use (default: $FARMBOT_CONFIG, then ~/.config/farmbot/farmbot.toml)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the daemon (web console, supervisor, chat)")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    init = sub.add_parser("init", help="write a commented farmbot.toml")
    init.add_argument("path", nargs="?", help="where (default: ~/.config/farmbot/farmbot.toml)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    sub.add_parser("status", help="show agents, gates and projects of the running daemon")
    cmd = sub.add_parser("cmd", help='run a chat command, e.g. farmbot cmd "/spawn builder 42"')
    cmd.add_argument("text", nargs="+", help="the command text")
    attach = sub.add_parser("attach", help="attach your terminal to an agent's tmux session")
    attach.add_argument("agent")
    hooks = sub.add_parser("hooks", help="Claude Code hooks that report to farmbot")
    hooks_sub = hooks.add_subparsers(dest="hooks_command", metavar="ACTION", required=True)
    install = hooks_sub.add_parser(
        "install", help="add farmbot's hooks to <path>/.claude/settings.local.json"
    )
    install.add_argument("path", help="the agent's working directory")
    install.add_argument("--agent", help="agent id for its events (default: the directory's name)")
    install.add_argument(
        "--http", action="store_true", help="an http hook instead of a `farmbot hook` command"
    )
    sub.add_parser("hook", help="forward a Claude Code hook event on stdin (what the hooks run)")
    sub.add_parser(
        "demo-agent", help="run the demo coding agent (what tests and demos drive)", add_help=False
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(args_list)
    if args.command is None:
        _parser().print_help()
        return 2
    from farmbot.errors import ConfigError, DaemonUnavailable, FarmbotError

    try:
        return _run(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except DaemonUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    except FarmbotError as exc:
        print(f"farmbot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _load(args: argparse.Namespace) -> Config:
    from pathlib import Path

    from farmbot.config import find_config_path, load_config

    path = find_config_path(args.config, os.environ)
    return load_config(path, os.environ, Path.cwd())


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.command == "init":
        from farmbot.config import write_example

        target = Path(args.path) if args.path else Path.home() / ".config/farmbot/farmbot.toml"
        written = write_example(target, force=args.force)
        print(f"wrote {written}; edit it, then run: farmbot --config {written} serve")
        return 0
    config = _load(args)
    if args.command == "serve":
        return _serve(config, args)
    if args.command == "attach":
        return _attach(config, args.agent)
    if args.command == "hooks":
        return _hooks_install(config, Path(args.path), args.agent, http=args.http)
    from farmbot.client import Client

    client = Client.for_config(config)
    if args.command == "status":
        _print_status(client.status())
        return 0
    reply = client.command(" ".join(args.text))
    _print_reply(reply)
    return 0 if reply.get("ok") else 1


def _serve(config: Config, args: argparse.Namespace) -> int:
    import asyncio
    import dataclasses
    import logging

    from farmbot.daemon import serve

    server = config.server
    if args.port is not None:
        server = dataclasses.replace(server, port=args.port)
    if args.host is not None:
        server = dataclasses.replace(server, host=args.host)
    config = dataclasses.replace(config, server=server)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("apscheduler", "aiohttp.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(serve(config))
    return 0


def _hooks_install(config: Config, path: Path, agent: str | None, *, http: bool) -> int:
    import shlex

    from farmbot import localkey
    from farmbot.adapters.hooks import hook_token
    from farmbot.errors import CommandError
    from farmbot.hooks_install import default_hook_command, install_hooks

    workdir = path.expanduser().resolve()
    agent = agent or workdir.name
    key = localkey.read(config.server.state_dir)
    if key is None:
        raise CommandError(
            f"no local key at {localkey.path(config.server.state_dir)}; "
            "run `farmbot serve` once to create it"
        )
    token = hook_token(key, agent)
    url = config.server.url
    if http:
        written = install_hooks(
            workdir, agent=agent, http_url=f"{url}/hooks/claude/{agent}?token={token}"
        )
    else:
        # Self-contained: an agent farmbot did not spawn has none of the FARMBOT_* variables.
        state_dir = str(config.server.state_dir)
        options = {"--agent": agent, "--url": url, "--token": token, "--state-dir": state_dir}
        command = default_hook_command() + "".join(
            f" {name} {shlex.quote(value)}" for name, value in options.items()
        )
        written = install_hooks(workdir, agent=agent, command=command)
    kind = "http" if http else "command"
    print(f"installed farmbot {kind} hooks for agent '{agent}' in {written} (reporting to {url})")
    return 0


def _attach(config: Config, agent: str) -> int:
    import shutil
    import subprocess

    from farmbot.errors import FarmbotError

    tmux = shutil.which("tmux")
    if tmux is None:
        raise FarmbotError("tmux is not installed")
    socket = config.tmux.socket
    found = subprocess.run(
        [tmux, "-L", socket, "has-session", "-t", f"={agent}"], capture_output=True, check=False
    )
    if found.returncode != 0:
        raise FarmbotError(f"no agent session '{agent}' (see `farmbot cmd /agents`)")
    os.execv(tmux, [tmux, "-L", socket, "attach-session", "-t", f"={agent}"])
    return 0  # not reached


def _print_reply(reply: dict[str, Any]) -> None:
    print(reply.get("text", ""))
    if reply.get("pre"):
        print(reply["pre"])
    for row in reply.get("buttons") or []:
        print("  " + "   ".join(f"[{b['label']}: {b['command']}]" for b in row))


def _print_status(status: dict[str, Any]) -> None:
    now = status.get("now", time.time())
    print(f"farmbot {status.get('version')} — up {int(now - status.get('started_at', now))}s")
    projects = status.get("projects") or []
    print(
        "projects: "
        + (
            ", ".join(f"{p['name']}{'' if p['active'] else ' (deactivated)'}" for p in projects)
            or "none"
        )
    )
    agents = status.get("agents") or []
    if not agents:
        print("agents: none")
    for agent in agents:
        since = int(now - agent["state_since"])
        print(
            f"  {agent['id']:<24} {agent['state']:<9} {since:>6}s  {agent['project']}"
            f"  {agent['state_reason']}"
        )
    gates = status.get("gates") or []
    print(f"pending gates: {len(gates)}")
    for gate in gates:
        print(f"  #{gate['id']} {gate['title']}")
