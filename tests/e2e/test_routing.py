"""Owners on the platforms (`[routing]`): a lead's card and a ticket's card name the owner
and their posts mention them — on Slack (fake Web API) as `<@U…>`, on Teams (fake
connector) as a user mention — and a rep who is neither the owner nor a manager is refused a
fresh routed ticket and told who owns it, while a manager (`SALESBOT_MANAGERS`) claims it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier

from bot.policy_loader import load_policy
from bot.settings import Settings
from domain.policy import Policy
from domain.routing_config import RoutingConfig
from storage.sqlite import SqliteStore
from tests.e2e import test_teams as teams_e2e
from tests.e2e.harness import eventually, serving
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.teams_connector import FakeConnector, thread_id

SECRET, TOKEN, ACTION_SECRET = "slack-secret-routing", "leads-token", "routing-action-secret"
TEAM, BOT = "T0001", "UBOT"
LEADS, HANDOFF = "C0LEADS", "C0HANDOFF"
OWNER, REP, BOSS = "U0OLIVE", "U0REP", "U0BOSS"
CONTRACT = "Can we cancel the contract and get a refund?"


def routed_policy(owner: str, name: str) -> Policy:
    """The default policy with every conversation routed to `owner` (fresh for 10 min)."""
    routing = RoutingConfig(spread=(owner,), names={owner: name}, owner_exclusive_ms=600_000)
    return load_policy("default").model_copy(update={"routing": routing})


def signed(body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    signature = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": str(signature)}


def _ours(api: FakeSlackApi, channel: str) -> list[dict[str, Any]]:
    return [m for m in api.messages(channel) if m.get("user") == BOT]


def _button(message: dict[str, Any], action: str) -> dict[str, Any]:
    return next(
        element
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == action
    )


async def test_slack_names_and_mentions_the_owner_and_keeps_a_fresh_ticket_theirs(
    tmp_path: Path,
) -> None:
    async with FakeSlackApi(token="xoxb-test", team_id=TEAM, bot_user_id=BOT) as api:
        for user, name in ((OWNER, "olive"), (REP, "rae"), (BOSS, "morgan")):
            api.add_user(user, name=name)
        settings = Settings(
            slack_bot_token=SecretStr("xoxb-test"),
            slack_signing_secret=SecretStr(SECRET),
            slack_api_url=api.base_url,
            slack_leads_channel=LEADS,
            slack_handoff_channel=HANDOFF,
            salesbot_leads_token=SecretStr(TOKEN),
            salesbot_managers=(BOSS,),
            salesbot_action_secret=SecretStr(ACTION_SECRET),
        )
        store = await SqliteStore.open(tmp_path / "routing.db")
        try:
            async with serving(
                api, settings, store, policy=routed_policy(OWNER, "Olive Owner")
            ) as client:
                lead = {
                    "name": "Priya Shah",
                    "email": "priya@northwind.example",
                    "message": CONTRACT,
                }
                created = await client.post(
                    "/leads", json=lead, headers={"Authorization": f"Bearer {TOKEN}"}
                )
                assert created.status in (200, 201)

                await eventually(lambda: bool(_ours(api, LEADS)), "the lead card")
                card = _ours(api, LEADS)[0]
                assert card["text"].startswith(f"<@{OWNER}> ")  # the owner is notified
                assert "Olive Owner" in json.dumps(card["blocks"])  # the card's Owner field

                await eventually(lambda: bool(_ours(api, HANDOFF)), "the ticket card")
                ticket = _ours(api, HANDOFF)[0]
                assert ticket["text"].startswith(f"<@{OWNER}> ")
                assert "Olive Owner" in json.dumps(ticket["blocks"])

                async def claim(user: str) -> None:
                    payload = {
                        "type": "block_actions",
                        "user": {"id": user, "team_id": TEAM, "name": user.lower()},
                        "team": {"id": TEAM},
                        "api_app_id": "A0001",
                        "trigger_id": f"trigger-{time.monotonic_ns()}",
                        "channel": {"id": HANDOFF},
                        "container": {
                            "type": "message",
                            "message_ts": ticket["ts"],
                            "channel_id": HANDOFF,
                        },
                        "message": ticket,
                        "actions": [
                            {
                                "type": "button",
                                "action_id": "claim_ticket",
                                "block_id": "b",
                                "value": _button(ticket, "claim_ticket")["value"],
                                "action_ts": str(time.time()),
                            }
                        ],
                    }
                    body = urlencode({"payload": json.dumps(payload)}).encode()
                    headers = signed(body) | {"Content-Type": "application/x-www-form-urlencoded"}
                    response = await client.post("/slack/events", data=body, headers=headers)
                    assert response.status == 200

                await claim(REP)
                # A lead's private notices go to the rep in the lead's thread.
                await eventually(
                    lambda: any(
                        "routed to Olive Owner" in e.get("text", "") and e.get("user") == REP
                        for e in api.ephemerals(LEADS)
                    ),
                    "the rep told who owns the ticket",
                )
                assert "Claimed by" not in json.dumps(_ours(api, HANDOFF))

                await claim(BOSS)  # a manager may
                await eventually(
                    lambda: "Claimed by" in json.dumps(_ours(api, HANDOFF)),
                    "the manager's claim",
                )
        finally:
            await store.close()


OWNER_AAD = "0f0e0d0c-0b0a-4909-8807-060504030201"


async def test_teams_mentions_the_owner_on_the_ticket_and_refuses_a_rep_while_fresh(
    tmp_path: Path,
) -> None:
    connector_members = dict(teams_e2e.ROSTER)
    async with FakeConnector(members=connector_members, tenant_id=teams_e2e.TENANT) as connector:
        store = await SqliteStore.open(tmp_path / "teams-routing.db")
        try:
            settings = teams_e2e.local_settings(salesbot_managers=(teams_e2e.BOSS.aad,))
            policy = routed_policy(OWNER_AAD, "Olive Owner")
            async with serving(None, settings, store, policy=policy) as client:
                thread = thread_id(teams_e2e.SHARED, "1700000000900")
                activity = teams_e2e.message(
                    thread, teams_e2e.PROSPECT, CONTRACT, service_url=connector.base_url
                )
                assert (await client.post("/api/messages", json=activity)).status == 200
                (ticket,) = await connector.wait_for_posts(teams_e2e.HANDOFF, 1)
                assert ticket["text"].startswith("<at>Olive Owner</at>")
                mentions = [e for e in ticket.get("entities", []) if e.get("type") == "mention"]
                assert mentions == [
                    {
                        "type": "mention",
                        "text": "<at>Olive Owner</at>",
                        "mentioned": {"id": OWNER_AAD, "name": "Olive Owner"},
                    }
                ]
                assert "Olive Owner" in json.dumps(teams_e2e.card_of(ticket))  # Owner field

                data = teams_e2e.action_data(teams_e2e.card_of(ticket), "claim_ticket")
                refused = await client.post(
                    "/api/messages",
                    json=teams_e2e.invoke(
                        teams_e2e.HANDOFF,
                        teams_e2e.REP,
                        "claim_ticket",
                        data,
                        service_url=connector.base_url,
                    ),
                )
                assert "routed to Olive Owner" in (await refused.json())["value"]

                claimed = await client.post(
                    "/api/messages",
                    json=teams_e2e.invoke(
                        teams_e2e.HANDOFF,
                        teams_e2e.BOSS,
                        "claim_ticket",
                        data,
                        service_url=connector.base_url,
                    ),
                )
                assert claimed.status == 200
                assert "Claimed by Morgan Boss" in json.dumps(await claimed.json())
        finally:
            await store.close()
