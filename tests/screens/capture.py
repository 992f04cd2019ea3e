"""Re-capture the screen corpus: drive each CLI through its states and save every screen.

    .venv/bin/python tests/screens/capture.py                 # claude, codex and demo
    .venv/bin/python tests/screens/capture.py codex           # one CLI
    .venv/bin/python tests/screens/capture.py claude --only dialog

Each scenario starts the CLI in a private tmux server (200x50, like farmbot's panes) against
the fakes in ``tests/fakes`` and writes ``tests/screens/<cli>/<version>/<expected>--<what>.txt``
(``capture-pane -p -J``). The working directory is always ``/tmp/farmbot-screens/<cli>/work``
so the captures do not differ by a random path. See ``tests/screens/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.screens import claude_scenes as cl
from tests.screens import codex_scenes as cx
from tests.screens import other_scenes as other

Scenario = Callable[[None], Awaitable[None]]
SCENARIOS: dict[str, dict[str, Scenario]] = {
    "claude": {
        "startup": cl.claude_startup,
        "busy": cl.claude_busy,
        "dialog": cl.claude_dialog,
        "deny": cl.claude_deny,
        "tools": cl.claude_tools,
        "hooks": cl.claude_hooks,
        "errors": cl.claude_errors,
        "usage-limit": cl.claude_usage_limit,
        "exit": cl.claude_exit,
    },
    "codex": {
        "startup": cx.codex_startup,
        "busy": cx.codex_busy,
        "dialog": cx.codex_dialog,
        "hooks": cx.codex_hooks,
        "errors": cx.codex_errors,
        "exit": cx.codex_exit,
    },
    "demo": {"all": other.demo_all},
    "aider": {"all": other.aider_all},
}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "clis", nargs="*", default=["claude", "codex", "demo"], choices=list(SCENARIOS)
    )
    parser.add_argument("--only", action="append", help="scenario names to run (repeatable)")
    args = parser.parse_args()
    failed = 0
    for cli in args.clis:
        for name, scenario in SCENARIOS[cli].items():
            if args.only and name not in args.only:
                continue
            print(f"{cli}/{name}")
            try:
                await asyncio.wait_for(scenario(None), timeout=180)
            except Exception as exc:  # report and go on with the other scenarios
                failed += 1
                print(f"  FAILED: {type(exc).__name__}: {exc}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
