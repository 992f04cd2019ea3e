"""The ``farmbot`` command line.

``farmbot hook`` never comes here (``farmbot.entry`` routes it first). Imports are lazy:
``farmbot demo-agent`` is the default agent and should not pay for aiohttp or libtmux.
Every failure is one line on stderr and a non-zero exit, never a traceback.
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

    from farmbot.config.schema import Config, ServerConfig
    from farmbot.lifecycle import Stopped
    from farmbot.logs import LogOptions
    from farmbot.storage.vault import Vault

DB_FILE = "farmbot.db"  # app.DB_FILE (a test keeps them equal)
ROTATION_PAUSE = "FARMBOT_TEST_ROTATION_PAUSE"  # tests only: `secret rotate-key` waits there
CONFIG_HELP = "farmbot.toml to use (default: $FARMBOT_CONFIG, then ~/.config/farmbot/farmbot.toml)"


def _parser() -> argparse.ArgumentParser:
    import argparse

    from farmbot import __version__
    from farmbot.logs import FORMATS

    # --config is accepted before the command and after it (farmbot serve --config P).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=CONFIG_HELP)
    parser = argparse.ArgumentParser(
        prog="farmbot",
        description="Run a fleet of AI coding agents in tmux, driven from chat and a web console.",
    )
    parser.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    parser.add_argument("--version", action="version", version=f"farmbot {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(parent: Any, name: str, help: str, **kwargs: Any) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help, parents=[common], **kwargs)
        return p

    def serve_options(p: argparse.ArgumentParser, *, log_file: bool) -> None:
        p.add_argument("--port", type=int, help="override server.port")
        p.add_argument("--host", help="override server.host")
        p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
        p.add_argument("--log-format", choices=FORMATS, default="text", help="default: text")
        if log_file:
            p.add_argument("--log-file", metavar="PATH", help="log to a rotating file")
        p.add_argument("--log-max-bytes", type=int, metavar="N", help="rotate past N bytes")
        p.add_argument("--log-backups", type=int, metavar="N", help="rotated files kept")

    serve_options(add(sub, "serve", "run the daemon in the foreground"), log_file=True)
    for name, what in (("start", "start"), ("restart", "stop, then start")):
        p = add(sub, name, f"{what} the daemon in the background (log: state_dir/farmbot.log)")
        serve_options(p, log_file=False)
        p.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    stop = add(sub, "stop", "stop the daemon (SIGTERM); the agents keep running in tmux")
    stop.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    reload = add(sub, "reload", "reload the configuration (SIGHUP); agents and chats carry on")
    reload.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    logs = add(sub, "logs", "show the log of a daemon run by `farmbot start`")
    logs.add_argument("-n", "--lines", type=int, default=50, metavar="N", help="default 50")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    init = add(sub, "init", "write a commented farmbot.toml")
    init.add_argument("path", nargs="?", help="file or directory (default: ~/.config/farmbot/)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    add(sub, "status", "show agents, gates and projects of the running daemon")
    add(sub, "login-link", "print the link that logs a browser in to the console (holds the key)")
    cmd = add(sub, "cmd", 'run a chat command, e.g. farmbot cmd "/spawn builder 42"')
    cmd.add_argument("text", nargs="+", help="the command text")
    attach = add(sub, "attach", "attach your terminal to an agent's tmux session")
    attach.add_argument("agent")
    hooks = add(sub, "hooks", "Claude Code hooks that report to farmbot")
    hooks_sub = hooks.add_subparsers(dest="hooks_command", metavar="ACTION", required=True)
    install = add(hooks_sub, "install", "add farmbot's hooks to <path>/.claude/settings.local.json")
    install.add_argument("path", help="the agent's working directory")
    install.add_argument("--agent", help="agent id for its events (default: the directory's name)")
    install.add_argument(
        "--http", action="store_true", help="an http hook instead of a `farmbot hook` command"
    )
    secret = add(sub, "secret", "the vault: secrets the config reads as vault:NAME")
    secret_sub = secret.add_subparsers(dest="secret_command", metavar="ACTION", required=True)
    add(secret_sub, "set", "store a secret (typed without echo, or read from stdin)").add_argument(
        "name"
    )
    add(secret_sub, "list", "the secrets' names and dates (never their values)")
    add(secret_sub, "rm", "remove a secret").add_argument("name")
    rotate = add(secret_sub, "rotate-key", "re-encrypt every secret under a new key")
    rotate.add_argument(
        "--new-key-file", metavar="PATH", help="where the new key goes when the key is not "
        "state_dir/vault.key ($FARMBOT_VAULT_KEY, a systemd credential)"
    )  # fmt: skip
    service = add(sub, "service", "run farmbot as a login service (systemd, launchd)")
    service_sub = service.add_subparsers(dest="service_command", metavar="ACTION", required=True)
    unit = add(service_sub, "install", "write the systemd user unit / LaunchAgent")
    unit.add_argument("--force", action="store_true", help="replace an existing one")
    unit.add_argument(
        "--enable", action="store_true",
        help="also enable and start it (systemctl --user daemon-reload, enable --now; "
        "launchctl bootstrap)",
    )  # fmt: skip
    unit.add_argument("--manager", choices=("systemd", "launchd"), help=argparse.SUPPRESS)
    backup = add(sub, "backup", "copy the database consistently, even while farmbot runs")
    backup.add_argument("path", help="file, or directory for a dated file")
    backup.add_argument("--force", action="store_true", help="replace an existing file")
    task = add(sub, "task", "for agents: report on the task farmbot gave you")
    task_sub = task.add_subparsers(dest="task_command", metavar="ACTION", required=True)
    done = add(task_sub, "done", "your task is done: farmbot verifies it (run in the agent)")
    done.add_argument("--note", default="", help="one line on what you did")
    add(sub, "hook", "forward a Claude Code hook event on stdin (what the hooks run)")
    add(sub, "demo-agent", "run the demo coding agent (what tests and demos drive)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:  # farmbot cmd ... | head -1
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # as if killed by SIGPIPE


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    from farmbot.errors import ConfigError, DaemonUnavailable, FarmbotError, StartFailed

    try:
        return _run(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except DaemonUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    except StartFailed as exc:
        print(f"farmbot: {exc}", file=sys.stderr)
        for line in exc.log:
            print(f"  {line}", file=sys.stderr)
        return 1
    except FarmbotError as exc:
        print(f"farmbot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise
    except OSError as exc:  # an unwritable or unreadable path nobody anticipated
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"farmbot: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1


def _farmbot(args: argparse.Namespace) -> str:
    """How to type farmbot in a hint: with this command's --config, if it had one."""
    import shlex

    return f"farmbot --config {shlex.quote(args.config)}" if args.config else "farmbot"


