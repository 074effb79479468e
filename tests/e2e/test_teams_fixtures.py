"""Recorded Teams activities (from Microsoft's documentation), posted as they are to the real
endpoint — only `serviceUrl` points at the fake connector on 127.0.0.1: every one is
acknowledged, a message gets its reply, the bot's install is remembered, and a click on a
card another app wrote is answered with a message, never an error."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.settings import Settings
from tests.e2e.harness import serving
from tests.fakes.teams_connector import FakeConnector

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "teams"
MICROSOFT = "72f988bf-86f1-41af-91ab-2d7cd011db47"  # the tenant of most of the fixtures


def recorded(name: str, service_url: str) -> dict[str, Any]:
    activity: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    activity.pop("_source", None)
    activity["serviceUrl"] = service_url
    return activity


@pytest.fixture
async def bot() -> AsyncIterator[tuple[TestClient[web.Request, web.Application], FakeConnector]]:
    async with FakeConnector(tenant_id=MICROSOFT) as connector:
        settings = Settings(teams_allow_unauthenticated=True, teams_app_tenant_id=MICROSOFT)
        async with serving(None, settings) as client:
            yield client, connector


@pytest.mark.parametrize(
    "name",
    [
        "teams_message_personal.json",
        "teams_message_channel_mention.json",
        "teams_message_action_submit.json",
        "teams_invoke_adaptivecard_action.json",
        "teams_conversation_update_bot_added_personal.json",
        "teams_conversation_update_bot_added_team.json",
    ],
)
async def test_a_recorded_activity_is_acknowledged(
    bot: tuple[TestClient[web.Request, web.Application], FakeConnector], name: str
) -> None:
    client, connector = bot
    response = await client.post("/api/messages", json=recorded(name, connector.base_url))
    assert response.status == 200


async def test_a_recorded_personal_message_is_answered_in_that_chat(
    bot: tuple[TestClient[web.Request, web.Application], FakeConnector],
) -> None:
    client, connector = bot
    activity = recorded("teams_message_personal.json", connector.base_url)
    await client.post("/api/messages", json=activity)
    (reply,) = await connector.wait_for_posts(activity["conversation"]["id"], 1)
    assert reply["type"] == "message"
    assert reply["text"]


async def test_a_recorded_channel_mention_is_answered_in_its_thread(
    bot: tuple[TestClient[web.Request, web.Application], FakeConnector],
) -> None:
    client, connector = bot
    activity = recorded("teams_message_channel_mention.json", connector.base_url)
    await client.post("/api/messages", json=activity)
    thread = activity["conversation"]["id"]  # `…@thread.tacv2;messageid=1677621221150`
    (reply,) = await connector.wait_for_posts(thread, 1)
    assert "SalesBot" not in reply["text"]  # the mention was not taken as the prospect's words


async def test_a_click_on_another_apps_card_is_answered_with_a_message_not_an_error(
    bot: tuple[TestClient[web.Request, web.Application], FakeConnector],
) -> None:
    client, connector = bot
    response = await client.post(
        "/api/messages", json=recorded("teams_invoke_adaptivecard_action.json", connector.base_url)
    )
    answer = await response.json()
    expected = json.loads((FIXTURES / "adaptive_card_action_invoke_response.json").read_text())
    assert answer["statusCode"] == 200
    assert answer["type"] == expected["message_toast"]["type"]
    assert connector.all_posts() == []
