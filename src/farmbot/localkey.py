"""The local key: whoever can read it owns this farmbot (the web console and the CLI).

It lives in ``state_dir/local-key`` (mode 0600), created on the daemon's first start.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from farmbot.errors import FarmbotError

KEY_FILE = "local-key"


def path(state_dir: Path) -> Path:
    return state_dir / KEY_FILE


def ensure(state_dir: Path) -> str:
    """The local key, created on first use."""
    return ensure_new(state_dir)[0]


def ensure_new(state_dir: Path) -> tuple[str, bool]:
    """The local key, and whether it was created just now (a first start)."""
    file = path(state_dir)
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = read(state_dir)
        if key is None or len(key) < 16:
            raise FarmbotError(f"{file} is empty or damaged; delete it and start again") from None
        if file.stat().st_mode & 0o077:
            os.chmod(file, 0o600)
        return key, False
    key = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key, True


def login_link(url: str, key: str) -> str:
    """The link that logs a browser in to the console (the page keeps the key and takes it
    out of the address bar)."""
    return f"{url}/#key={key}"


def read(state_dir: Path) -> str | None:
    """The local key, or None when farmbot has never run with this state directory."""
    try:
        return path(state_dir).read_text().strip()
    except FileNotFoundError:
        return None
