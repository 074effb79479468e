"""The Teams sender against a fake Bot Framework connector on 127.0.0.1, with the state book in
memory: where each reply lands, how cards are updated in place, how private notices and lead
threads work, and when a message waits because Teams has not told the bot where to post."""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.ports import Delivery, Rejected, RetryLater, Route, Sent
from adapters.teams import book
from adapters.teams import cards as teams_cards
from adapters.teams.cards import CARD_CONTENT_TYPE
from adapters.teams.connector import Connector, NoToken
from adapters.teams.router import conversation_route, destination_route
from adapters.teams.sender import TeamsSender
from domain.cards import Audience, Button, Card, CardField, Reply, ReplyImage
from domain.presenters import lead_card_ref
from storage.memory import MemoryStore
from tests.fakes.teams_connector import FakeConnector, thread_id
from tests.teams.signing import KEY

NOW = 1_700_000_000_000
CHANNEL = "19:x@thread.tacv2"
PERSONAL = "a:1personal"
HANDOFF = "19:handoff@thread.tacv2"
LEADS = "19:leads@thread.tacv2"
INSTALLED = "19:installed@thread.tacv2"
LEAD = "leadfeed:L-1"


def quote_card(status: str = "Open", title: str = "Quote Q-42") -> Card:
    return Card(
        kind="quote",
        title=title,
        fields=(CardField(label="Total", value="$1,791.00"),),
        lines=("10 × 199.00 = 1,990.00", "discount 10% = -199.00"),
        buttons=(Button(action="accept_quote", label="Accept", target="Q-42", style="primary"),),
        status=status,
        ref="Q-42",
    )


def delivery(
    reply: Reply,
    route: Route,
    *,
    key: str = "O-1",
    conversation_id: str = f"teams:{CHANNEL}",
) -> Delivery:
    return Delivery(
        key=key,
        conversation_id=conversation_id,
        channel=route.channel,
        payload={"reply": reply.model_dump(mode="json"), "target": route.target},
    )


BOT = {"id": "28:app-1", "name": "salesbot"}


def reference(conversation: str, service_url: str, kind: str = "channel") -> dict[str, Any]:
    return {
        "conversation": {"id": conversation, "conversationType": kind},
        "serviceUrl": service_url,
        "bot": BOT,
    }


