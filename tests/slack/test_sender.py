"""The Slack sender against a fake Slack Web API on 127.0.0.1: what gets posted where, and how
Slack's answers become outbox outcomes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.action_binding import ActionKey
from adapters.ports import Delivery, Rejected, RetryLater, Sent, TimedOut
from adapters.slack.blocks import message
from adapters.slack.ids import ButtonSigner
from adapters.slack.response_url import ResponseUrls, allowed
from adapters.slack.sender import CONNECTIONS, SharedSession, SlackSender, make_client
from domain.cards import Button, Card, CardField, Reply
from storage.memory import MemoryStore
from tests.fakes.slack_api import FakeSlackApi

TOKEN = "xoxb-test"
CHANNEL = "C0123"
CONVERSATION = f"slack:T0001:{CHANNEL}:1690000000.000100"
KEY = ActionKey(b"sender-test-secret")
SIGNER = ButtonSigner(KEY, "T0001")


async def team_id() -> str:
    return "T0001"


def make_sender(
    base_url: str, *, timeout_s: float = 5.0, responses: ResponseUrls | None = None, **kw: Any
) -> SlackSender:
    return SlackSender(
        make_client(TOKEN, base_url, timeout_s=timeout_s),
        action_key=KEY,
        team_id=team_id,
        responses=responses,
        **kw,
    )


def quote_card(status: str = "Open") -> Card:
    return Card(
        kind="quote",
        title="Quote Q-42",
        fields=(CardField(label="Total", value="$1,791.00"),),
        lines=("10 × 199.00 = 1,990.00", "discount 10% = -199.00"),
        buttons=(Button(action="accept_quote", label="Accept", target="Q-42", style="primary"),),
        status=status,
        ref="Q-42",
    )


def delivery(
    reply: Reply,
    *,
    key: str = "outbox-1",
    thread_ts: str | None = None,
    ephemeral_user: str | None = None,
    conversation: str = CONVERSATION,
    channel: str = CHANNEL,
    response_key: str | None = None,
) -> Delivery:
    target: dict[str, Any] = {
        "channel": channel,
        "thread_ts": thread_ts,
        "ephemeral_user": ephemeral_user,
    }
    if response_key is not None:
        target["response_key"] = response_key
    return Delivery(
        key=key,
        conversation_id=conversation,
        channel=f"slack:{channel}",
        payload={"reply": reply.model_dump(mode="json"), "target": target},
    )


@pytest.fixture
async def api() -> AsyncIterator[FakeSlackApi]:
    async with FakeSlackApi(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def sender(api: FakeSlackApi) -> SlackSender:
    return make_sender(api.base_url)


def outbox_tag(posted: dict[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = posted["metadata"]
    assert metadata["event_type"] == "salesbot_outbox"
    payload: dict[str, Any] = metadata["event_payload"]
    return payload


async def test_a_post_carries_metadata_with_the_outbox_key_and_blocks(api, sender):
    reply = Reply(audience="conversation", text="Here is your quote.", card=quote_card())

    outcome = await sender.send(delivery(reply, key="outbox-7"))

    [posted] = api.messages(CHANNEL)
    assert outcome == Sent(remote_id=posted["ts"])
    assert outbox_tag(posted) == {"key": "outbox-7", "ref": "Q-42"}
    rendered = message(reply, conversation=CONVERSATION, nonce_seed="outbox-7", signer=SIGNER)
    assert posted["blocks"] == rendered["blocks"]
    assert posted["text"] == "Here is your quote."
    [call] = api.calls_of("chat.postMessage")
    assert call.params["unfurl_links"] is False
    assert call.params["unfurl_media"] is False
    assert "link_names" not in call.params


async def test_a_thread_reply_goes_to_the_thread(api, sender):
    parent = await sender.send(delivery(Reply(audience="conversation", text="Hi"), key="k1"))
    assert isinstance(parent, Sent)
    assert parent.remote_id is not None

    await sender.send(
        delivery(
            Reply(audience="conversation", text="In thread"), key="k2", thread_ts=parent.remote_id
        )
    )

    posted = api.messages(CHANNEL)
    assert [m.get("thread_ts") for m in posted] == [None, parent.remote_id]


async def test_an_update_finds_the_card_by_ref_and_edits_it_in_place(api, sender):
    thread = api.add_message(CHANNEL, "Can I get a quote for 10 seats?")
    first = await sender.send(
        delivery(
            Reply(audience="conversation", text="Quote", card=quote_card()),
            key="k1",
            thread_ts=thread,
        )
    )
    await sender.send(
        delivery(Reply(audience="conversation", text="Something else"), key="k2", thread_ts=thread)
    )

    update = Reply(
        audience="conversation",
        text="Quote accepted",
        card=quote_card(status="Accepted"),
        replaces="Q-42",
    )
    outcome = await sender.send(delivery(update, key="k3", thread_ts=thread))

    assert isinstance(first, Sent)
    assert outcome == Sent(remote_id=first.remote_id)
    posted = [m for m in api.messages(CHANNEL) if m.get("bot_id")]
    assert len(posted) == 2
    card = next(m for m in posted if m["ts"] == first.remote_id)
    assert card["text"] == "Quote accepted"
    rendered = message(update, conversation=CONVERSATION, nonce_seed="k3", signer=SIGNER)
    assert card["blocks"] == rendered["blocks"]
    assert outbox_tag(card) == {"key": "k3", "ref": "Q-42"}
    assert api.calls_of("conversations.replies")[0].params["include_all_metadata"] in ("1", "true")


async def test_an_update_whose_card_cannot_be_found_is_posted_as_a_new_message(api, sender):
    update = Reply(
        audience="conversation", text="Quote accepted", card=quote_card("Accepted"), replaces="Q-42"
    )

    outcome = await sender.send(delivery(update, key="k9"))

    [posted] = api.messages(CHANNEL)
    assert outcome == Sent(remote_id=posted["ts"])
    assert outbox_tag(posted) == {"key": "k9", "ref": "Q-42"}
    assert api.calls_of("chat.update") == []


async def test_a_429_is_retried_later_after_the_retry_after_delay(api, sender):
    api.fail_next("chat.postMessage", status=429, retry_after=7)

    outcome = await sender.send(delivery(Reply(audience="conversation", text="Hi")))

    assert isinstance(outcome, RetryLater)
    assert outcome.retry_after_ms == 7000
    assert api.messages(CHANNEL) == []


async def test_a_500_is_retried_later(api, sender):
    api.fail_next("chat.postMessage", status=500)

    outcome = await sender.send(delivery(Reply(audience="conversation", text="Hi")))

    assert isinstance(outcome, RetryLater)
    assert outcome.retry_after_ms is None
    assert api.messages(CHANNEL) == []


async def test_channel_not_found_is_rejected_for_good(api, sender):
    api.fail_next("chat.postMessage", error="channel_not_found")

    outcome = await sender.send(delivery(Reply(audience="conversation", text="Hi")))

    assert outcome == Rejected(reason="channel_not_found")


async def test_an_unknown_slack_error_is_retried_later_with_the_reason(api, sender):
    api.fail_next("chat.postMessage", error="something_new")

    outcome = await sender.send(delivery(Reply(audience="conversation", text="Hi")))

    assert isinstance(outcome, RetryLater)
    assert "something_new" in outcome.reason


async def test_a_fatal_error_counts_as_maybe_posted(api, sender):
    api.fail_next("chat.postMessage", error="fatal_error")

    outcome = await sender.send(delivery(Reply(audience="conversation", text="Hi")))

    assert isinstance(outcome, TimedOut)


async def test_a_timeout_after_posting_is_timed_out_and_find_sent_then_finds_the_message(api):
    quick = make_sender(api.base_url, timeout_s=0.2)
    thread = api.add_message(CHANNEL, "Hello?")
    release = api.hang_next("chat.postMessage")
    item = delivery(Reply(audience="conversation", text="Hi"), key="outbox-3", thread_ts=thread)
    other = delivery(Reply(audience="conversation", text="Other"), key="outbox-4", thread_ts=thread)

    outcome = await quick.send(item)
    release.set()

    assert isinstance(outcome, TimedOut)
    posted = [m for m in api.messages(CHANNEL) if m.get("thread_ts") == thread]
    assert len(posted) == 1
    assert await quick.find_sent(item) == posted[0]["ts"]
    assert await quick.find_sent(other) is None


async def test_find_sent_looks_in_the_channel_history_for_top_level_posts(api, sender):
    item = delivery(Reply(audience="conversation", text="Hi"), key="outbox-5")
    await sender.send(delivery(Reply(audience="conversation", text="Before"), key="outbox-4"))
    outcome = await sender.send(item)

    assert isinstance(outcome, Sent)
    assert await sender.find_sent(item) == outcome.remote_id
    assert api.calls_of("conversations.history")


async def test_find_sent_reads_no_further_than_the_history_limit(api):
    sender = make_sender(api.base_url, history_limit=2)
    old = delivery(Reply(audience="conversation", text="Old"), key="old")
    await sender.send(old)
    for n in range(2):
        await sender.send(delivery(Reply(audience="conversation", text=f"New {n}"), key=f"new-{n}"))

    assert await sender.find_sent(old) is None


async def test_an_ephemeral_reply_goes_to_chat_post_ephemeral_and_is_never_looked_up(api, sender):
    item = delivery(
        Reply(audience="requester", text="Only you can see this."), ephemeral_user="U777"
    )

    outcome = await sender.send(item)

    [shown] = api.ephemerals(CHANNEL)
    assert shown["user"] == "U777"
    assert outcome == Sent(remote_id=shown["ts"])
    assert api.messages(CHANNEL) == []
    assert await sender.find_sent(item) is None
    assert api.calls_of("conversations.history") == []


@pytest.mark.parametrize(
    ("status", "error"), [(429, None), (500, None), (200, "ratelimited"), (200, "internal_error")]
)
async def test_the_client_never_retries_on_its_own(api, sender, status, error):
    api.fail_next("chat.postMessage", status=status, error=error, times=3)

    await sender.send(delivery(Reply(audience="conversation", text="Hi")))

    assert len(api.calls_of("chat.postMessage")) == 1


async def test_a_connection_dropped_after_posting_is_timed_out_and_not_posted_twice(api, sender):
    # The SDK's default retry handler would resend here, and the message would appear twice.
    api.drop_next("chat.postMessage")
    item = delivery(Reply(audience="conversation", text="Hi"), key="outbox-8")

    outcome = await sender.send(item)

    assert isinstance(outcome, TimedOut)
    [posted] = api.messages(CHANNEL)
    assert len(api.calls_of("chat.postMessage")) == 1
    assert await sender.find_sent(item) == posted["ts"]


async def test_a_refused_connection_is_retried_later():
    async with FakeSlackApi(token=TOKEN) as api:
        base_url = api.base_url  # the port is closed once the fake has stopped
    sender = make_sender(base_url)

    outcome = await sender.send(delivery(Reply(audience="conversation", text="Hi")))

    assert isinstance(outcome, RetryLater)


def test_the_api_url_must_end_with_a_slash():
    with pytest.raises(ValueError, match="must end with"):
        make_client(TOKEN, "https://slack.com/api")


# ---- a slash command's response_url -------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def states() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
async def responses(
    api: FakeSlackApi, states: MemoryStore, clock: Clock
) -> AsyncIterator[ResponseUrls]:
    urls = ResponseUrls(states, clock, api_url=api.base_url)
    yield urls
    await urls.close()


COMMAND = "slack:cmd:trig-1"
RESPONSE_KEY = "slack:response:trig-1"


async def test_a_private_reply_to_a_command_goes_through_its_response_url(
    api: FakeSlackApi, responses: ResponseUrls, states: MemoryStore
) -> None:
    url = api.response_url(CHANNEL, "U777")
    assert await responses.remember(COMMAND, url)
    sender = make_sender(api.base_url, responses=responses)
    item = delivery(
        Reply(audience="requester", text="Only you.", card=quote_card()),
        ephemeral_user="U777",
        response_key=RESPONSE_KEY,
    )

    outcome = await sender.send(item)

    assert outcome == Sent(remote_id=None)
    [posted] = api.response_posts(url)
    assert posted["response_type"] == "ephemeral"
    assert posted["text"] == "Only you."
    button = posted["blocks"][-1]["elements"][0]
    assert '"s":"v1.' in button["value"]  # signed for the workspace, like any card
    assert api.calls_of("chat.postEphemeral") == []
    assert (await states.get_state(RESPONSE_KEY) or {})["uses"] == 1


async def test_after_five_uses_or_thirty_minutes_replies_take_the_chat_path(
    api: FakeSlackApi, responses: ResponseUrls, clock: Clock
) -> None:
    url = api.response_url(CHANNEL, "U777")
    await responses.remember(COMMAND, url)
    sender = make_sender(api.base_url, responses=responses)

    def private(n: int) -> Delivery:
        reply = Reply(audience="requester", text=f"notice {n}")
        return delivery(reply, key=f"k{n}", ephemeral_user="U777", response_key=RESPONSE_KEY)

    for n in range(6):
        assert isinstance(await sender.send(private(n)), Sent)
    assert len(api.response_posts(url)) == 5
    assert [e["text"] for e in api.ephemerals(CHANNEL)][-1] == "notice 5"
    assert len(api.calls_of("chat.postEphemeral")) == 1

    other = api.response_url(CHANNEL, "U777")
    await responses.remember("slack:cmd:trig-2", other)
    clock.now += 30 * 60 * 1000
    reply = Reply(audience="requester", text="late")
    late = delivery(reply, key="late", ephemeral_user="U777", response_key="slack:response:trig-2")
    assert isinstance(await sender.send(late), Sent)
    assert api.response_posts(other) == []
    assert len(api.calls_of("chat.postEphemeral")) == 2


async def test_an_expired_or_redirecting_response_url_falls_back_and_is_never_followed(
    api: FakeSlackApi, responses: ResponseUrls
) -> None:
    elsewhere = api.response_url("C0OTHER", "U777")
    expired = api.response_url(CHANNEL, "U777")
    redirecting = api.response_url(CHANNEL, "U777", redirect_to=elsewhere)
    api.expire(expired)
    await responses.remember("slack:cmd:a", expired)
    await responses.remember("slack:cmd:b", redirecting)
    sender = make_sender(api.base_url, responses=responses)

    for n, key in enumerate(("slack:response:a", "slack:response:b")):
        reply = Reply(audience="requester", text=f"answer {n}")
        item = delivery(reply, key=f"k{n}", ephemeral_user="U777", response_key=key)
        assert isinstance(await sender.send(item), Sent)

    assert [e["text"] for e in api.ephemerals(CHANNEL)] == ["answer 0", "answer 1"]
    assert api.response_posts(elsewhere) == []


async def test_a_response_url_that_fails_is_retried_later(
    api: FakeSlackApi, responses: ResponseUrls
) -> None:
    url = api.response_url(CHANNEL, "U777")
    await responses.remember(COMMAND, url)
    sender = make_sender(api.base_url, responses=responses)
    api.fail_next("response_url", status=500)
    item = delivery(
        Reply(audience="requester", text="x"), ephemeral_user="U777", response_key=RESPONSE_KEY
    )

    assert isinstance(await sender.send(item), RetryLater)
    assert api.calls_of("chat.postEphemeral") == []


async def test_a_command_answered_in_a_channel_the_bot_is_not_in_goes_through_the_response_url(
    api: FakeSlackApi, responses: ResponseUrls
) -> None:
    api.not_a_member("C0OUT")
    url = api.response_url("C0OUT", "U777")
    await responses.remember(COMMAND, url)
    sender = make_sender(api.base_url, responses=responses)
    reply = Reply(audience="conversation", text="Here is your quote.", card=quote_card())

    outcome = await sender.send(
        delivery(
            reply, channel="C0OUT", conversation="slack:T0001:C0OUT", response_key=RESPONSE_KEY
        )
    )

    assert outcome == Sent(remote_id=None)
    [posted] = api.response_posts(url)
    assert posted["response_type"] == "in_channel"
    assert [m["text"] for m in api.messages("C0OUT")] == ["Here is your quote."]
    without = await sender.send(delivery(reply, key="k2", channel="C0OUT"))
    assert without == Rejected(reason="not_in_channel")


async def test_where_the_bot_is_a_member_a_commands_card_is_posted_with_its_metadata(
    api: FakeSlackApi, responses: ResponseUrls
) -> None:
    url = api.response_url(CHANNEL, "U777")
    await responses.remember(COMMAND, url)
    sender = make_sender(api.base_url, responses=responses)
    reply = Reply(audience="conversation", text="Here is your quote.", card=quote_card())

    outcome = await sender.send(delivery(reply, key="k9", response_key=RESPONSE_KEY))

    [posted] = api.messages(CHANNEL)
    assert outcome == Sent(remote_id=posted["ts"])
    assert outbox_tag(posted) == {"key": "k9", "ref": "Q-42"}  # updatable in place later
    assert api.response_posts(url) == []


@pytest.mark.parametrize(
    ("url", "loopback", "allowed_"),
    [
        ("https://hooks.slack.com/commands/T1/2/x", False, True),
        ("https://hooks.slack.com:443/commands/T1/2/x", False, True),
        ("http://hooks.slack.com/commands/T1/2/x", False, False),
        ("https://hooks.slack.com.evil.example/commands", False, False),
        ("https://evil.example/hooks.slack.com/", False, False),
        ("https://user:pw@hooks.slack.com/commands", False, False),
        ("https://hooks.slack.com:8443/commands", False, False),
        ("http://127.0.0.1:9/response/R1", False, False),
        ("http://169.254.169.254/latest/meta-data", False, False),
        ("http://127.0.0.1:9/response/R1", True, True),
        ("http://[::1]:9/response/R1", True, True),
        ("https://hooks.slack.com/commands/T1/2/x", True, False),
        ("http://10.0.0.1/x", True, False),
        ("http://[::1/x", True, False),
        ("", False, False),
        (None, False, False),
        ("https://hooks.slack.com/" + "a" * 3000, False, False),
    ],
)
def test_only_slacks_hooks_host_or_loopback_for_a_local_slack_is_a_response_url(
    url: object, loopback: bool, allowed_: bool
) -> None:
    assert allowed(url, loopback=loopback) is allowed_


async def test_a_response_url_that_is_not_allowed_is_not_kept(
    responses: ResponseUrls, states: MemoryStore
) -> None:
    assert not await responses.remember(COMMAND, "https://evil.example/x")
    assert not await responses.remember("slack:msg:C1:1.2", "http://127.0.0.1:1/x")
    assert await states.get_state(RESPONSE_KEY) is None


async def test_a_burst_of_sends_to_many_channels_keeps_within_the_clients_connections(api):
    """Sends held up by a slow Slack wait for one of the client's connections instead of each
    opening its own: a burst leaves at most `CONNECTIONS` sockets open, not one per send."""
    client = make_client(TOKEN, api.base_url, timeout_s=10.0)
    connections = SharedSession(client)
    connections.open()
    burst = CONNECTIONS + 8
    release = api.hang_next("chat.postMessage", times=burst)
    sender = SlackSender(client, action_key=KEY, team_id=team_id)
    try:
        sends = [
            asyncio.create_task(
                sender.send(
                    delivery(
                        Reply(audience="conversation", text=f"Hi {n}"),
                        key=f"outbox-burst-{n}",
                        channel=f"C{n:04d}",
                        conversation=f"slack:T0001:C{n:04d}:1690000000.000100",
                    )
                )
            )
            for n in range(burst)
        ]

        async def held() -> None:
            while len(api.calls_of("chat.postMessage")) < CONNECTIONS:
                await asyncio.sleep(0)

        await asyncio.wait_for(held(), timeout=10)
        release.set()
        outcomes = await asyncio.gather(*sends)
    finally:
        await connections.close()
    assert all(isinstance(outcome, Sent) for outcome in outcomes)
    peers = {peer for method, peer in api.peers if method == "chat.postMessage"}
    assert len(peers) <= CONNECTIONS