def _config_path(args: argparse.Namespace) -> Path | None:
    from farmbot.config import find_config_path

    return find_config_path(args.config, os.environ)


def _load(args: argparse.Namespace) -> Config:
    from pathlib import Path

    from farmbot.config import load_config

    return load_config(_config_path(args), os.environ, Path.cwd())


def _server(args: argparse.Namespace) -> ServerConfig:
    """Only [server]: for commands that must work when the rest of the config does not."""
    from pathlib import Path

    from farmbot.config import load_server_config

    return load_server_config(_config_path(args), os.environ, Path.cwd())


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    command: str = args.command
    if command == "init":
        from farmbot.config import write_example

        target = Path(args.path) if args.path else Path.home() / ".config/farmbot/farmbot.toml"
        written = write_example(target, force=args.force)
        print(
            f"wrote {written}; edit it, then run: farmbot --config {written} serve "
            "(or start, for the background)"
        )
        return 0
    if command == "secret":
        return _secret(args)
    if command == "stop":
        return _stop(args)
    if command == "reload":
        return _reload(args)
    if command == "logs":
        return _logs(args)
    if command == "backup":
        return _backup(args)
    if command == "service":
        return _service_install(args)
    if command == "task":
        return _task_done(args.note)
    config = _load(args)
    if command == "serve":
        return _serve(config, args)
    if command in ("start", "restart"):
        return _start(config, args, restart=command == "restart")
    if command == "attach":
        return _attach(config, args.agent, _farmbot(args))
    if command == "hooks":
        return _hooks_install(config, Path(args.path), args.agent, http=args.http, args=args)
    if command == "login-link":
        return _login_link(config, args)
    from farmbot.client import Client

    client = Client.for_config(config, start_hint=f"{_farmbot(args)} start")
    if command == "status":
        from farmbot.lifecycle import lock_state

        state = lock_state(config.server.state_dir)
        _print_status(client.status(), state.pid if state.running else None)
        return 0
    reply = client.command(" ".join(args.text))
    _print_reply(reply)
    return 0 if reply.get("ok") else 1


