"""The ``farmbot`` console script: route ``farmbot hook`` before anything else loads.

``farmbot hook`` runs on every tool call of every agent, so its path loads only
``farmbot.hook`` -- not the CLI, whose source would otherwise be compiled on every call
where no bytecode cache is written (``PYTHONDONTWRITEBYTECODE``).
"""

import sys


def main() -> int:
    args = sys.argv[1:]
    index = _command_index(args)
    if index is not None and args[index] == "hook":
        from farmbot.hook import main as hook

        return hook(args[index + 1 :])
    if index is not None and args[index] == "demo-agent":  # its own options, untouched
        from farmbot.demo_agent import main as demo_agent

        return demo_agent(args[index + 1 :])
    from farmbot.cli import main as cli

    return cli(args)


def _command_index(args: list[str]) -> int | None:
    """Where the subcommand is, past the global ``--config PATH`` options."""
    i = 0
    while i < len(args):
        if args[i] == "--config":
            i += 2
        elif args[i].startswith("--config="):
            i += 1
        else:
            return i
    return None
