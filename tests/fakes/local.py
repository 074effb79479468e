"""Starting a fake service: an aiohttp app on 127.0.0.1, on a port the OS picks."""

from __future__ import annotations

from aiohttp import web


async def serve_locally(app: web.Application) -> tuple[web.AppRunner, int]:
    """The running app (clean it up with `runner.cleanup()`) and its port."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]
