"""The package as pipx installs it: a wheel built from the tree, not the editable checkout.

An editable install reads migrations, the console page and the example config straight
from ``src/``, so a file left out of the wheel's package data would only show on a user's
machine. Here the wheel is built offline (``python -m build --no-isolation``), its
contents are checked against the tree, and the installed copy serves: it migrates a new
database, answers /healthz and shows the console page.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

from tests.daemon import free_port

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "src" / "farmbot"


def build_wheel(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(REPO / "src", tree / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tree / name)
    out = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--wheel", "-o", str(out), str(tree)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = out.glob("farmbot-*-py3-none-any.whl")
    return wheel


def data_files() -> set[str]:
    """Every file of the package that is not Python: what the wheel must carry."""
    found = set()
    for path in PACKAGE.rglob("*"):
        if (
            path.is_file()
            and path.suffix not in {".py", ".pyc"}
            and "__pycache__" not in path.parts
        ):
            found.add("farmbot/" + path.relative_to(PACKAGE).as_posix())
    return found


def test_the_wheel_carries_every_file_and_the_installed_copy_serves(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())

    assert data_files() <= names, sorted(data_files() - names)
    sources = {"farmbot/" + p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    assert sources <= names, sorted(sources - names)
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "farmbot = farmbot.entry:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

    target = tmp_path / "installed"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARMBOT_")}
    env["PYTHONPATH"] = str(target)  # ahead of the editable checkout
    where = subprocess.run(
        [sys.executable, "-c", "import farmbot; print(farmbot.__file__)"],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=True,
    )  # fmt: skip
    assert where.stdout.strip() == str(target / "farmbot" / "__init__.py")

    port = free_port()
    config = tmp_path / "farmbot.toml"
    config.write_text(
        f'[server]\nport = {port}\nstate_dir = "state"\n\n[tmux]\nsocket = "pkg-{port}"\n'
    )
    daemon = subprocess.Popen(
        [sys.executable, "-m", "farmbot", "--config", str(config), "serve"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=env, cwd=tmp_path, text=True,
    )  # fmt: skip
    try:
        page = _get(f"http://127.0.0.1:{port}/", daemon)
        assert "<title>farmbot" in page
        assert '"ok": true' in _get(f"http://127.0.0.1:{port}/healthz", daemon)
        example = subprocess.run(
            [sys.executable, "-m", "farmbot", "init", str(tmp_path / "new.toml")],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=30, check=False,
        )  # fmt: skip
        assert example.returncode == 0, example.stderr
        assert (tmp_path / "new.toml").read_text() == (REPO / "config" / "farmbot.toml").read_text()
    finally:
        daemon.terminate()
        _, err = daemon.communicate(timeout=15)
        subprocess.run(["tmux", "-L", f"pkg-{port}", "kill-server"], capture_output=True)
    assert daemon.returncode == 0, err


def _get(url: str, daemon: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 20
    while True:
        assert daemon.poll() is None, daemon.communicate()[1]
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return str(answer.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
