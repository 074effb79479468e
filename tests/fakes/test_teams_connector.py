"""The fake Teams connector answers as the Bot Framework connector does, for raw HTTP and for
the SDK's own ConnectorClient, so tests built on it exercise the real wire format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from microsoft_agents.activity import Activity, ChannelAccount, Channels
from microsoft_agents.activity.channel_id import ChannelId
from microsoft_agents.hosting.core.connector.client import ConnectorClient

from tests.fakes.teams_connector import FakeConnector, thread_id

CHANNEL = "19:abc123@thread.tacv2"
PERSONAL = "a:1personal"
ROSTER = {
    "aad-ada": {"id": "29:ada", "name": "Ada Lovelace", "email": "ada@acme.test"},
    "29:gus": {"name": "Gus Guest", "aadObjectId": "aad-gus", "userRole": "guest"},
}


@pytest.fixture
async def connector() -> AsyncIterator[FakeConnector]:
    async with FakeConnector(members=ROSTER) as fake:
        yield fake


@pytest.fixture
async def http(connector: FakeConnector) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=connector.base_url) as session:
        yield session


def message(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "message", "text": text, **extra}


async def post(
    http: aiohttp.ClientSession, conversation: str, body: dict[str, Any], **params: str
) -> tuple[int, dict[str, Any]]:
    async with http.post(
        f"v3/conversations/{quote(conversation, safe='')}/activities", json=body, params=params
    ) as response:
        return response.status, await response.json()


async def test_a_posted_activity_is_stored_with_its_new_id(connector, http):
    status, answer = await post(http, PERSONAL, message("hello"))

    assert status == 201
    assert answer == {"id": "1700000000001"}
    assert connector.posted(PERSONAL) == [
        {"type": "message", "text": "hello", "id": "1700000000001"}
    ]
    assert connector.calls[0].kind == "send"
    assert connector.calls[0].conversation_id == PERSONAL


async def test_a_channel_post_starts_a_thread_that_replies_go_into(connector, http):
    _, root = await post(http, CHANNEL, message("new lead"))
    thread = thread_id(CHANNEL, root["id"])
    _, reply = await post(http, thread, message("details"))

    assert thread == f"{CHANNEL};messageid=1700000000001"
    assert [a["text"] for a in connector.posted(CHANNEL)] == ["new lead"]
    assert connector.posted(thread) == [{"type": "message", "text": "details", "id": reply["id"]}]
    assert int(reply["id"]) > int(root["id"])


async def test_a_targeted_post_is_recorded_as_private(connector, http):
    body = message("only you", recipient={"id": "29:ada"})
    status, answer = await post(http, CHANNEL, body, isTargetedActivity="true")
    await post(http, CHANNEL, message("everyone"))

    assert status == 201
    assert connector.is_targeted(answer["id"])
    assert [a["text"] for a in connector.posted(CHANNEL, targeted=True)] == ["only you"]
    assert [a["text"] for a in connector.posted(CHANNEL, targeted=False)] == ["everyone"]
    assert connector.calls[0].targeted


async def test_an_update_replaces_the_activity_and_an_unknown_one_is_not_found(connector, http):
    _, root = await post(http, CHANNEL, message("draft"))
    # Teams lets a top-level post be edited through its thread's conversation id too.
    url = f"v3/conversations/{thread_id(CHANNEL, root['id'])}/activities/{root['id']}"
    async with http.put(url, json=message("final")) as response:
        assert response.status == 200
        assert await response.json() == {"id": root["id"]}
    async with http.put(f"v3/conversations/{CHANNEL}/activities/999", json=message("x")) as missing:
        assert missing.status == 404
        assert (await missing.json())["error"]["code"] == "ActivityNotFoundInConversation"

    assert connector.activity(CHANNEL, root["id"]) == {**message("final"), "id": root["id"]}
    assert connector.posted(CHANNEL)[0]["text"] == "final"
    assert [u.activity["text"] for u in connector.updates] == ["final"]


async def test_creating_a_personal_conversation_gives_each_member_one_stable_id(connector, http):
    def parameters(member: str, **extra: Any) -> dict[str, Any]:
        return {
            "isGroup": False,
            "bot": {"id": "28:bot"},
            "members": [{"id": member}],
            "channelData": {"tenant": {"id": "tenant-1"}},
            **extra,
        }

    async def create(body: dict[str, Any]) -> dict[str, Any]:
        async with http.post("v3/conversations", json=body) as response:
            assert response.status == 201
            answer: dict[str, Any] = await response.json()
            return answer

    first = await create(parameters("29:ada"))
    again = await create(parameters("aad-ada", activity=message("welcome")))  # same person
    other = await create(parameters("29:gus"))

    assert first["id"].startswith("a:")
    assert again["id"] == first["id"]
    assert other["id"] != first["id"]
    assert first["serviceUrl"] == connector.base_url
    assert connector.posted(first["id"]) == [{**message("welcome"), "id": again["activityId"]}]
    assert [c.member_id for c in connector.creations] == ["29:ada", "29:ada", "29:gus"]


async def test_a_member_is_found_by_either_id_with_their_role_and_a_stranger_is_not(http):
    async with http.get(f"v3/conversations/{CHANNEL}/members/aad-gus") as response:
        gus = await response.json()
    async with http.get(f"v3/conversations/{CHANNEL}/members/29%3Aada") as response:
        ada = await response.json()
    async with http.get(f"v3/conversations/{CHANNEL}/members/29:nobody") as response:
        assert response.status == 404
        missing = await response.json()

    assert gus["id"] == "29:gus"
    assert gus["userRole"] == "guest"
    assert ada["aadObjectId"] == "aad-ada"
    assert ada["userRole"] == "user"
    assert ada["email"] == ada["userPrincipalName"] == "ada@acme.test"
    assert missing["error"]["code"] == "MemberNotFoundInConversation"


async def test_a_request_without_the_right_bearer_token_is_refused():
    async with FakeConnector(token="secret") as connector, aiohttp.ClientSession() as http:
        url = f"{connector.base_url}v3/conversations/{PERSONAL}/activities"
        async with http.post(url, json=message("a")) as anonymous:
            assert anonymous.status == 401
        wrong = {"Authorization": "Bearer other"}
        async with http.post(url, json=message("b"), headers=wrong) as refused:
            assert refused.status == 401
            assert (await refused.json())["error"]["code"] == "Unauthorized"
        right = {"Authorization": "Bearer secret"}
        async with http.post(url, json=message("c"), headers=right) as accepted:
            assert accepted.status == 201

    assert [c.status for c in connector.calls] == [401, 401, 201]
    assert [c.authorization for c in connector.calls] == [False, True, True]
    assert [a["text"] for a in connector.posted(PERSONAL)] == ["c"]


async def test_a_scripted_throttle_answers_429_with_retry_after_and_posts_nothing(connector, http):
    connector.fail_next("send", status=429, retry_after=3)
    async with http.post(f"v3/conversations/{PERSONAL}/activities", json=message("hi")) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "3"
        assert (await response.json())["error"]["code"] == "Throttled"
    status, _ = await post(http, PERSONAL, message("hi again"))

    assert status == 201
    assert [a["text"] for a in connector.posted(PERSONAL)] == ["hi again"]


async def test_a_scripted_error_code_reaches_the_client(connector, http):
    connector.fail_next("send", status=403, code="BotNotInConversationRoster")
    status, answer = await post(http, PERSONAL, message("hi"))

    assert status == 403
    assert answer["error"]["code"] == "BotNotInConversationRoster"


async def test_a_hung_post_is_stored_at_once_and_answered_only_when_released(connector, http):
    release = connector.hang_next("send")
    sending = asyncio.create_task(post(http, PERSONAL, message("slow")))

    posts = await connector.wait_for_posts(PERSONAL, 1)
    assert not sending.done()
    release.set()
    status, answer = await sending

    assert status == 201
    assert answer["id"] == posts[0]["id"]


async def test_a_dropped_post_is_stored_but_never_answered(connector, http):
    connector.drop_next("send")
    with pytest.raises(aiohttp.ClientError):
        await post(http, PERSONAL, message("lost answer"))

    assert [a["text"] for a in connector.posted(PERSONAL)] == ["lost answer"]
    assert connector.calls[-1].status == 0


async def test_waiting_for_posts_wakes_on_the_post_and_times_out_with_what_was_posted(
    connector, http
):
    waiting = asyncio.create_task(connector.wait_for_posts(CHANNEL, 1))
    await asyncio.sleep(0)  # let the waiter block first: it must be woken, not poll
    await post(http, CHANNEL, message("arrived"))
    assert [a["text"] for a in await waiting] == ["arrived"]

    with pytest.raises(TimeoutError, match=r"(?s)expected 2 post\(s\).*'arrived'"):
        await connector.wait_for_posts(CHANNEL, 2, timeout=0.05)


async def test_the_sdk_client_posts_replies_and_reads_members_over_the_same_wire(connector):
    client = ConnectorClient(connector.base_url, token="")
    try:
        conversations = client.conversations
        root = await conversations.send_to_conversation(
            CHANNEL, Activity(type="message", text="hi")
        )
        thread = thread_id(CHANNEL, str(root.id))
        reply = await conversations.send_to_conversation(
            thread, Activity(type="message", text="in thread")
        )
        answer = await conversations.reply_to_activity(
            thread, str(reply.id), Activity(type="message", text="reply to reply")
        )
        private = Activity(type="message", text="psst", channel_id=ChannelId(Channels.ms_teams))
        private.with_targeted_recipient(ChannelAccount(id="29:ada"))
        await conversations.send_to_conversation(CHANNEL, private)
        await conversations.update_activity(
            CHANNEL, str(root.id), Activity(type="message", text="hi (edited)")
        )
        member = await conversations.get_conversation_member(CHANNEL, "aad-ada")
    finally:
        await client.close()

    assert [a["text"] for a in connector.posted(CHANNEL)] == ["hi (edited)", "psst"]
    assert [a["text"] for a in connector.posted(thread)] == ["in thread", "reply to reply"]
    assert connector.calls_of("send")[2].reply_to == reply.id
    assert answer.id == connector.posted(thread)[1]["id"]
    assert connector.posted(CHANNEL, targeted=True)[0]["recipient"]["id"] == "29:ada"
    assert member.id == "29:ada"
    assert member.name == "Ada Lovelace"
    assert not connector.calls[0].authorization  # token="" sends no Authorization header
