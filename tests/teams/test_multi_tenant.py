"""Several tenants through the real server: Bot Framework activities posted to
`/api/messages`, through the runtime and outbox, to one fake connector per tenant on
127.0.0.1 (each tenant's activities name its own `serviceUrl`, so a post in the wrong
tenant's connector is seen at once). Local unauthenticated mode (loopback only).

Tenant A is the home tenant (`TEAMS_APP_TENANT_ID`, `TEAMS_HANDOFF_CONVERSATION`); tenant B
is listed in `TEAMS_TENANTS` and installs the app into a team; tenant C installs nothing
(its people are prospects wherever they speak)."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from adapters.teams.connector import NoToken
from adapters.teams.tenants import tenant_key
from bot.settings import Settings
from storage.memory import MemoryStore
from tests.e2e.harness import eventually, outbox_drained, serving
from tests.fakes.teams_connector import FakeConnector, thread_id
from tests.teams.keys import BOT_FRAMEWORK_ISSUER, LocalIssuer

A, B, C = "tenant-aaaa", "tenant-bbbb", "tenant-cccc"
BOT = "28:app-0001"
HANDOFF_A = "19:handoff-a@thread.tacv2"
SHARED_A = "19:shared-a@thread.tacv2"  # a channel of A's shared with a prospect of C
TEAM_B = "19:general-b@thread.tacv2"
SALES_B = "19:sales-b@thread.tacv2"  # the channel chosen when B added the app
SHARED_B = "19:shared-b@thread.tacv2"
DESK_B = "19:desk-b@thread.tacv2"
FIXTURE = Path(__file__).parent / "fixtures" / "installation_update_team.json"
OBJECTION = "Can we cancel the contract and get a refund?"


@dataclass(frozen=True)
class Person:
    teams_id: str
    aad: str
    name: str
    tenant: str


REP_A = Person("29:ann", "aad-ann", "Ann of A", A)
REP_B = Person("29:ben", "aad-ben", "Ben of B", B)
BEA_B = Person("29:bea", "aad-bea", "Bea of B", B)  # a member of B, not an admin
GUEST_B = Person("29:gil", "aad-gil", "Gil Guest", B)  # a guest in B: an id in B, role guest
PAT = Person("29:pat", "aad-pat", "Pat Prospect", C)
QUIN = Person("29:quin", "aad-quin", "Quin Prospect", C)


def roster(*people: tuple[Person, str]) -> dict[str, dict[str, Any]]:
    return {
        who.aad: {
            "id": who.teams_id,
            "name": who.name,
            "aadObjectId": who.aad,
            "tenantId": who.tenant,
            "userRole": role,
        }
        for who, role in people
    }


_ids = itertools.count(1)


@dataclass
class Tenants:
    a: FakeConnector
    b: FakeConnector
    client: TestClient[web.Request, web.Application]
    store: MemoryStore

    async def post(self, activity: dict[str, Any]) -> ClientResponse:
        return await self.client.post("/api/messages", json=activity)

    def connector(self, tenant: str) -> FakeConnector:
        return self.b if tenant == B else self.a

    def say(
        self,
        conversation: str,
        who: Person,
        text: str,
        *,
        tenant: str,
        mention: bool = False,
        kind: str = "channel",
        team: str | None = None,
    ) -> dict[str, Any]:
        """A message in `tenant`'s `conversation`, reached through that tenant's connector."""
        activity: dict[str, Any] = {
            "type": "message",
            "id": f"act-{next(_ids)}",
            "serviceUrl": self.connector(tenant).base_url,
            "channelId": "msteams",
            "from": account(who),
            "conversation": {"id": conversation, "conversationType": kind, "tenantId": tenant},
            "recipient": {"id": BOT, "name": "salesbot"},
            "text": f"<at>salesbot</at> {text}" if mention else text,
            "channelData": {"tenant": {"id": tenant}},
        }
        if team is not None:
            activity["channelData"]["team"] = {"id": team}
        if mention:
            activity["entities"] = [
                {"type": "mention", "text": "<at>salesbot</at>", "mentioned": {"id": BOT}}
            ]
        return activity

    def click(
        self, conversation: str, who: Person, verb: str, data: dict[str, Any], *, tenant: str
    ) -> dict[str, Any]:
        return {
            "type": "invoke",
            "name": "adaptiveCard/action",
            "id": f"f:{next(_ids)}",
            "serviceUrl": self.connector(tenant).base_url,
            "channelId": "msteams",
            "from": account(who),
            "conversation": {"id": conversation, "conversationType": "channel", "tenantId": tenant},
            "recipient": {"id": BOT, "name": "salesbot"},
            "channelData": {"tenant": {"id": tenant}},
            "value": {"action": {"type": "Action.Execute", "verb": verb, "data": data}},
        }

    def install_b(self, action: str = "add") -> dict[str, Any]:
        """Teams' `installationUpdate` when B adds the app to its team, choosing SALES_B."""
        activity: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
        activity.pop("_source")
        activity |= {
            "action": action,
            "serviceUrl": self.b.base_url,
            "from": account(REP_B),
            "recipient": {"id": BOT, "name": "salesbot"},
            "conversation": {"id": TEAM_B, "conversationType": "channel", "tenantId": B},
        }
        activity["channelData"] |= {
            "team": {"id": TEAM_B},
            "tenant": {"id": B},
            "settings": {"selectedChannel": {"id": SALES_B}},
            "channel": {"id": SALES_B},
        }
        return activity