def _login_link(config: Config, args: argparse.Namespace) -> int:
    """The console's login link, on request only (`farmbot serve` prints it once, at the
    first start: a link in every start's output would put the key in the journal)."""
    from farmbot import localkey
    from farmbot.errors import FarmbotError

    key = localkey.read(config.server.state_dir)
    if key is None:
        raise FarmbotError(
            f"no local key at {localkey.path(config.server.state_dir)}; "
            f"run `{_farmbot(args)} start` once to create it"
        )
    print(localkey.login_link(config.server.url, key))
    return 0


def _task_done(note: str) -> int:
    """``farmbot task done``: inside an agent, with the identity farmbot gave it."""
    from farmbot.client import task_done
    from farmbot.errors import FarmbotError

    env = {name: os.environ.get(name, "") for name in _AGENT_ENV}
    missing = [name for name, value in env.items() if not value]
    if missing:
        raise FarmbotError(
            "`task done` runs inside an agent that farmbot started; "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set"
        )
    print(task_done(env["FARMBOT_URL"], env["FARMBOT_AGENT"], env["FARMBOT_HOOK_TOKEN"], note))
    return 0


_AGENT_ENV = ("FARMBOT_AGENT", "FARMBOT_URL", "FARMBOT_HOOK_TOKEN")


# -- the daemon -------------------------------------------------------------------------


def _with_overrides(config: Config, args: argparse.Namespace) -> Config:
    import dataclasses

    server = config.server
    if args.port is not None:
        server = dataclasses.replace(server, port=args.port)
    if args.host is not None:
        server = dataclasses.replace(server, host=args.host)
    return dataclasses.replace(config, server=server)


def _log_options(args: argparse.Namespace, file: str | None) -> LogOptions:
    import logging
    from pathlib import Path

    from farmbot.errors import FarmbotError
    from farmbot.logs import DEFAULT_BACKUPS, DEFAULT_MAX_BYTES, LogOptions

    max_bytes = DEFAULT_MAX_BYTES if args.log_max_bytes is None else args.log_max_bytes
    backups = DEFAULT_BACKUPS if args.log_backups is None else args.log_backups
    if max_bytes < 1024 or backups < 1:
        raise FarmbotError("--log-max-bytes must be at least 1024 and --log-backups at least 1")
    return LogOptions(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format=args.log_format,
        file=Path(file).expanduser().absolute() if file else None,
        max_bytes=max_bytes,
        backups=backups,
    )


def _serve(config: Config, args: argparse.Namespace) -> int:
    import asyncio
    import gc

    from farmbot import logs

    # Importing the daemon (farmbot and the libraries it uses) makes objects that live as
    # long as the process, and next to no garbage, yet the cyclic collector would scan them
    # over a hundred times meanwhile (a full pass, too, when one falls here). It waits until
    # they are in; frozen before it resumes, they stay out of its scans, as serve() keeps
    # what it starts with (it unfreezes everything when it returns).
    gc.disable()
    try:
        from farmbot.daemon import serve
    finally:
        gc.freeze()
        gc.enable()

    logs.setup(_log_options(args, args.log_file), os.environ)

    def again() -> Config:  # a reload reads the same file with the same overrides
        return _with_overrides(_load(args), args)

    asyncio.run(serve(_with_overrides(config, args), load=again))
    return 0


def _serve_args(args: argparse.Namespace) -> list[str]:
    """The options of `farmbot start` that its `farmbot serve` gets."""
    forwarded = ["--log-format", args.log_format]
    for flag, value in (
        ("--port", args.port),
        ("--host", args.host),
        ("--log-max-bytes", args.log_max_bytes),
        ("--log-backups", args.log_backups),
    ):
        if value is not None:
            forwarded += [flag, str(value)]
    return forwarded + (["--verbose"] if args.verbose else [])


