"""The HTTP server's operator routes, on a memory store with no platform configured."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.policy_loader import load_policy
from bot.server import build_app
from bot.service import build_service
from bot.settings import Settings
from storage.memory import MemoryStore


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    service = build_service(
        Settings(), load_policy("default"), MemoryStore(), clock=lambda: 1_790_000_000_000
    )
    async with TestClient(TestServer(build_app(service), host="127.0.0.1")) as test_client:
        yield test_client


async def test_healthz_says_the_process_is_alive(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json())["status"] == "ok"


async def test_readyz_reports_ready_with_the_outbox_backlog(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.get("/readyz")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ready"
    assert body["outbox_pending"] == 0


async def test_metrics_are_in_prometheus_text_format(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.get("/metrics")
    assert response.status == 200
    text = await response.text()
    assert 'salesbot_outbox_pending{platform="playground"} 0.0' in text
    assert "# TYPE salesbot_inbounds_total counter" in text


async def test_slack_events_is_not_served_when_slack_is_not_configured(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.post("/slack/events", data=b"{}")
    assert response.status in (404, 405)
