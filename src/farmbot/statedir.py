"""The state directory: farmbot's files, readable by farmbot's own Unix user only.

It holds the database (prompts, audit rows, chat ids), the vault and its key, the local
key, the log and builders' worktrees. An existing directory that others may enter or read
(0755, as a plain ``mkdir`` makes it) is tightened to 0700 at start, with a warning; when
agents run as other Unix users (``run_as``) it is 0711 instead, so they can reach their
worktrees and spool below it by name while listing and reading nothing else.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE = 0o700
TRAVERSABLE = 0o711  # others may pass through to a path they know; never list or read


def prepare(state_dir: Path, *, traversable: bool = False) -> str | None:
    """Create ``state_dir`` (0700) or tighten an existing one; the warning, if any."""
    wanted = TRAVERSABLE if traversable else PRIVATE
    state_dir.mkdir(mode=wanted, parents=True, exist_ok=True)
    mode = stat.S_IMODE(state_dir.stat().st_mode)
    if mode & ~wanted & 0o777 == 0:
        if traversable and mode != wanted:
            os.chmod(state_dir, wanted)
        return None
    os.chmod(state_dir, wanted)
    warning = (
        f"the state directory {state_dir} was mode {mode:04o}: other users of this machine "
        f"could read farmbot's files in it; it is {wanted:04o} now"
    )
    log.warning("%s", warning)
    return warning
