"""Serving a fake platform: an aiohttp app on loopback, as every fake here does."""

from __future__ import annotations

from aiohttp import web


async def listen(app: web.Application, port: int = 0) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on 127.0.0.1:``port`` (0: any free one); the runner and the port.

    A handler is cancelled when its client leaves (a long poll, a held hook), and
    ``runner.cleanup()`` waits at most a second for those still running.
    """
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, int(runner.addresses[0][1])