def _start(config: Config, args: argparse.Namespace, *, restart: bool) -> int:
    from pathlib import Path

    from farmbot import lifecycle, localkey

    _log_options(args, None)  # bad values fail here, not in the detached child
    config = _with_overrides(config, args)
    state_dir, url = config.server.state_dir, config.server.url
    farmbot = _farmbot(args)
    if restart:
        _report_stop(lifecycle.stop(state_dir, timeout=args.timeout), state_dir)
    log = lifecycle.log_path(state_dir)
    first = localkey.read(state_dir) is None  # this start makes the local key
    command = lifecycle.serve_command(config.source, _serve_args(args), log)
    started = lifecycle.start(
        state_dir,
        url,
        command,
        environ=os.environ,
        cwd=Path.cwd(),
        timeout=args.timeout,
        farmbot=farmbot,
    )
    if started.already:
        print(f"farmbot is already running (pid {started.pid or '?'}) at {url}")
        return 0
    key = localkey.read(state_dir)
    # The link holds the key: shown when this start made it, else only on request.
    where = localkey.login_link(url, key) if first and key else f"{url}/ (`{farmbot} login-link`)"
    print(
        f"farmbot started (pid {started.pid}).\n"
        f"  status page and console: {where}\n"
        f"  log: {log} (`{farmbot} logs -f`)\n"
        f"  stop it with `{farmbot} stop`; the agents keep running in tmux."
    )
    return 0


def _stop(args: argparse.Namespace) -> int:
    from farmbot import lifecycle

    state_dir = _server(args).state_dir
    _report_stop(lifecycle.stop(state_dir, timeout=args.timeout), state_dir)
    return 0


def _reload(args: argparse.Namespace) -> int:
    from farmbot import lifecycle

    # Only [server]: a config that no longer loads must still reach the daemon, which
    # refuses it and says why.
    state_dir = _server(args).state_dir
    done = lifecycle.reload(state_dir, timeout=args.timeout)
    outcome = done.outcome
    if outcome is None:
        print(
            f"farmbot: sent SIGHUP to farmbot (pid {done.pid}), which did not say within "
            f"{args.timeout:g}s how the reload went; see `{_farmbot(args)} logs` or journalctl",
            file=sys.stderr,
        )
        return 1
    if outcome.get("applied"):
        print(f"farmbot (pid {done.pid}) {outcome.get('message', 'reloaded')}")
        return 0
    print(f"farmbot (pid {done.pid}) {outcome.get('message', 'refused')}", file=sys.stderr)
    return 1


def _report_stop(stopped: Stopped, state_dir: Path) -> None:
    if stopped.pid is not None:
        print(f"stopped farmbot (pid {stopped.pid}); the agents keep running in tmux")
    elif stopped.stale is not None:
        print(
            f"farmbot is not running (state directory {state_dir}); cleared the pid "
            f"{stopped.stale} of a farmbot that is gone"
        )
    else:
        print(f"farmbot is not running (state directory {state_dir})")


def _logs(args: argparse.Namespace) -> int:
    from farmbot import lifecycle
    from farmbot.errors import FarmbotError

    path = lifecycle.log_path(_server(args).state_dir)
    if not path.exists() and not args.follow:
        raise FarmbotError(
            f"no log at {path}: `{_farmbot(args)} start` writes it (under systemd: "
            "journalctl --user -u farmbot)"
        )
    if args.follow:
        lifecycle.follow(path, sys.stdout, last=args.lines)
        return 0
    for line in lifecycle.tail(path, args.lines):
        print(line)
    return 0


def _backup(args: argparse.Namespace) -> int:
    from pathlib import Path

    from farmbot.config import names_storage_url
    from farmbot.errors import StorageError
    from farmbot.storage.backup import backup

    if names_storage_url(_config_path(args), Path.cwd()):
        raise StorageError(
            "farmbot backup copies the SQLite database, and this config keeps farmbot's "
            "state in PostgreSQL ([storage] url): back that up with pg_dump"
        )
    done = backup(_server(args).state_dir / DB_FILE, Path(args.path), force=args.force)
    print(f"wrote {done.path} ({done.bytes} bytes); README: Backup says how to restore it")
    return 0


