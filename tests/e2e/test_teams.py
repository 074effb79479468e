"""Teams end to end: Bot Framework activities posted to `/api/messages` of the real server,
through the runtime and outbox, to a fake connector on 127.0.0.1 (the activities'
`serviceUrl`) that receives what the bot posts. Local unauthenticated mode (loopback only);
the token checks have their own tests at the end."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from adapters.teams.connector import NoToken
from bot.settings import Settings, SettingsError
from storage.sqlite import SqliteStore
from tests.e2e.harness import eventually, outbox_drained, serving
from tests.fakes.teams_connector import FakeConnector, thread_id
from tests.teams.keys import LocalIssuer

TENANT, OTHER_TENANT = "tenant-0001", "tenant-acme"
BOT = "28:app-0001"
SHARED = "19:shared@thread.tacv2"  # a shared channel with a prospect from another tenant
HANDOFF = "19:handoff@thread.tacv2"
LEADS = "19:leads@thread.tacv2"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "teams"


@dataclass(frozen=True)
class Person:
    teams_id: str
    aad: str
    name: str
    tenant: str = TENANT


REP = Person("29:rae", "aad-rae", "Rae Rep")
BOSS = Person("29:morgan", "aad-morgan", "Morgan Boss")
GUEST = Person("29:gus", "aad-gus", "Gus Guest")  # a guest: an id in our tenant, role "guest"
PROSPECT = Person("29:pat", "aad-pat", "Pat Prospect", OTHER_TENANT)
ROSTER = {
    person.aad: {
        "id": person.teams_id,
        "name": person.name,
        "aadObjectId": person.aad,
        "tenantId": TENANT,
        "userRole": role,
    }
    for person, role in ((REP, "user"), (BOSS, "user"), (GUEST, "guest"))
}


@dataclass
class Teams:
    connector: FakeConnector
    client: TestClient[web.Request, web.Application]
    store: SqliteStore
    post: Callable[..., Any]


_ids = itertools.count(1)


def message(
    conversation: str,
    who: Person,
    text: str,
    *,
    mention: bool = False,
    kind: str = "channel",
    service_url: str,
    activity_id: str | None = None,
) -> dict[str, Any]:
    shown = f"<at>salesbot</at> {text}" if mention else text
    activity: dict[str, Any] = {
        "type": "message",
        "id": activity_id or f"act-{next(_ids)}",
        "timestamp": "2026-11-24T10:00:00.000Z",
        "serviceUrl": service_url,
        "channelId": "msteams",
        "from": _account(who),
        "conversation": {"id": conversation, "conversationType": kind, "tenantId": TENANT},
        "recipient": {"id": BOT, "name": "salesbot"},
        "text": shown,
        "textFormat": "plain",
        "channelData": {"tenant": {"id": TENANT}},
    }
    if mention:
        activity["entities"] = [
            {"type": "mention", "text": "<at>salesbot</at>", "mentioned": {"id": BOT}}
        ]
    return activity


def _account(who: Person) -> dict[str, Any]:
    account = {"id": who.teams_id, "name": who.name, "aadObjectId": who.aad}
    if who.tenant != TENANT:
        account["tenantId"] = who.tenant
    return account


def card_of(activity: dict[str, Any]) -> dict[str, Any]:
    (attachment,) = activity["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    content: dict[str, Any] = attachment["content"]
    return content


def action_data(card: dict[str, Any], verb: str) -> dict[str, Any]:
    for action in card.get("actions", []):
        if action.get("verb") == verb:
            data: dict[str, Any] = action["data"]
            return data
    raise AssertionError(f"no {verb!r} button on the card: {json.dumps(card)[:400]}")


def invoke(
    conversation: str, who: Person, verb: str, data: dict[str, Any], *, service_url: str
) -> dict[str, Any]:
    """What Teams sends for an `Action.Execute` click (a new activity id every time)."""
    return {
        "type": "invoke",
        "name": "adaptiveCard/action",
        "id": f"f:{next(_ids)}",
        "serviceUrl": service_url,
        "channelId": "msteams",
        "from": _account(who),
        "conversation": {"id": conversation, "conversationType": "channel", "tenantId": TENANT},
        "recipient": {"id": BOT, "name": "salesbot"},
        "channelData": {"tenant": {"id": TENANT}},
        "value": {"action": {"type": "Action.Execute", "verb": verb, "data": data}},
    }


def privately(connector: FakeConnector, person: Person) -> list[dict[str, Any]]:
    """What the bot posted in its personal chat with `person` (private notices)."""
    chats = {c.conversation_id for c in connector.creations if c.member_id == person.teams_id}
    return [post for chat in sorted(chats) for post in connector.posted(chat)]


def texts(activities: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(a, ensure_ascii=False) for a in activities)


def local_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "teams_allow_unauthenticated": True,
        "teams_app_tenant_id": TENANT,
        "teams_handoff_conversation": HANDOFF,
        "salesbot_approvers": (BOSS.aad, GUEST.aad),
        "salesbot_auditors": (BOSS.aad,),
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def teams(tmp_path: Path) -> AsyncIterator[Teams]:
    async with FakeConnector(members=ROSTER, tenant_id=TENANT) as connector:
        store = await SqliteStore.open(tmp_path / "teams.db")
        try:
            async with serving(None, local_settings(), store) as client:

                async def post(activity: dict[str, Any]) -> ClientResponse:
                    return await client.post("/api/messages", json=activity)

                yield Teams(connector=connector, client=client, store=store, post=post)
        finally:
            await store.close()


def say(teams: Teams, conversation: str, who: Person, text: str, **kw: Any) -> dict[str, Any]:
    return message(conversation, who, text, service_url=teams.connector.base_url, **kw)


async def test_a_prospect_is_qualified_quoted_in_the_thread_and_accepts_with_a_refreshed_card(
    teams: Teams,
) -> None:
    connector = teams.connector
    thread = thread_id(SHARED, "1700000000100")
    response = await teams.post(say(teams, thread, PROSPECT, "Hi, we are evaluating CRMs"))
    assert response.status == 200
    (greeting,) = await connector.wait_for_posts(thread, 1)
    assert greeting["text"].startswith("Hi")  # a greeting, in the wording the hash picked

    await teams.post(
        say(teams, thread, PROSPECT, "We have a $5000 budget, I am the CTO, next month")
    )
    await connector.wait_for_posts(thread, 2)

    await teams.post(say(teams, thread, REP, "quote 10 pro 10%", mention=True))
    posts = await connector.wait_for_posts(thread, 3)
    quote = posts[2]
    assert "1,791.00 USD" in texts([quote])
    card = card_of(quote)
    assert card["version"] == "1.5"

    data = action_data(card, "accept_quote")
    first = await teams.post(
        invoke(thread, PROSPECT, "accept_quote", data, service_url=connector.base_url)
    )
    assert first.status == 200
    answer = await first.json()
    assert answer["statusCode"] == 200
    assert answer["type"] == "application/vnd.microsoft.card.adaptive"
    assert "Accepted by" in json.dumps(answer["value"])

    # Teams redelivers the click with a new activity id: the same nonce, the same answer,
    # and nothing decided twice.
    again = await teams.post(
        invoke(thread, PROSPECT, "accept_quote", data, service_url=connector.base_url)
    )
    assert again.status == 200
    assert await again.json() == answer

    await connector.wait_for_updates(1)
    assert "Accepted by" in texts([connector.activity(thread, quote["id"]) or {}])
    await eventually(
        lambda: "plan your onboarding" in texts(connector.posted(thread)),
        "the thank-you and what happens next",
    )
    await outbox_drained(teams.client)
    assert len(connector.updates) == 1


async def test_the_same_activity_delivered_four_times_gives_one_reply(teams: Teams) -> None:
    activity = say(teams, thread_id(SHARED, "1700000000200"), PROSPECT, "Hello there")
    for _ in range(4):
        response = await teams.post(activity)
        assert response.status == 200
    await outbox_drained(teams.client)
    assert len(teams.connector.all_posts()) == 1


async def test_a_conversations_reference_is_stored_once_not_at_every_message(
    teams: Teams, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every message of a conversation used to write its reference again (it carried the
    message's id): one more write transaction per message."""
    written: list[str] = []
    put_state = teams.store.put_state

    async def counted(key: str, value: Any, at_ms: int) -> None:
        written.append(key)
        await put_state(key, value, at_ms)

    monkeypatch.setattr(teams.store, "put_state", counted)
    thread = thread_id(SHARED, "1700000000250")
    for n, text in enumerate(("Hi, we are evaluating CRMs", "We are 40 people", "Pricing?")):
        assert (await teams.post(say(teams, thread, PROSPECT, text))).status == 200
        await teams.connector.wait_for_posts(thread, n + 1)
    assert written.count(f"teams:conv:{SHARED}") == 1
    reference = await teams.store.get_state(f"teams:conv:{SHARED}")
    assert reference is not None
    assert reference["serviceUrl"] == teams.connector.base_url


