"""The Teams sender with several installations: each tenant's handoff posts go to its own
conversations, through its own connector, with buttons signed for it; a post into another
conversation (the policy's escalation conversation, which is the home tenant's) never
carries one tenant's conversation into another's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.ports import Delivery, RetryLater, Route, Sent
from adapters.teams import book
from adapters.teams.connector import Connector, NoToken
from adapters.teams.router import conversation_route, destination_route
from adapters.teams.sender import TeamsSender
from adapters.teams.tenants import Tenants
from domain.cards import Button, Card, Reply
from storage.memory import MemoryStore
from tests.fakes.teams_connector import FakeConnector, thread_id
from tests.teams.signing import KEY

HOME, B = "tenant-home", "tenant-b"
HANDOFF_HOME = "19:handoff-home@thread.tacv2"
ESCALATION = "19:escalation-home@thread.tacv2"
SALES_B = "19:sales-b@thread.tacv2"
CHAT_B = thread_id("19:shared-b@thread.tacv2", "1700000000100")
CHAT_HOME = thread_id("19:shared-home@thread.tacv2", "1700000000200")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        self.now += 1
        return self.now


def ticket(title: str = "Ticket T-1") -> Reply:
    card = Card(
        kind="ticket",
        title=title,
        buttons=(Button(action="claim_ticket", label="Claim", target="T-1"),),
        ref="T-1",
    )
    return Reply(audience="handoff", text=title, card=card)


def delivery(reply: Reply, route: Route, conversation: str, key: str = "O-1") -> Delivery:
    return Delivery(
        key=key,
        conversation_id=f"teams:{conversation}",
        channel=route.channel,
        payload={"reply": reply.model_dump(mode="json"), "target": route.target},
    )


def install_b(service_url: str) -> dict[str, Any]:
    return {
        "type": "installationUpdate",
        "action": "add",
        "serviceUrl": service_url,
        "from": {"id": "29:ben", "aadObjectId": "aad-ben"},
        "recipient": {"id": "28:app-1", "name": "salesbot"},
        "conversation": {
            "id": "19:general-b@thread.tacv2",
            "conversationType": "channel",
            "tenantId": B,
        },
        "channelData": {
            "tenant": {"id": B},
            "team": {"id": "19:general-b@thread.tacv2"},
            "settings": {"selectedChannel": {"id": SALES_B}},
        },
    }


def chat_reference(conversation: str, tenant: str, service_url: str) -> dict[str, Any]:
    return {
        "conversation": {"id": conversation, "conversationType": "channel", "tenantId": tenant},
        "serviceUrl": service_url,
    }


@pytest.fixture
async def world() -> AsyncIterator[tuple[FakeConnector, FakeConnector, TeamsSender]]:
    async with FakeConnector(tenant_id=HOME) as home, FakeConnector(tenant_id=B) as b:
        store, clock = MemoryStore(), Clock()
        tenants = Tenants(
            store, home_tenant=HOME, home_handoff=HANDOFF_HOME, allowed=(B,), clock=clock
        )
        await tenants.record_update(install_b(b.base_url))
        for conversation, tenant, url in (
            (CHAT_B, B, b.base_url),
            (CHAT_HOME, HOME, home.base_url),
            (HANDOFF_HOME, HOME, home.base_url),
            (ESCALATION, HOME, home.base_url),
        ):
            await store.put_state(
                book.conversation_key(conversation),
                chat_reference(conversation, tenant, url),
                clock(),
            )
        connector = Connector(NoToken(), timeout_s=5.0)
        sender = TeamsSender(
            connector,
            store,
            handoff_conversation=HANDOFF_HOME,
            leads_conversation=None,
            clock=clock,
            action_key=KEY,
            tenant_id=HOME,
            tenants=tenants,
        )
        try:
            yield home, b, sender
        finally:
            await connector.close()


async def test_a_tenants_ticket_goes_to_its_channel_never_heard_from_signed_for_it(
    world: tuple[FakeConnector, FakeConnector, TeamsSender],
) -> None:
    home, b, sender = world
    outcome = await sender.send(delivery(ticket(), destination_route("handoff"), CHAT_B))
    assert isinstance(outcome, Sent)
    (posted,) = b.posted(SALES_B)  # through B's connector: the installation's service URL
    data = posted["attachments"][0]["content"]["actions"][0]["data"]
    assert (data["tn"], data["w"]) == (B, SALES_B)
    assert home.all_posts() == []

    outcome = await sender.send(delivery(ticket(), destination_route("handoff"), CHAT_HOME, "O-2"))
    assert isinstance(outcome, Sent)
    assert len(home.posted(HANDOFF_HOME)) == 1
    assert len(b.all_posts()) == 1


async def test_an_escalation_of_a_tenants_conversation_stays_in_that_tenant(
    world: tuple[FakeConnector, FakeConnector, TeamsSender],
) -> None:
    home, b, sender = world
    escalated = Reply(audience="escalation", text="Escalated: a ticket has waited 2 hours.")
    outcome = await sender.send(delivery(escalated, conversation_route(ESCALATION), CHAT_B))
    assert isinstance(outcome, Sent)
    assert home.all_posts() == []
    assert "Escalated" in b.posted(SALES_B)[0]["text"]

    # The home tenant's own escalations go where the policy says.
    outcome = await sender.send(
        delivery(escalated, conversation_route(ESCALATION), CHAT_HOME, "O-2")
    )
    assert isinstance(outcome, Sent)
    assert len(home.posted(ESCALATION)) == 1


async def test_a_tenant_without_a_handoff_channel_waits_instead_of_borrowing_one() -> None:
    async with FakeConnector(tenant_id=HOME) as home:
        store, clock = MemoryStore(), Clock()
        tenants = Tenants(
            store, home_tenant=HOME, home_handoff=HANDOFF_HOME, allowed=(B,), clock=clock
        )
        personal = install_b(home.base_url)
        personal["conversation"] = {"id": "a:ben", "conversationType": "personal", "tenantId": B}
        del personal["channelData"]["team"]
        await tenants.record_update(personal)
        await store.put_state(
            book.conversation_key(CHAT_B), chat_reference(CHAT_B, B, home.base_url), clock()
        )
        connector = Connector(NoToken(), timeout_s=5.0)
        sender = TeamsSender(
            connector,
            store,
            handoff_conversation=HANDOFF_HOME,
            leads_conversation=None,
            clock=clock,
            action_key=KEY,
            tenant_id=HOME,
            tenants=tenants,
        )
        try:
            waiting = await sender.send(delivery(ticket(), destination_route("handoff"), CHAT_B))
            escalated = Reply(audience="escalation", text="Escalated.")
            also = await sender.send(delivery(escalated, conversation_route(ESCALATION), CHAT_B))
        finally:
            await connector.close()
        assert isinstance(waiting, RetryLater)
        assert "setup handoff" in waiting.reason
        assert isinstance(also, RetryLater)
        assert home.all_posts() == []
