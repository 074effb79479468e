"""The HTTP server: one aiohttp application for every platform and the operator routes.

POST /slack/events   Slack events, slash commands and interactivity (when configured)
POST /api/messages   Microsoft Teams activities (when configured)
GET  /, /playground/…  the playground (local only, or behind SALESBOT_PLAYGROUND_TOKEN)
GET  /healthz        the process is alive
GET  /readyz         the store is open and the outbox worker is running
GET  /metrics        Prometheus text format
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from adapters.playground.web import add_routes as add_playground_routes
from bot.service import Service
from domain import GENERATOR

MAX_BODY_BYTES = 1024 * 1024
SHUTDOWN_TIMEOUT_S = 10.0
"""On SIGTERM/SIGINT, how long `salesbot serve` lets the requests under way finish after it
stops listening (aiohttp's default is 60 s: longer than most orchestrators wait)."""
SERVICE_KEY = web.AppKey("service", Service)


def build_app(service: Service) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[SERVICE_KEY] = service

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await service.start()
        yield
        await service.stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    if service.lead_feed is not None:
        service.lead_feed.add_routes(app)
    if service.playground is not None:
        add_playground_routes(
            app,
            service.playground,
            service.handle,
            clock=service.clock,
            action_key=service.action_key,
            access=service.playground_access,
        )
    if service.teams is not None:
        app.router.add_post("/api/messages", service.teams.handle_request)
    if service.slack is not None and service.slack.accepts_http:
        app.router.add_post("/slack/events", service.slack.handle_request)
    return app


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "generator": GENERATOR})


async def readyz(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    if not service.ready:
        return web.json_response({"status": "starting"}, status=503)
    try:
        pending = await service.store.pending_count()
    except Exception:
        return web.json_response({"status": "store unavailable"}, status=503)
    return web.json_response(
        {"status": "ready", "outbox_pending": pending, "policy": service.policy.short_version}
    )


async def metrics(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    await service.refresh_gauges()
    body = generate_latest(service.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