async def test_a_contract_objection_is_a_ticket_in_the_handoff_channel_claimed_once(
    teams: Teams,
) -> None:
    connector = teams.connector
    thread = thread_id(SHARED, "1700000000300")
    await teams.post(say(teams, thread, PROSPECT, "Can we cancel the contract and get a refund?"))
    (ticket,) = await connector.wait_for_posts(HANDOFF, 1)
    assert "refund" in texts([ticket])

    # Clicked on a client without Universal Actions: the Action.Submit fallback.
    data = action_data(card_of(ticket), "claim_ticket")
    claim = say(teams, HANDOFF, REP, "")
    claim["value"] = dict(data)
    assert (await teams.post(claim)).status == 200
    await connector.wait_for_updates(1)
    assert "Claimed by" in texts([connector.activity(HANDOFF, ticket["id"]) or {}])

    late = await teams.post(
        invoke(HANDOFF, BOSS, "claim_ticket", data, service_url=connector.base_url)
    )
    assert late.status == 200
    assert "already claimed" in (await late.json())["value"]
    # The refusal also reaches the second claimer privately, in their personal chat with
    # the bot (where Slack shows an ephemeral notice): never in the prospect's thread.
    await eventually(
        lambda: "already claimed" in texts(privately(connector, BOSS)), "the private notice"
    )
    await outbox_drained(teams.client)
    assert "already claimed" not in texts(connector.posted(thread))