def account(who: Person) -> dict[str, Any]:
    return {"id": who.teams_id, "name": who.name, "aadObjectId": who.aad, "tenantId": who.tenant}


def card_data(activity: dict[str, Any], verb: str) -> dict[str, Any]:
    (attachment,) = activity["attachments"]
    for action in attachment["content"].get("actions", []):
        if action.get("verb") == verb:
            data: dict[str, Any] = action["data"]
            return data
    raise AssertionError(f"no {verb!r} button")


def texts(activities: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(a, ensure_ascii=False) for a in activities)


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "teams_allow_unauthenticated": True,
        "teams_app_tenant_id": A,
        "teams_handoff_conversation": HANDOFF_A,
        "teams_tenants": (B,),
        # Each tenant's admin (`setup handoff` is an admin's, as on Slack): Ann of A by her
        # Teams id, Ben of B by his Entra object id.
        "salesbot_admins": (REP_A.teams_id, REP_B.aad),
    }
    return Settings(**(values | overrides))


@pytest.fixture
async def tenants() -> AsyncIterator[Tenants]:
    async with (
        FakeConnector(members=roster((REP_A, "user")), tenant_id=A) as a,
        FakeConnector(members=roster((REP_B, "user"), (GUEST_B, "guest")), tenant_id=B) as b,
    ):
        store = MemoryStore()
        async with serving(None, settings(), store) as client:
            yield Tenants(a=a, b=b, client=client, store=store)


async def test_a_tenant_that_adds_the_app_to_a_team_gets_its_own_reps_and_handoff_channel(
    tenants: Tenants,
) -> None:
    thread_b = thread_id(SHARED_B, "1700000000100")
    # Before B installs the app, B's rep is a prospect: quotes are for the sales team.
    await tenants.post(tenants.say(thread_b, REP_B, "quote 10 pro 10%", tenant=B, mention=True))
    (reply,) = await tenants.b.wait_for_posts(thread_b, 1)
    assert "USD" not in texts([reply])  # a prospect's words, answered as a prospect's

    assert (await tenants.post(tenants.install_b())).status == 200
    record = await tenants.store.get_state(tenant_key(B))
    assert record is not None
    assert record["places"][f"team:{TEAM_B}"]["conversation"] == SALES_B

    await tenants.post(tenants.say(thread_b, REP_B, "quote 10 pro 10%", tenant=B, mention=True))
    posts = await tenants.b.wait_for_posts(thread_b, 2)
    assert "1,791.00 USD" in texts([posts[1]])

    # A prospect (of C, which installed nothing) in B's shared channel: B's handoff channel.
    await tenants.post(tenants.say(thread_b, PAT, OBJECTION, tenant=B))
    (ticket,) = await tenants.b.wait_for_posts(SALES_B, 1)
    assert "refund" in texts([ticket])
    claim = card_data(ticket, "claim_ticket")
    claimed = await tenants.post(tenants.click(SALES_B, REP_B, "claim_ticket", claim, tenant=B))
    assert "Claimed by Ben of B" in json.dumps(await claimed.json())

    await outbox_drained(tenants.client)
    assert tenants.a.all_posts() == [], "nothing of B's reached tenant A's connector"