def dead_url() -> str:
    """A service URL nothing listens on: a post there can only fail."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
async def fake() -> AsyncIterator[FakeConnector]:
    async with FakeConnector() as connector:
        yield connector


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    connector = Connector(NoToken(), timeout_s=5.0)
    yield connector
    await connector.close()


def make_sender(
    connector: Connector,
    store: MemoryStore,
    *,
    handoff: str | None = None,
    leads: str | None = None,
) -> TeamsSender:
    return TeamsSender(
        connector,
        store,
        handoff_conversation=handoff,
        leads_conversation=leads,
        clock=lambda: NOW,
        action_key=KEY,
    )


@pytest.fixture
async def sender(fake, store, connector) -> TeamsSender:
    """A sender that has heard from CHANNEL and PERSONAL, with nothing configured."""
    await store.put_state(book.conversation_key(CHANNEL), reference(CHANNEL, fake.base_url), NOW)
    await store.put_state(
        book.conversation_key(PERSONAL), reference(PERSONAL, fake.base_url, "personal"), NOW
    )
    return make_sender(connector, store)


# --- replies to a conversation ---------------------------------------------------------------


async def test_a_reply_to_a_conversation_is_posted_there_for_everyone(fake, sender):
    reply = Reply(audience="conversation", text="Hello there")

    outcome = await sender.send(delivery(reply, conversation_route(CHANNEL)))

    [posted] = fake.posted(CHANNEL)
    assert outcome == Sent(remote_id=posted["id"])
    assert posted["text"] == "Hello there"
    assert not fake.is_targeted(posted["id"])


async def test_a_card_is_posted_as_a_rendered_adaptive_card_with_user_text_escaped(fake, sender):
    reply = Reply(audience="conversation", text="", card=quote_card(title="[click](http://evil)"))

    await sender.send(delivery(reply, conversation_route(CHANNEL)))

    [posted] = fake.posted(CHANNEL)
    [attachment] = posted["attachments"]
    assert (
        attachment["contentType"] == CARD_CONTENT_TYPE == "application/vnd.microsoft.card.adaptive"
    )
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["body"][0]["text"] == r"\[click\]\(http://evil\)"
    assert posted["summary"] == "[click](http://evil)"  # the notification: plain text
    assert [action["verb"] for action in card["actions"]] == ["accept_quote"]


async def test_a_card_update_replaces_the_posted_card_in_place(fake, store, sender):
    first = await sender.send(
        delivery(
            Reply(audience="conversation", text="", card=quote_card()), conversation_route(CHANNEL)
        )
    )
    assert isinstance(first, Sent)
    update = Reply(
        audience="conversation",
        text="Accepted",
        card=quote_card(status="Accepted by Ada"),
        replaces="Q-42",
    )

    outcome = await sender.send(delivery(update, conversation_route(CHANNEL), key="O-2"))

    assert outcome == Sent(remote_id=first.remote_id)
    [posted] = fake.posted(CHANNEL)  # still one message: the same one, changed
    assert posted["id"] == first.remote_id
    assert posted["attachments"][0]["content"]["body"][1]["text"] == "Accepted by Ada"
    assert [call.method for call in fake.calls_of("update")] == ["PUT"]
    assert await store.get_state(book.card_key(CHANNEL, "Q-42")) == {"activity_id": first.remote_id}


async def test_a_card_teams_no_longer_has_is_posted_anew_rather_than_lost(fake, store, sender):
    await store.put_state(book.card_key(CHANNEL, "Q-42"), {"activity_id": "404404"}, NOW)
    update = Reply(
        audience="conversation",
        text="Accepted",
        card=quote_card(status="Accepted"),
        replaces="Q-42",
    )

    outcome = await sender.send(delivery(update, conversation_route(CHANNEL)))

    [posted] = fake.posted(CHANNEL)
    assert outcome == Sent(remote_id=posted["id"])
    assert [call.status for call in fake.calls_of("update")] == [404]
    assert await store.get_state(book.card_key(CHANNEL, "Q-42")) == {"activity_id": posted["id"]}


async def test_a_card_update_for_a_card_never_seen_is_posted_as_new(fake, sender):
    update = Reply(audience="conversation", text="", card=quote_card(), replaces="Q-42")

    outcome = await sender.send(delivery(update, conversation_route(CHANNEL)))

    assert isinstance(outcome, Sent)
    assert len(fake.posted(CHANNEL)) == 1
    assert fake.calls_of("update") == []


async def test_a_failed_card_update_is_not_posted_again_as_a_second_card(fake, sender):
    posted = await sender.send(
        delivery(
            Reply(audience="conversation", text="", card=quote_card()), conversation_route(CHANNEL)
        )
    )
    assert isinstance(posted, Sent)
    fake.fail_next("update", status=503)
    update = Reply(audience="conversation", text="", card=quote_card(status="Won"), replaces="Q-42")

    outcome = await sender.send(delivery(update, conversation_route(CHANNEL), key="O-2"))

    assert isinstance(outcome, RetryLater)
    assert len(fake.posted(CHANNEL)) == 1


# --- private notices -------------------------------------------------------------------------


async def test_a_notice_from_a_channel_goes_to_that_persons_personal_chat(fake, store, sender):
    account = {"id": "29:ada", "name": "Ada", "tenantId": fake.tenant_id}
    await store.put_state(book.user_key("aad-ada"), account, NOW)
    notice = Reply(audience="requester", text="Only you can see this")

    outcome = await sender.send(delivery(notice, conversation_route(CHANNEL, user="aad-ada")))
    again = await sender.send(
        delivery(notice, conversation_route(CHANNEL, user="aad-ada"), key="O-2")
    )

    assert fake.posted(CHANNEL) == []  # nothing in the channel, not even a targeted message
    [creation] = fake.creations  # opened once, then remembered
    assert creation.member_id == "29:ada"
    assert creation.parameters["bot"] == BOT
    posted = fake.posted(creation.conversation_id)
    assert [p["text"] for p in posted] == ["Only you can see this"] * 2
    assert outcome == Sent(remote_id=posted[0]["id"])
    assert isinstance(again, Sent)
    remembered = await store.get_state(book.personal_key("aad-ada"))
    assert remembered == {"conversation": creation.conversation_id}


async def test_a_personal_chat_that_cannot_be_opened_is_retried_or_refused(fake, store, sender):
    await store.put_state(book.user_key("aad-ada"), {"id": "29:ada", "tenantId": "t"}, NOW)
    notice = Reply(audience="requester", text="Only you can see this")
    fake.fail_next("create", status=503)
    fake.fail_next("create", status=403)

    busy = await sender.send(delivery(notice, conversation_route(CHANNEL, user="aad-ada")))
    refused = await sender.send(delivery(notice, conversation_route(CHANNEL, user="aad-ada")))

    assert isinstance(busy, RetryLater)
    assert type(refused) is Rejected
    assert fake.all_posts() == []


async def test_a_notice_in_a_personal_chat_is_a_plain_post(fake, sender):
    notice = Reply(audience="requester", text="Done")

    outcome = await sender.send(
        delivery(
            notice,
            conversation_route(PERSONAL, user="aad-ada"),
            conversation_id=f"teams:{PERSONAL}",
        )
    )

    [posted] = fake.posted(PERSONAL)
    assert outcome == Sent(remote_id=posted["id"])
    assert fake.creations == []


async def test_a_chat_with_an_a_prefixed_id_is_personal_even_without_its_reference(
    fake, store, connector
):
    await store.put_state(book.SERVICE_URL_KEY, {"serviceUrl": fake.base_url}, NOW)
    sender = make_sender(connector, store)
    notice = Reply(audience="requester", text="Done")

    outcome = await sender.send(delivery(notice, conversation_route("a:1other", user="aad-ada")))

    assert isinstance(outcome, Sent)
    assert len(fake.posted("a:1other")) == 1
    assert fake.creations == []


async def test_a_notice_for_someone_the_bot_has_not_seen_is_rejected(fake, sender):
    notice = Reply(audience="requester", text="Only you can see this")

    outcome = await sender.send(delivery(notice, conversation_route(CHANNEL, user="aad-nobody")))

    assert type(outcome) is Rejected
    assert fake.calls == []


# --- destinations ------------------------------------------------------------------------------


async def test_a_handoff_goes_to_the_configured_conversation(fake, store, connector):
    await store.put_state(book.SERVICE_URL_KEY, {"serviceUrl": fake.base_url}, NOW)
    await store.put_state(book.INSTALL_KEY, reference(INSTALLED, fake.base_url), NOW)
    sender = make_sender(connector, store, handoff=HANDOFF)

    outcome = await sender.send(
        delivery(Reply(audience="handoff", text="Needs a human"), destination_route("handoff"))
    )

    assert isinstance(outcome, Sent)
    assert [p["text"] for p in fake.posted(HANDOFF)] == ["Needs a human"]
    assert fake.posted(INSTALLED) == []


async def test_without_a_configured_handoff_it_goes_where_the_bot_was_added(fake, store, connector):
    await store.put_state(book.INSTALL_KEY, reference(INSTALLED, fake.base_url), NOW)
    sender = make_sender(connector, store)

    outcome = await sender.send(
        delivery(Reply(audience="handoff", text="Needs a human"), destination_route("handoff"))
    )

    assert isinstance(outcome, Sent)
    assert [p["text"] for p in fake.posted(INSTALLED)] == ["Needs a human"]


async def test_with_nowhere_to_hand_off_the_message_waits_rather_than_dying(fake, store, connector):
    await store.put_state(book.SERVICE_URL_KEY, {"serviceUrl": fake.base_url}, NOW)
    sender = make_sender(connector, store)

    outcome = await sender.send(
        delivery(Reply(audience="handoff", text="Needs a human"), destination_route("handoff"))
    )

    assert isinstance(outcome, RetryLater)
    assert outcome.retry_after_ms is not None
    assert outcome.retry_after_ms > 0
    assert "TEAMS_HANDOFF_CONVERSATION" in outcome.reason
    assert fake.calls == []


async def test_a_target_naming_no_conversation_is_rejected(fake, store, connector):
    sender = make_sender(connector, store, handoff=HANDOFF)
    route = Route(channel="teams:nowhere", target={"destination": "elsewhere"})

    outcome = await sender.send(delivery(Reply(audience="conversation", text="hi"), route))

    assert type(outcome) is Rejected
    assert fake.calls == []


# --- which service URL ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conversation_ref", "install_ref", "latest"),
    [
        (True, False, False),  # the conversation's own reference
        (True, True, True),  # ... first, whatever else is known
        (False, True, False),  # else the install channel's
        (False, True, True),  # ... before the latest one seen
        (False, False, True),  # else the latest one Teams used
    ],
)
async def test_a_conversation_is_reached_through_the_best_known_service_url(
    fake, store, connector, conversation_ref, install_ref, latest
):
    # Only the preferred source points at Teams; the others point where nothing listens.
    preferred = "conversation" if conversation_ref else "install" if install_ref else "latest"
    dead = dead_url()

    def url(source: str) -> str:
        return fake.base_url if source == preferred else dead

    if conversation_ref:
        await store.put_state(
            book.conversation_key(HANDOFF), reference(HANDOFF, url("conversation")), NOW
        )
    if install_ref:
        await store.put_state(book.INSTALL_KEY, reference(INSTALLED, url("install")), NOW)
    if latest:
        await store.put_state(book.SERVICE_URL_KEY, {"serviceUrl": url("latest")}, NOW)
    sender = make_sender(connector, store, handoff=HANDOFF)

    outcome = await sender.send(
        delivery(Reply(audience="handoff", text="Needs a human"), destination_route("handoff"))
    )

    assert isinstance(outcome, Sent)
    assert len(fake.posted(HANDOFF)) == 1


async def test_a_thread_uses_its_channels_service_url(fake, store, sender):
    thread = thread_id(CHANNEL, "1700000000123")

    outcome = await sender.send(
        delivery(Reply(audience="conversation", text="in the thread"), conversation_route(thread))
    )

    assert isinstance(outcome, Sent)
    assert len(fake.posted(thread)) == 1


async def test_with_no_service_url_known_the_message_waits(fake, store, connector):
    sender = make_sender(connector, store, handoff=HANDOFF)

    outcome = await sender.send(
        delivery(Reply(audience="handoff", text="Needs a human"), destination_route("handoff"))
    )

    assert isinstance(outcome, RetryLater)
    assert outcome.retry_after_ms is not None
    assert outcome.retry_after_ms > 0
    assert fake.calls == []


# --- lead threads ------------------------------------------------------------------------------


def lead_card() -> Card:
    return Card(kind="lead", title="New lead: Acme", ref=lead_card_ref(LEAD))


async def test_a_lead_card_starts_a_thread_that_the_leads_later_messages_go_into(
    fake, store, connector
):
    await store.put_state(book.SERVICE_URL_KEY, {"serviceUrl": fake.base_url}, NOW)
    sender = make_sender(connector, store, leads=LEADS)
    ref = lead_card_ref(LEAD)

    started = await sender.send(
        delivery(
            Reply(audience="team", text="", card=lead_card()),
            destination_route("leads", starts_thread=ref),
            conversation_id=LEAD,
        )
    )
    later = await sender.send(
        delivery(
            Reply(audience="conversation", text="The lead replied"),
            destination_route("leads", thread_of_ref=ref),
            key="O-2",
            conversation_id=LEAD,
        )
    )

    [card] = fake.posted(LEADS)
    assert started == Sent(remote_id=card["id"])
    thread = f"{LEADS};messageid={card['id']}"
    assert await store.get_state(book.thread_key(ref)) == {"conversation": thread}
    assert await store.get_state(book.lead_thread_key(thread)) == {"conversation_id": LEAD}
    assert isinstance(later, Sent)
    assert [p["text"] for p in fake.posted(thread)] == ["The lead replied"]


async def test_a_lead_thread_keeps_its_messages_after_the_leads_channel_is_unset(
    fake, store, connector
):
    await store.put_state(book.SERVICE_URL_KEY, {"serviceUrl": fake.base_url}, NOW)
    ref = lead_card_ref(LEAD)
    await make_sender(connector, store, leads=LEADS).send(
        delivery(
            Reply(audience="team", text="", card=lead_card()),
            destination_route("leads", starts_thread=ref),
            conversation_id=LEAD,
        )
    )
    [card] = fake.posted(LEADS)

    # Restarted without TEAMS_LEADS_CONVERSATION and no install recorded: the thread exists.
    outcome = await make_sender(connector, store).send(
        delivery(
            Reply(audience="conversation", text="The lead replied"),
            destination_route("leads", thread_of_ref=ref),
            key="O-2",
            conversation_id=LEAD,
        )
    )

    assert isinstance(outcome, Sent)
    thread = f"{LEADS};messageid={card['id']}"
    assert [p["text"] for p in fake.posted(thread)] == ["The lead replied"]


async def test_a_message_for_a_lead_thread_waits_until_its_card_is_posted(fake, store, connector):
    await store.put_state(book.SERVICE_URL_KEY, {"serviceUrl": fake.base_url}, NOW)
    sender = make_sender(connector, store, leads=LEADS)

    outcome = await sender.send(
        delivery(
            Reply(audience="conversation", text="The lead replied"),
            destination_route("leads", thread_of_ref=lead_card_ref(LEAD)),
            conversation_id=LEAD,
        )
    )

    assert isinstance(outcome, RetryLater)
    assert fake.calls == []


async def test_a_private_notice_about_a_lead_goes_to_the_persons_personal_chat(
    fake, store, connector
):
    await store.put_state(book.SERVICE_URL_KEY, {"serviceUrl": fake.base_url}, NOW)
    await store.put_state(book.INSTALL_KEY, reference(INSTALLED, fake.base_url), NOW)
    await store.put_state(book.user_key("aad-ada"), {"id": "29:ada", "tenantId": "t"}, NOW)
    sender = make_sender(connector, store, leads=LEADS)
    ref = lead_card_ref(LEAD)
    await sender.send(
        delivery(
            Reply(audience="team", text="", card=lead_card()),
            destination_route("leads", starts_thread=ref),
            conversation_id=LEAD,
        )
    )
    [card] = fake.posted(LEADS)

    outcome = await sender.send(
        delivery(
            Reply(audience="requester", text="Only you"),
            destination_route("leads", user="aad-ada", thread_of_ref=ref),
            key="O-2",
            conversation_id=LEAD,
        )
    )

    thread = thread_id(LEADS, card["id"])
    assert isinstance(outcome, Sent)
    assert fake.posted(thread) == []
    [creation] = fake.creations
    assert [p["text"] for p in fake.posted(creation.conversation_id)] == ["Only you"]


# --- look before resend -------------------------------------------------------------------------


async def test_find_sent_never_finds_anything_since_teams_has_no_history_to_search(fake, sender):
    posted = delivery(Reply(audience="conversation", text="hi"), conversation_route(CHANNEL))
    await sender.send(posted)

    assert await sender.find_sent(posted) is None


# --- images ----------------------------------------------------------------------------------


CHART_PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


def chart(audience: Audience = "requester") -> Reply:
    image = ReplyImage.of_png(
        CHART_PNG,
        filename="salesbot-metrics-0123456789ab.png",
        alt="Sales metrics chart",
        width=1000,
        height=750,
    )
    return Reply(audience=audience, text="Sales metrics chart", image=image)


async def test_a_chart_for_one_person_is_an_inline_png_in_their_personal_chat(fake, store, sender):
    await store.put_state(
        book.user_key("aad-ada"), {"id": "29:ada", "tenantId": fake.tenant_id}, NOW
    )

    outcome = await sender.send(delivery(chart(), conversation_route(CHANNEL, user="aad-ada")))

    assert isinstance(outcome, Sent)
    assert fake.posted(CHANNEL) == []  # the team's channel never sees it
    [creation] = fake.creations
    [posted] = fake.posted(creation.conversation_id)
    assert posted["text"] == "Sales metrics chart"
    [attachment] = posted["attachments"]
    assert attachment["contentType"] == "image/png"
    assert attachment["name"] == "salesbot-metrics-0123456789ab.png"
    prefix = "data:image/png;base64,"
    assert attachment["contentUrl"].startswith(prefix)
    assert base64.b64decode(attachment["contentUrl"][len(prefix) :]) == CHART_PNG


async def test_an_image_over_teams_inline_limit_is_sent_as_its_caption_saying_so(
    fake, sender, monkeypatch
):
    """The chart is drawn to fit (`bot.charts`); if one ever did not, the message still goes."""
    monkeypatch.setattr(teams_cards, "MAX_INLINE_IMAGE_BYTES", 100)

    outcome = await sender.send(delivery(chart("conversation"), conversation_route(CHANNEL)))

    assert isinstance(outcome, Sent)
    [posted] = fake.posted(CHANNEL)
    assert "attachments" not in posted
    assert posted["text"] == f"Sales metrics chart: {teams_cards.IMAGE_TOO_LARGE}"


async def test_the_fake_connector_refuses_an_inline_image_over_150_kb(fake, connector):
    """The fake enforces the limit the sender keeps (`domain.cards.IMAGE_MAX_BYTES`)."""
    uri = "data:image/png;base64," + "A" * (150 * 1024)
    activity = {"type": "message", "attachments": [{"contentType": "image/png", "contentUrl": uri}]}

    outcome = await connector.post(fake.base_url, CHANNEL, activity)

    assert type(outcome) is Rejected
    assert fake.posted(CHANNEL) == []