async def approval_requested(teams: Teams, chat: str) -> dict[str, Any]:
    """A rep's quote above the discount cap, sent for approval: the Approve button's data."""
    connector = teams.connector
    await teams.post(say(teams, chat, REP, "quote 10 pro 20%", kind="groupChat", mention=True))
    # The chat (a prospect may be in it) hears a quote is being prepared; the quote, its
    # rule and Request approval reach the rep in their personal chat with the bot.
    (note,) = await connector.wait_for_posts(chat, 1)
    assert "as soon as it" in texts([note])  # the quote is being prepared
    await eventually(lambda: bool(privately(connector, REP)), "the rep's private card")
    (quote,) = privately(connector, REP)
    assert "rep cap of 15%" in texts([quote])
    personal = next(c.conversation_id for c in connector.creations if c.member_id == REP.teams_id)
    request = action_data(card_of(quote), "request_approval")
    await teams.post(
        invoke(personal, REP, "request_approval", request, service_url=connector.base_url)
    )
    (approval,) = await connector.wait_for_posts(HANDOFF, 1)
    return action_data(card_of(approval), "approve_quote")


async def test_a_discount_above_the_cap_needs_an_approver(teams: Teams) -> None:
    connector = teams.connector
    chat = "19:deal-room@thread.v2"
    approve = await approval_requested(teams, chat)

    refused = await teams.post(
        invoke(HANDOFF, REP, "approve_quote", approve, service_url=connector.base_url)
    )
    assert "only configured approvers" in (await refused.json())["value"]
    granted = await teams.post(
        invoke(HANDOFF, BOSS, "approve_quote", approve, service_url=connector.base_url)
    )
    answer = await granted.json()
    # The approval card itself comes back refreshed, not the quote it is about.
    assert answer["type"] == "application/vnd.microsoft.card.adaptive"
    assert "Approved by Morgan Boss" in json.dumps(answer["value"])
    assert "Discount approval" in json.dumps(answer["value"])
    await eventually(lambda: len(connector.posted(chat)) == 2, "the new version")
    v2 = card_of(connector.posted(chat)[1])
    assert v2["body"][0]["text"].replace("\\", "").endswith(" v2")
    assert "1,592.00 USD" in json.dumps(v2)
    # The refusal also reached the rep privately (after their own copy of the quote).
    assert "only configured approvers" in privately(connector, REP)[-1]["text"]
    assert "rep cap" not in texts(connector.posted(chat))