async def test_a_handoff_never_crosses_tenants_and_a_card_signed_for_b_is_refused_to_a(
    tenants: Tenants,
) -> None:
    await tenants.post(tenants.install_b())
    thread_a = thread_id(SHARED_A, "1700000000200")
    thread_b = thread_id(SHARED_B, "1700000000300")
    await tenants.post(tenants.say(thread_a, QUIN, f"{OBJECTION} Quinco here.", tenant=A))
    await tenants.post(tenants.say(thread_b, PAT, f"{OBJECTION} Patco here.", tenant=B))
    (ticket_a,) = await tenants.a.wait_for_posts(HANDOFF_A, 1)
    (ticket_b,) = await tenants.b.wait_for_posts(SALES_B, 1)
    await outbox_drained(tenants.client)
    assert {c for c, _ in tenants.a.all_posts()} == {HANDOFF_A, thread_a}
    assert {c for c, _ in tenants.b.all_posts()} == {SALES_B, thread_b}
    assert "Quinco" in texts([ticket_a])
    assert "Patco" in texts([ticket_b])
    assert "Quinco" not in texts([post for _, post in tenants.b.all_posts()])
    assert "Patco" not in texts([post for _, post in tenants.a.all_posts()])

    # A's rep replays the Claim button of B's ticket from A's own handoff channel.
    stolen = card_data(ticket_b, "claim_ticket")
    refused = await tenants.post(tenants.click(HANDOFF_A, REP_A, "claim_ticket", stolen, tenant=A))
    assert "nothing was done" in (await refused.json())["value"]
    # ... and made up to look as if clicked in B's channel: A's rep is not one of B's.
    forged = await tenants.post(tenants.click(SALES_B, REP_A, "claim_ticket", stolen, tenant=B))
    assert "Only the sales team" in (await forged.json())["value"]
    await outbox_drained(tenants.client)
    assert tenants.b.updates == []  # B's ticket card is untouched
    assert "Claimed" not in texts(tenants.b.posted(SALES_B) + tenants.b.posted(thread_b))

    # B's own rep still can.
    answer = await tenants.post(tenants.click(SALES_B, REP_B, "claim_ticket", stolen, tenant=B))
    assert "Claimed by Ben of B" in json.dumps(await answer.json())


async def test_an_admin_of_the_tenant_sets_its_handoff_channel_with_setup_handoff(
    tenants: Tenants,
) -> None:
    await tenants.post(tenants.install_b())
    desk_post = thread_id(DESK_B, "1700000000400")
    # A guest of B's, a prospect, a rep of A who is an admin (of A: in B's channel she is
    # not one of B's people) and a member of B who is no admin cannot move B's tickets.
    for who in (GUEST_B, PAT, REP_A, BEA_B):
        await tenants.post(
            tenants.say(desk_post, who, "setup handoff", tenant=B, mention=True, team=TEAM_B)
        )
    await tenants.post(
        tenants.say(desk_post, REP_B, "setup handoff", tenant=B, mention=True, team=TEAM_B)
    )
    # The domain's `setup` command: each is answered privately, in their chat with the bot.
    await eventually(lambda: len(tenants.b.all_posts()) >= 5, "the five answers")
    whose = {c.conversation_id: c.member_id for c in tenants.b.creations}
    answers = [(whose.get(conv), post["text"]) for conv, post in tenants.b.all_posts()]
    assert [(who, "only admins" in text, "Done" in text) for who, text in answers] == [
        (GUEST_B.teams_id, True, False),
        (PAT.teams_id, True, False),
        (REP_A.teams_id, True, False),
        (BEA_B.teams_id, True, False),
        (REP_B.teams_id, False, True),
    ]
    assert tenants.b.posted(desk_post) == []
    # The choice and each refusal are recorded, in the thread it was said in.
    recorded = [
        (envelope.event.type, getattr(envelope.event, "by", ""))
        for envelope in await tenants.store.load(f"teams:{desk_post}")
    ]
    assert recorded == [
        ("command_refused", GUEST_B.aad),
        ("installation_noted", ""),  # the thread is B's (`domain.installations`)
        ("command_refused", PAT.aad),
        ("command_refused", REP_A.aad),
        ("command_refused", BEA_B.aad),
        ("channel_set", REP_B.aad),
    ]
    record = await tenants.store.get_state(tenant_key(B))
    assert record is not None
    assert record["handoff"]["conversation"] == DESK_B
    assert record["handoff"]["by"] == REP_B.aad
    assert record["handoff"]["team"] == TEAM_B  # cleared should B remove the app from it

    thread_b = thread_id(SHARED_B, "1700000000500")
    await tenants.post(tenants.say(thread_b, PAT, OBJECTION, tenant=B))
    (ticket,) = await tenants.b.wait_for_posts(DESK_B, 1)
    assert "refund" in texts([ticket])
    assert tenants.b.posted(SALES_B) == []
    # Said in a chat (a prospect may be in it), `setup` changes nothing and says where to.
    chat = "19:deal-room@thread.v2"
    await tenants.post(
        tenants.say(chat, REP_B, "setup leads", tenant=B, mention=True, kind="groupChat")
    )
    (hint,) = await tenants.b.wait_for_posts(chat, 1)
    assert "team channel" in hint["text"]
    record = await tenants.store.get_state(tenant_key(B))
    assert record is not None
    assert record["leads"] is None


