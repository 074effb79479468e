"""The HTTP server: one aiohttp application for every surface and the operator routes.

Each configured surface mounts its own routes (`bot.surfaces`), e.g.
POST /slack/events   Slack events, slash commands and interactivity (when configured)
GET  /slack/install, /slack/oauth_redirect   "Add to Slack" (with SLACK_CLIENT_ID and SLACK_CLIENT_SECRET)
POST /api/messages   Microsoft Teams activities (when configured)
POST /leads, …       the lead feed
GET  /, /playground/…  the playground (local only, or behind SALESBOT_PLAYGROUND_TOKEN)
and the operator routes are:
GET  /healthz        the process is alive
GET  /readyz         the store takes writes and the outbox worker is running (else 503)
GET  /metrics        Prometheus text format

Every request passes `request_log` first: one log line per request (method, route pattern,
status, milliseconds) and the request figures in `/metrics`. A handler's unexpected error
is answered 500 in one JSON line and logged by type and place only (its message may quote
the request).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.logs import FIELDS_ATTRIBUTE, log_context, origin
from bot.service import Service
from domain import GENERATOR

MAX_BODY_BYTES = 1024 * 1024
SHUTDOWN_TIMEOUT_S = 10.0
"""On SIGTERM/SIGINT, how long `salesbot serve` lets the requests under way finish after it
stops listening (aiohttp's default is 60 s: longer than most orchestrators wait)."""
SERVICE_KEY = web.AppKey("service", Service)
UNMATCHED = "unmatched"
"""The route label of a request no route matched (404, 405): never the raw path, which
would make a metric series per scanned URL."""

log = logging.getLogger(__name__)


def build_app(service: Service) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[request_log])
    app[SERVICE_KEY] = service

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await service.start()
        yield
        await service.stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    for surface in service.surfaces:
        if surface.mount is not None:
            surface.mount(app)
    return app


def route_of(request: web.Request) -> str:
    """The route pattern that matched ("/leads/{lead_id}"), never the path itself."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def request_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per request and its figures. The route is the pattern, and the query string
    is never logged (the playground's token travels there)."""
    started = time.perf_counter()
    route = route_of(request)
    status = 500
    websocket = False
    # A request id only ties a request's log lines together; it guards nothing, so the
    # process's PRNG serves (no `os.urandom` system call per request, as `secrets` made).
    with log_context(request_id=f"{random.getrandbits(48):012x}"):
        try:
            response = await handler(request)
            status = response.status
            websocket = isinstance(response, web.WebSocketResponse)
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away first (nginx's "client closed request")
            raise
        except Exception as exc:
            log.error("%s %s failed: %s", request.method, route, origin(exc))
            return web.json_response({"error": "internal error; see the server log"}, status=500)
        finally:
            seconds = time.perf_counter() - started
            service = request.app[SERVICE_KEY]
            service.metrics.observe_request(
                request.method, route, status, seconds, timed=not websocket
            )
            log.info(
                "%s %s %d %.1f ms",
                request.method,
                route,
                status,
                seconds * 1000,
                extra={
                    FIELDS_ATTRIBUTE: {
                        "method": request.method,
                        "route": route,
                        "status": status,
                        "latency_ms": round(seconds * 1000, 2),
                    }
                },
            )


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "generator": GENERATOR})


async def readyz(request: web.Request) -> web.Response:
    """503 with the reason while the service starts or stops, and while the store refuses
    writes (a probe write at most every few seconds): a load balancer then sends the
    platform's requests elsewhere instead of to a bot that cannot record them."""
    service = request.app[SERVICE_KEY]
    if not service.ready:
        reason = "starting or stopping"
        return web.json_response({"status": "starting", "reason": reason}, status=503)
    problem = await service.store_problem()
    if problem is not None:
        return web.json_response({"status": "not ready", "reason": problem}, status=503)
    try:
        pending = await service.store.pending_count()
    except Exception as exc:
        reason = f"the store cannot be read ({type(exc).__name__})"
        return web.json_response({"status": "not ready", "reason": reason}, status=503)
    return web.json_response(
        {
            "status": "ready",
            "outbox_pending": pending,
            "policy": service.policy.short_version,
            **service.platform_status(),
        }
    )


async def metrics(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    await service.refresh_gauges()
    body = generate_latest(service.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
