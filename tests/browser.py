"""A real headless Chromium, driven through selenium, on a page served by a real daemon.

Selenium blocks, and the daemon runs on the test's event loop: every call goes through
``asyncio.to_thread`` so the daemon keeps answering while the browser waits for it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

from tests.helpers import retry_until

T = TypeVar("T")

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # The machine has no network: without these Chromium floods refused connections.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def unavailable(reason: str) -> NoReturn:
    """Skip on a developer's machine; in CI (``CI=true``) a missing browser is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests must run in CI: {reason}")
    pytest.skip(reason)


def start_chromium() -> Iterator[Any]:
    """A fresh headless Chromium (its own profile directory), quit afterwards."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed (pip install -e '.[test]')")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        unavailable(
            "chromium or chromedriver is not installed (apt-get install chromium chromium-driver)"
        )
    profile = tempfile.mkdtemp(prefix="farmbot-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """The browser, seen from an async test."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def js(self, script: str, *args: Any) -> Any:
        return await self.call(self.driver.execute_script, script, *args)

    async def open(
        self, url: str, width: int = 1280, height: int = 900, *, touch: bool = False
    ) -> None:
        """Open ``url`` in a viewport of ``width`` × ``height`` CSS pixels (a touch screen
        without a mouse or keyboard when ``touch``)."""
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}
        cdp = self.driver.execute_cdp_cmd
        await self.call(cdp, "Emulation.setDeviceMetricsOverride", metrics)
        await self.call(cdp, "Emulation.setTouchEmulationEnabled", {"enabled": touch})
        await self.call(self.driver.get, "about:blank")
        await self.call(self.driver.get_log, "browser")  # forget the last test's messages
        await self.call(self.driver.get, url)

    async def until(self, script: str, *args: Any, timeout: float = 10, message: str = "") -> Any:
        """Poll ``script`` (a function body that returns) until it returns something truthy."""
        return await retry_until(
            lambda: self.js(script, *args), timeout=timeout, interval=0.1, message=message or script
        )

    async def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return await self.call(self.driver.find_element, By.CSS_SELECTOR, css)

    async def console_messages(self) -> list[str]:
        entries = await self.call(self.driver.get_log, "browser")
        return [str(e.get("message", "")) for e in entries]

    async def screenshot(self, path: Path) -> None:
        await self.call(self.driver.save_screenshot, str(path))