async def test_when_b_removes_the_app_its_people_are_prospects_and_its_tickets_wait(
    tenants: Tenants,
) -> None:
    await tenants.post(tenants.install_b())
    assert (await tenants.post(tenants.install_b("remove"))).status == 200
    thread_b = thread_id(SHARED_B, "1700000000600")
    await tenants.post(tenants.say(thread_b, REP_B, "quote 10 pro 10%", tenant=B, mention=True))
    (reply,) = await tenants.b.wait_for_posts(thread_b, 1)
    assert "USD" not in texts([reply])
    await tenants.post(tenants.say(thread_b, PAT, OBJECTION, tenant=B))
    await tenants.b.wait_for_posts(thread_b, 2)  # the prospect is answered in place
    # ... while the ticket waits for a handoff channel of B's: never A's.
    await outbox_drained(tenants.client, leaving=1)
    assert tenants.a.all_posts() == []
    assert tenants.b.posted(SALES_B) == []


async def test_an_unlisted_tenant_that_installs_the_app_gets_no_reps(tenants: Tenants) -> None:
    async with serving(None, settings(teams_tenants=()), tenants.store) as client:
        install = tenants.install_b()
        assert (await client.post("/api/messages", json=install)).status == 200
        thread_b = thread_id(SHARED_B, "1700000000700")
        quote = tenants.say(thread_b, REP_B, "quote 10 pro 10%", tenant=B, mention=True)
        await client.post("/api/messages", json=quote)
        await eventually(lambda: bool(tenants.b.posted(thread_b)), "the answer")
        await outbox_drained(client)
        assert "USD" not in texts(tenants.b.posted(thread_b))
    assert await tenants.store.get_state(tenant_key(B)) is not None  # recorded all the same


async def test_with_credentials_an_installed_tenants_entra_tokens_are_let_in() -> None:
    async with LocalIssuer(app_id="app-0001") as issuer, FakeConnector(tenant_id=B) as b:
        store = MemoryStore()
        configured = Settings(
            teams_app_id="app-0001",
            teams_app_password=SecretStr("not-used-in-tests"),
            teams_app_tenant_id=A,
            teams_openid_metadata_url=issuer.metadata_url,
            teams_handoff_conversation=HANDOFF_A,
            teams_tenants=(B,),
        )
        # In authenticated mode the service URL must be https (later sends fail, harmlessly).
        service_url = b.base_url.replace("http://", "https://")
        async with serving(None, configured, store, teams_tokens=NoToken()) as client:

            async def post(activity: dict[str, Any], iss: str) -> int:
                activity["serviceUrl"] = service_url
                token = issuer.token(iss=iss, serviceUrl=service_url)
                headers = {"Authorization": f"Bearer {token}"}
                response = await client.post("/api/messages", json=activity, headers=headers)
                return response.status

            world = Tenants(a=b, b=b, client=client, store=store)
            hello = world.say(thread_id(SHARED_B, "1700000000800"), PAT, "Hi", tenant=B)
            entra_b = f"https://sts.windows.net/{B}/"
            assert await post(dict(hello), entra_b) == 401
            # Teams' own tokens carry Bot Framework's issuer: the install is let in.
            assert await post(world.install_b(), BOT_FRAMEWORK_ISSUER) == 200
            assert await post(dict(hello, id="act-again"), entra_b) == 200
            assert await post(dict(hello, id="act-c"), f"https://sts.windows.net/{C}/") == 401


