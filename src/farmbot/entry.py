"""The ``farmbot`` console script: route ``farmbot hook`` before anything else loads.

``farmbot hook`` runs on every tool call of every agent, so its path loads only
``farmbot.hook`` -- not the CLI, whose source would otherwise be compiled on every call
where no bytecode cache is written (``PYTHONDONTWRITEBYTECODE``).
"""

import sys


def main() -> int:
    args = sys.argv[1:]
    rest = args
    if rest[:1] == ["--config"]:
        rest = rest[2:]
    elif rest[:1] and rest[0].startswith("--config="):
        rest = rest[1:]
    if rest[:1] == ["hook"]:
        from farmbot.hook import main as hook

        return hook(rest[1:])
    from farmbot.cli import main as cli

    return cli(args)
