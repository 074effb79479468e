"""The served bot keeps its Web API connections alive: one connection carries call after
call, instead of a new TCP connection (a TLS handshake against slack.com) per message."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import SecretStr

from bot.settings import Settings
from tests.e2e.harness import eventually, serving
from tests.fakes.slack_api import FakeSlackApi

TOKEN, LEADS = "leads-token", "C0LEADS"


def cards_reach(api: FakeSlackApi, count: int) -> Callable[[], bool]:
    return lambda: len(api.messages(LEADS)) >= count


async def test_cards_posted_one_after_another_reuse_one_connection() -> None:
    async with FakeSlackApi(token="xoxb-test") as api:
        settings = Settings(
            slack_bot_token=SecretStr("xoxb-test"),
            slack_signing_secret=SecretStr("connections-secret"),
            slack_api_url=api.base_url,
            slack_leads_channel=LEADS,
            salesbot_leads_token=SecretStr(TOKEN),
        )
        async with serving(api, settings) as client:
            for number in range(1, 4):
                lead = {
                    "name": f"Prospect {number}",
                    "email": f"p{number}@example.com",
                    "message": "We are 40 people and want a demo next week.",
                }
                created = await client.post(
                    "/leads", json=lead, headers={"Authorization": f"Bearer {TOKEN}"}
                )
                assert created.status in (200, 201)
                await eventually(cards_reach(api, number), f"lead card {number}")
    posts = [peer for method, peer in api.peers if method == "chat.postMessage"]
    assert len(posts) >= 3
    assert len(set(posts)) == 1, f"{len(set(posts))} connections for {len(posts)} posts"