async def test_a_guest_in_our_tenant_is_a_prospect_and_cannot_approve(teams: Teams) -> None:
    connector = teams.connector
    chat = "19:deal-room-2@thread.v2"
    approve = await approval_requested(teams, chat)
    # Configured as an approver (see `local_settings`), but a guest is not one of ours.
    refused = await teams.post(
        invoke(HANDOFF, GUEST, "approve_quote", approve, service_url=connector.base_url)
    )
    assert "only configured approvers" in (await refused.json())["value"]
    member_lookups = [c for c in connector.calls_of("member") if GUEST.teams_id in c.path]
    assert member_lookups, "the roster was asked about the guest"
    await outbox_drained(teams.client)
    assert re.search(r"Q-[0-9a-f]{10} v2", texts(connector.posted(chat))) is None


async def test_an_audit_in_a_prospects_thread_is_shown_only_to_the_auditor(teams: Teams) -> None:
    connector = teams.connector
    thread = thread_id(SHARED, "1700000000400")
    await teams.post(say(teams, thread, PROSPECT, "We have a $5000 budget, I am the CTO"))
    await connector.wait_for_posts(thread, 1)
    await teams.post(say(teams, thread, BOSS, "audit", mention=True))
    await teams.post(say(teams, thread, REP, "audit", mention=True))  # not an auditor
    await outbox_drained(teams.client)
    public = connector.posted(thread)
    assert len(public) == 1, "nothing about the audit is visible to the prospect"
    assert "budget" in texts(privately(connector, BOSS))  # the features behind the score
    assert "auditors" in texts(privately(connector, REP))  # refused, privately
    assert "budget" not in texts(privately(connector, REP))


async def test_a_personal_install_greets_with_what_the_bot_can_do(teams: Teams) -> None:
    activity = json.loads(
        (FIXTURES / "teams_conversation_update_bot_added_personal.json").read_text()
    )
    activity.pop("_source", None)
    personal = "a:personal-rae"
    activity |= {
        "serviceUrl": teams.connector.base_url,
        "from": _account(REP),
        "recipient": {"id": BOT, "name": "salesbot"},
        "membersAdded": [{"id": BOT}, _account(REP)],
        "conversation": {"conversationType": "personal", "id": personal, "tenantId": TENANT},
        "channelData": {"tenant": {"id": TENANT}},
    }
    assert (await teams.post(activity)).status == 200
    (hello,) = await teams.connector.wait_for_posts(personal, 1)
    assert "quote" in texts([hello])


async def test_without_a_handoff_conversation_tickets_go_to_the_channel_the_bot_was_added_to(
    tmp_path: Path,
) -> None:
    installed = json.loads((FIXTURES / "teams_conversation_update_bot_added_team.json").read_text())
    installed.pop("_source", None)
    channel = installed["conversation"]["id"]
    async with FakeConnector(members=ROSTER, tenant_id=TENANT) as connector:
        installed["serviceUrl"] = connector.base_url
        settings = local_settings(teams_handoff_conversation=None)
        async with serving(None, settings) as client:
            assert (await client.post("/api/messages", json=installed)).status == 200
            objection = message(
                "a:personal-pat",
                PROSPECT,
                "Our lawyer needs to redline your MSA before we sign.",
                kind="personal",
                service_url=connector.base_url,
            )
            assert (await client.post("/api/messages", json=objection)).status == 200
            (ticket,) = await connector.wait_for_posts(channel, 1)
            assert "legal" in texts([ticket])