def _service_install(args: argparse.Namespace) -> int:
    import shlex
    from pathlib import Path

    from farmbot import service

    config = _config_path(args)
    command = service.service_command(service.farmbot_command(sys.argv[0], sys.executable), config)
    installed = service.install(
        args.manager or service.default_manager(),
        command,
        state_dir=_server(args).state_dir,
        environ=os.environ,
        home=Path.home(),
        force=args.force,
    )
    print(f"wrote {installed.path}, which runs: {shlex.join(installed.command)}")
    if not args.enable:
        print("enable and start it:")
        for step in installed.next_steps:
            print(f"  {step}")
        return 0
    for ran in service.enable(installed, os.environ):
        print(f"ran: {ran}")
    print(f"{installed.path.name} is enabled and started; next:")
    for step in installed.after:
        print(f"  {step}")
    return 0


# -- the vault --------------------------------------------------------------------------


def _vault(args: argparse.Namespace) -> Vault:
    from farmbot.storage.vault import Vault

    pause = os.environ.get(ROTATION_PAUSE)

    def checkpoint(step: str) -> None:
        if step == pause:  # tests only: hold still here until killed
            print(f"paused at {step} ({ROTATION_PAUSE})", file=sys.stderr, flush=True)
            while True:
                time.sleep(60)

    return Vault(_server(args).state_dir, os.environ, checkpoint=checkpoint)


def _secret(args: argparse.Namespace) -> int:
    from pathlib import Path

    vault = _vault(args)
    action: str = args.secret_command
    if action == "set":
        created = vault.set(args.name, _read_secret_value(args.name))
        print(
            f"{'stored' if created else 'replaced'} secret '{args.name}' in {vault.path}; "
            f'the config reads it as "vault:{args.name}" (restart farmbot to use it)'
        )
    elif action == "rm":
        vault.remove(args.name)
        print(f"removed secret '{args.name}' from {vault.path}")
    elif action == "list":
        source, infos = vault.listing()
        key = f"id {source.id}" if source.id else "not found" if infos else "none yet"
        print(f"vault: {vault.path} (key: {source.where}, {key})")
        if not infos:
            print(f"no secrets; add one with `{_farmbot(args)} secret set NAME`")
        for info in infos:
            print(f"  {info.name:<32} created {info.created}  updated {info.updated}")
    else:
        new_key_file = Path(args.new_key_file).expanduser() if args.new_key_file else None
        done = vault.rotate_key(new_key_file)
        print(
            f"re-encrypted {done.secrets} secret(s) under a new key (id {done.new_id}, was "
            f"{done.old_id}); the key is in {done.key_file}"
        )
        if new_key_file is not None:
            print(
                "install it where the old key was ($FARMBOT_VAULT_KEY or the credential), "
                "then restart farmbot: the old key no longer opens the vault"
            )
    return 0


def _read_secret_value(name: str) -> str:
    """From the terminal without echo, or all of stdin (less one final newline)."""
    from farmbot.errors import VaultError

    if sys.stdin.isatty():
        import getpass

        try:
            return getpass.getpass(f"value of secret {name} (not shown): ")
        except EOFError:
            return ""
    try:
        value = sys.stdin.buffer.read().decode()
    except UnicodeDecodeError:
        raise VaultError(f"secret '{name}': the value on stdin is not UTF-8 text") from None
    for end in ("\r\n", "\n"):
        if value.endswith(end):
            return value[: -len(end)]
    return value


# -- talking to agents ------------------------------------------------------------------