async def test_the_home_tenants_setup_replaces_the_handoff_conversation_of_the_environment(
    tenants: Tenants,
) -> None:
    desk = "19:desk-a@thread.tacv2"
    said = thread_id(desk, "1700000000900")
    await tenants.post(tenants.say(said, REP_A, "setup handoff", tenant=A, mention=True))
    await eventually(lambda: bool(tenants.a.all_posts()), "the answer")
    ((_, done),) = tenants.a.all_posts()
    assert "Done" in done["text"]
    thread_a = thread_id(SHARED_A, "1700000000901")
    await tenants.post(tenants.say(thread_a, QUIN, OBJECTION, tenant=A))
    (ticket,) = await tenants.a.wait_for_posts(desk, 1)
    assert "refund" in texts([ticket])
    assert tenants.a.posted(HANDOFF_A) == []


async def test_without_a_home_tenant_a_strangers_ticket_never_lands_in_an_installed_tenant(
    tenants: Tenants,
) -> None:
    no_home = settings(teams_app_tenant_id=None, teams_handoff_conversation=None)
    async with serving(None, no_home, MemoryStore()) as client:
        world = Tenants(a=tenants.a, b=tenants.b, client=client, store=tenants.store)
        assert (await world.post(world.install_b())).status == 200
        added = world.install_b()
        added |= {"type": "conversationUpdate", "membersAdded": [{"id": BOT}]}
        del added["action"]
        assert (await world.post(added)).status == 200  # the bot added to B's channel
        personal = "a:personal-pat"
        objection = world.say(personal, PAT, OBJECTION, tenant=C, kind="personal")
        await world.post(objection)
        await tenants.a.wait_for_posts(personal, 1)  # the prospect is answered
        await outbox_drained(client, leaving=1)  # ... and the ticket waits
        assert tenants.b.all_posts() == []


async def test_a_tenant_s_own_lead_feed_posts_its_leads_in_its_own_leads_conversation() -> None:
    """A lead posted with tenant B's own lead feed token is B's: its card goes to B's leads
    conversation (the channel chosen when B added the app), through B's connector, and
    nothing of it reaches tenant A."""
    lead = {
        "name": "Dana Reyes",
        "company": "Initrode",
        "email": "dana@initrode.example",
        "message": "We need pricing for 40 seats this quarter.",
    }
    async with (
        FakeConnector(members=roster((REP_A, "user")), tenant_id=A) as a,
        FakeConnector(members=roster((REP_B, "user")), tenant_id=B) as b,
    ):
        store = MemoryStore()
        more = settings(
            salesbot_leads_token=SecretStr("first-leads-token-0001"),
            salesbot_installation_leads_tokens=SecretStr(f"teams:{B}=b-leads-token-0002"),
        )
        async with serving(None, more, store) as client:
            site = Tenants(a=a, b=b, client=client, store=store)
            assert (await site.post(site.install_b())).status == 200
            response = await client.post(
                "/leads", json=lead, headers={"Authorization": "Bearer b-leads-token-0002"}
            )
            assert response.status == 201, await response.text()
            (card,) = await b.wait_for_posts(SALES_B, 1)
            await outbox_drained(client)
    assert "Initrode" in texts([card])
    assert "Initrode" not in texts([post for _, post in a.all_posts()])