async def test_a_group_chat_the_bot_is_added_to_never_receives_tickets(tmp_path: Path) -> None:
    added = json.loads((FIXTURES / "teams_conversation_update_bot_added_team.json").read_text())
    added.pop("_source", None)
    group = "19:with-a-prospect@thread.v2"
    added["conversation"] = {"id": group, "conversationType": "groupChat", "tenantId": TENANT}
    added["channelData"] = {"tenant": {"id": TENANT}}
    async with FakeConnector(members=ROSTER, tenant_id=TENANT) as connector:
        added["serviceUrl"] = connector.base_url
        async with serving(None, local_settings(teams_handoff_conversation=None)) as client:
            assert (await client.post("/api/messages", json=added)).status == 200
            objection = message(
                group,
                PROSPECT,
                "Can we cancel the contract?",
                kind="groupChat",
                service_url=connector.base_url,
            )
            await client.post("/api/messages", json=objection)
            await connector.wait_for_posts(group, 1)  # the prospect is answered there
            # ... while the ticket waits in the outbox for a handoff channel.
            await outbox_drained(client, leaving=1)
            assert [conversation for conversation, _ in connector.all_posts()] == [group]


async def test_a_lead_from_the_feed_gets_a_thread_in_the_leads_channel_where_reps_act(
    tmp_path: Path,
) -> None:
    async with FakeConnector(members=ROSTER, tenant_id=TENANT) as connector:
        # The bot has seen the leads channel once (it was added there): its service URL.
        settings = local_settings(
            teams_leads_conversation=LEADS, salesbot_leads_token=SecretStr("feed-token")
        )
        async with serving(None, settings) as client:
            hello = message(LEADS, REP, "hello", mention=True, service_url=connector.base_url)
            await client.post("/api/messages", json=hello)
            lead = {
                "name": "Dana",
                "company": "Initech",
                "email": "dana@initech.test",
                "message": "We have a $5000 budget and need it next month",
            }
            created = await client.post(
                "/leads",
                json=lead,
                headers={"Authorization": "Bearer feed-token", "Idempotency-Key": "crm-42"},
            )
            assert created.status == 201
            await eventually(
                lambda: any("Dana" in texts([a]) for a in connector.posted(LEADS)), "the lead card"
            )
            card = next(a for a in connector.posted(LEADS) if "Dana" in texts([a]))
            thread = thread_id(LEADS, card["id"])
            await client.post(
                "/api/messages",
                json=message(
                    thread, REP, "quote 5 pro", mention=True, service_url=connector.base_url
                ),
            )
            await eventually(
                lambda: "995.00 USD" in texts(connector.posted(thread)), "the quote in the thread"
            )


async def test_bad_requests_get_a_clear_4xx_and_unknown_activities_are_acknowledged(
    teams: Teams,
) -> None:
    client = teams.client
    json_type = {"Content-Type": "application/json"}
    not_json = await client.post("/api/messages", data=b"{not json", headers=json_type)
    assert not_json.status == 400
    assert (await client.post("/api/messages", data=b"{not json")).status == 415  # no type
    assert (await client.post("/api/messages", json=["a list"])).status == 400
    remote = say(teams, SHARED, PROSPECT, "hi")
    remote["serviceUrl"] = "http://evil.example.com/"
    bad = await client.post("/api/messages", json=remote)
    assert bad.status == 400
    assert "https" in (await bad.json())["error"]
    typing = say(teams, SHARED, PROSPECT, "")
    typing["type"] = "typing"
    assert (await client.post("/api/messages", json=typing)).status == 200
    unknown_verb = invoke(
        SHARED, REP, "format_disk", {"x": 1}, service_url=teams.connector.base_url
    )
    answer = await client.post("/api/messages", json=unknown_verb)
    assert answer.status == 200
    assert (await answer.json())["statusCode"] == 200
    await outbox_drained(teams.client)
    assert teams.connector.all_posts() == []