def _hooks_install(
    config: Config, path: Path, agent: str | None, *, http: bool, args: argparse.Namespace
) -> int:
    import shlex

    from farmbot import localkey
    from farmbot.adapters.hooks import hook_token
    from farmbot.errors import CommandError
    from farmbot.hooks_install import default_hook_command, install_hooks, write_token_file

    workdir = path.expanduser().resolve()
    agent = agent or workdir.name
    key = localkey.read(config.server.state_dir)
    if key is None:
        raise CommandError(
            f"no local key at {localkey.path(config.server.state_dir)}; "
            f"run `{_farmbot(args)} start` once to create it"
        )
    token = hook_token(key, agent)
    url = config.server.url
    if http:
        # Claude Code makes the request itself: the token is in the settings file (0600),
        # on no command line.
        written = install_hooks(
            workdir, agent=agent, http_url=f"{url}/hooks/claude/{agent}?token={token}"
        )
    else:
        # Self-contained: an agent farmbot did not spawn has none of the FARMBOT_* variables.
        # The token goes in a file of its own (0600, kept out of git): a command line is
        # readable by every user of the machine (/proc/<pid>/cmdline).
        token_file = write_token_file(workdir, token)
        spool_dir = str(config.server.state_dir / "spool")
        options = {
            "--agent": agent,
            "--url": url,
            "--token-file": str(token_file),
            "--spool-dir": spool_dir,
        }
        command = default_hook_command() + "".join(
            f" {name} {shlex.quote(value)}" for name, value in options.items()
        )
        written = install_hooks(workdir, agent=agent, command=command)
    kind = "http" if http else "command"
    print(f"installed farmbot {kind} hooks for agent '{agent}' in {written} (reporting to {url})")
    return 0


def _attach(config: Config, agent: str, farmbot: str) -> int:
    import shutil
    import subprocess

    from farmbot.config.reader import closest
    from farmbot.errors import FarmbotError

    tmux = shutil.which("tmux")
    if tmux is None:
        raise FarmbotError("tmux is not installed")
    socket = config.tmux.socket
    found = subprocess.run(
        [tmux, "-L", socket, "has-session", "-t", f"={agent}"], capture_output=True, check=False
    )
    if found.returncode != 0:
        listed = subprocess.run(
            [tmux, "-L", socket, "list-sessions", "-F", "#{session_name}"],
            capture_output=True,
            text=True,
            check=False,
        )
        close = closest(agent, listed.stdout.split()) if listed.returncode == 0 else None
        hint = f"; did you mean '{close}'?" if close else f" (see `{farmbot} cmd /agents`)"
        raise FarmbotError(f"no agent session '{agent}'{hint}")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise FarmbotError(
            f"attach needs a terminal, and this is not one; from a script, read the screen "
            f'with `{farmbot} cmd "/tail {agent}"`'
        )
    os.execv(tmux, [tmux, "-L", socket, "attach-session", "-t", f"={agent}"])
    return 0  # not reached


def _print_reply(reply: dict[str, Any]) -> None:
    print(reply.get("text", ""))
    if reply.get("pre"):
        print(reply["pre"])
    for row in reply.get("buttons") or []:
        print("  " + "   ".join(f"[{b['label']}: {b['command']}]" for b in row))


def _print_status(status: dict[str, Any], pid: int | None = None) -> None:
    from farmbot.messages import ago

    now = status.get("now", time.time())
    up = ago(now - status.get("started_at", now))
    print(f"farmbot {status.get('version')} — up {up}" + (f", pid {pid}" if pid else ""))
    projects = status.get("projects") or []
    print(
        "projects: "
        + (
            ", ".join(f"{p['name']}{'' if p['active'] else ' (deactivated)'}" for p in projects)
            or "none"
        )
    )
    nodes = status.get("nodes") or []  # several machines on one database
    unheard = {n["name"]: n["health"] for n in nodes if n["health"] != "up"}
    for node in nodes:
        notes = [
            n for n in ("leader" if node["leader"] else "", "here" if node["here"] else "") if n
        ]
        count = node["agents"]
        print(
            f"node {node['name']}: {node['health']}, {count} agent{'' if count == 1 else 's'}"
            + (f" ({', '.join(notes)})" if notes else "")
        )
    agents = status.get("agents") or []
    if not agents:
        print("agents: none")
    for agent in agents:
        since = ago(now - agent["state_since"])
        state = agent["state"]
        if agent.get("node") in unheard and state not in ("dead", "stopped"):
            state = f"node {unheard[agent['node']]}"
        where = f"{agent['project']}@{agent['node']}" if nodes else agent["project"]
        print(f"  {agent['id']:<24} {state:<9} {since:>6}  {where}  {agent['state_reason']}")
    gates = status.get("gates") or []
    print(f"pending gates: {len(gates)}")
    for gate in gates:
        print(f"  #{gate['id']} {gate['title']}")