async def test_the_tenants_installer_sets_its_role_lists_for_its_own_people_only(
    tenants: Tenants,
) -> None:
    tenants.b.add_member(BEA_B.aad, id=BEA_B.teams_id, name=BEA_B.name, tenantId=B)
    # SALESBOT_ADMINS names nobody of B: Ben is an admin of B as the one who added the app.
    async with serving(None, settings(salesbot_admins=(REP_A.teams_id,)), tenants.store) as app:
        world = Tenants(a=tenants.a, b=tenants.b, client=app, store=tenants.store)
        assert (await world.post(world.install_b())).status == 200
        desk = thread_id(DESK_B, "1700000001000")
        bea = {
            "type": "mention",
            "text": "<at>Bea</at>",
            "mentioned": {"id": BEA_B.teams_id, "name": "Bea"},
        }

        def say(who: Person, text: str) -> dict[str, Any]:
            activity = world.say(desk, who, text, tenant=B, mention=True, team=TEAM_B)
            if "Bea" in text:
                activity["text"] += " <at>Bea</at>"
                activity["entities"].append(bea)
            return activity

        # Bea (a member of B, no auditor) may not read audits; then Ben makes her B's auditor.
        await world.post(say(BEA_B, "audit"))
        await world.post(say(REP_B, "setup auditors"))  # nobody named: nothing set
        await world.post(say(REP_B, "setup auditors Bea"))
        await world.post(say(BEA_B, "audit"))
        await world.post(say(REP_B, "setup admins Bea"))  # the whole list: Ben is no admin now
        await world.post(say(REP_B, "setup leads"))
        await outbox_drained(app)
    whose = {c.conversation_id: c.member_id for c in tenants.b.creations}
    told = [(whose.get(conv), texts([post])) for conv, post in tenants.b.all_posts()]
    ben = [text for who, text in told if who == REP_B.teams_id]
    bea_told = [text for who, text in told if who == BEA_B.teams_id]
    assert "limited to auditors" in bea_told[0]
    assert "Name them with @mentions" in ben[0]
    assert "auditors of this workspace are now Bea" in ben[1]
    assert "made Bea the auditors" in bea_told[1]  # her audit of the thread (a card)
    assert "admins of this workspace are now Bea" in ben[2]
    assert "only admins" in ben[3]
    record = await tenants.store.get_state(tenant_key(B))
    assert record is not None
    assert record["leads"] is None
    roles = await tenants.store.get_state(f"roles:teams:{B}")
    assert roles is not None
    assert roles["installer"]["user"] == REP_B.aad
    assert [u["id"] for u in roles["lists"]["auditors"]["users"]] == [BEA_B.teams_id]


async def test_a_personal_install_or_the_home_tenants_team_makes_nobody_an_admin(
    tenants: Tenants,
) -> None:
    personal = tenants.install_b()
    personal["conversation"] = {"id": "a:ben", "conversationType": "personal", "tenantId": B}
    del personal["channelData"]["team"]
    assert (await tenants.post(personal)).status == 200
    home = tenants.install_b()
    home["conversation"]["tenantId"] = A
    home["channelData"]["tenant"] = {"id": A}
    home["from"] = account(REP_A)
    assert (await tenants.post(home)).status == 200
    assert await tenants.store.get_state(f"roles:teams:{B}") is None
    assert await tenants.store.get_state(f"roles:teams:{A}") is None
    # B's first team install does.
    assert (await tenants.post(tenants.install_b())).status == 200
    roles = await tenants.store.get_state(f"roles:teams:{B}")
    assert roles is not None
    assert roles["installer"]["user"] == REP_B.aad


async def test_an_auditor_of_one_tenant_never_reads_another_tenant_s_conversation(
    tenants: Tenants,
) -> None:
    """Ben audits for B, Ann for A (both in `SALESBOT_AUDITORS`). Each reads their own
    tenant's conversation; asking for the other's is answered as for an id that never
    existed, and nothing of it (the prospect's words) is shown."""
    both = settings(salesbot_auditors=(REP_A.teams_id, REP_B.aad))
    async with serving(None, both, tenants.store) as app:
        world = Tenants(a=tenants.a, b=tenants.b, client=app, store=tenants.store)
        await world.post(world.install_b())
        thread_a = thread_id(SHARED_A, "1700000002000")
        thread_b = thread_id(SHARED_B, "1700000002100")
        await world.post(world.say(thread_a, QUIN, f"{OBJECTION} Quinco here.", tenant=A))
        await world.post(world.say(thread_b, PAT, f"{OBJECTION} Patco here.", tenant=B))
        await outbox_drained(app)
        desk = thread_id(DESK_B, "1700000002200")
        for target in (thread_b, thread_a, "19:never@thread.tacv2"):
            await world.post(
                world.say(desk, REP_B, f"audit teams:{target}", tenant=B, mention=True, team=TEAM_B)
            )
            await outbox_drained(app)
    whose = {c.conversation_id: c.member_id for c in tenants.b.creations}
    ben = [post for conv, post in tenants.b.all_posts() if whose.get(conv) == REP_B.teams_id]
    own, other = (texts([post]) for post in ben[-3:-1])
    assert "Patco" in own
    assert "No conversation, lead or quote" not in own
    assert "Quinco" not in other
    assert "No conversation, lead or quote" in other
    # Word for word the answer for an id that never existed:
    said = [str(post.get("text", "")) for post in ben[-2:]]
    assert said[0].replace(thread_a, "X") == said[1].replace("19:never@thread.tacv2", "X")