async def test_an_oversized_body_is_refused_with_413_and_nothing_is_stored(teams: Teams) -> None:
    huge = say(teams, SHARED, PROSPECT, "x" * (1024 * 1024 + 1))
    response = await teams.client.post("/api/messages", json=huge)
    assert response.status == 413
    assert await teams.store.conversation_ids() == []


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (Settings(teams_app_id="app-0001"), "TEAMS_APP_PASSWORD"),
        # A token-less endpoint must not be reachable from another machine.
        (local_settings(salesbot_host="0.0.0.0"), "loopback"),
    ],
)
def test_a_teams_configuration_that_cannot_be_safe_is_refused_at_start(
    settings: Settings, named: str
) -> None:
    from bot.policy_loader import load_policy
    from bot.service import build_service
    from storage.memory import MemoryStore

    with pytest.raises(SettingsError, match=named):
        build_service(settings, load_policy("default"), MemoryStore(), clock=lambda: 0)


@pytest.fixture
async def signed_in() -> AsyncIterator[
    tuple[LocalIssuer, TestClient[web.Request, web.Application], FakeConnector]
]:
    async with (
        LocalIssuer(app_id="app-0001") as issuer,
        FakeConnector(members=ROSTER, tenant_id=TENANT) as connector,
    ):
        settings = Settings(
            teams_app_id="app-0001",
            teams_app_password=SecretStr("not-used-in-tests"),
            teams_app_tenant_id=TENANT,
            teams_openid_metadata_url=issuer.metadata_url,
            teams_handoff_conversation=HANDOFF,
        )
        async with serving(None, settings, teams_tokens=NoToken()) as client:
            yield issuer, client, connector


@pytest.mark.parametrize(
    ("claims", "status"),
    [
        ({}, 200),
        ({"aud": "someone-else"}, 401),
        ({"exp": "expired 6 minutes ago"}, 401),
        ({"exp": "expired 4 minutes ago"}, 200),
        ({"serviceUrl": "https://smba.trafficmanager.net/amer/"}, 401),
        (None, 401),
    ],
)
async def test_with_credentials_only_a_valid_token_is_let_in(
    signed_in: tuple[LocalIssuer, TestClient[web.Request, web.Application], FakeConnector],
    claims: dict[str, Any] | None,
    status: int,
) -> None:
    issuer, client, connector = signed_in
    activity = message(
        thread_id(SHARED, "1700000000900"), PROSPECT, "Hello", service_url=connector.base_url
    )
    # In authenticated mode the service URL must be https; the claim binds it to the token.
    # (https to the fake's http port: the outbox's later sends fail locally, harmlessly.)
    activity["serviceUrl"] = connector.base_url.replace("http://", "https://")
    headers = {}
    if claims is not None:
        overrides = dict(claims)
        if isinstance(overrides.get("exp"), str):
            minutes = int(overrides["exp"].split()[1])
            overrides["exp"] = int(time.time()) - minutes * 60
        overrides.setdefault("serviceUrl", activity["serviceUrl"])
        headers["Authorization"] = f"Bearer {issuer.token(**overrides)}"
    response = await client.post("/api/messages", json=activity, headers=headers)
    assert response.status == status


async def test_a_key_endorsed_only_for_teams_does_not_vouch_for_another_channel(
    signed_in: tuple[LocalIssuer, TestClient[web.Request, web.Application], FakeConnector],
) -> None:
    issuer, client, connector = signed_in
    issuer.endorsements = ["msteams"]
    service_url = connector.base_url.replace("http://", "https://")
    headers = {"Authorization": f"Bearer {issuer.token(serviceUrl=service_url)}"}
    for channel, status in (("webchat", 401), ("msteams", 200)):
        activity = message(
            thread_id(SHARED, "1700000000901"), PROSPECT, "Hi", service_url=service_url
        )
        activity["channelId"] = channel
        response = await client.post("/api/messages", json=activity, headers=headers)
        assert response.status == status, channel
