"""A reply's image (the /metrics chart) reaches Slack as a real file, through the three calls
of `files_upload_v2`, against the fake Web API: privately in the requester's DM, never in the
channel the command was typed in (a Slack Connect prospect could see it there)."""

from __future__ import annotations

from typing import Any

from adapters.ports import Delivery, Rejected, RetryLater, Sent, TimedOut
from adapters.slack.sender import SlackSender, make_client
from domain.cards import Reply, ReplyImage
from tests.fakes.slack_api import FakeSlackApi
from tests.slack.test_sender import CHANNEL, CONVERSATION, KEY, TOKEN, team_id

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
IMAGE = ReplyImage.of_png(
    PNG,
    filename="salesbot-metrics-0123456789ab.png",
    alt="Sales metrics chart: 3 won of 10",
    width=1000,
    height=750,
)
CHART = Reply(audience="requester", text="Sales metrics chart", image=IMAGE)


def sender(api: FakeSlackApi, timeout_s: float = 5.0) -> SlackSender:
    return SlackSender(
        make_client(TOKEN, api.base_url, timeout_s=timeout_s), action_key=KEY, team_id=team_id
    )


def delivery(
    reply: Reply = CHART,
    *,
    key: str = "answer-1",
    ephemeral_user: str | None = "U0REP",
    thread_ts: str | None = None,
) -> Delivery:
    target: dict[str, Any] = {
        "channel": CHANNEL,
        "thread_ts": thread_ts,
        "ephemeral_user": ephemeral_user,
    }
    return Delivery(
        key=key,
        conversation_id=CONVERSATION,
        channel=f"slack:{CHANNEL}",
        payload={"reply": reply.model_dump(mode="json"), "target": target},
    )


async def test_a_chart_for_one_person_is_uploaded_to_their_dm_with_the_bot_in_three_steps() -> None:
    async with FakeSlackApi(token=TOKEN) as api:
        outcome = await sender(api).send(delivery())

        assert isinstance(outcome, Sent)
        methods = [call.method for call in api.calls]
        assert methods == [
            "files.getUploadURLExternal",
            "upload",
            "files.completeUploadExternal",
        ]
        (shared,) = api.files()
        assert shared["content"] == PNG  # the very bytes, not a link or a re-encoding
        assert shared["id"] == outcome.remote_id
        assert shared["title"] == "Sales metrics chart"
        assert shared["alt_txt"] == IMAGE.alt
        assert shared["name"].startswith("salesbot-metrics-0123456789ab-")
        assert shared["channels"] == ["DU0REP"]  # shared with the user: their DM
        assert [m["files"][0]["id"] for m in api.messages("DU0REP")] == [shared["id"]]
        # Nothing in the channel the command came from, not even a notice.
        assert api.messages(CHANNEL) == []
        assert api.ephemerals(CHANNEL) == []


async def test_a_chart_for_the_channel_is_shared_in_its_thread() -> None:
    async with FakeSlackApi(token=TOKEN) as api:
        outcome = await sender(api).send(
            delivery(
                Reply(audience="team", text="Sales metrics chart", image=IMAGE),
                ephemeral_user=None,
                thread_ts="1690000000.000100",
            )
        )

        assert isinstance(outcome, Sent)
        (message,) = api.messages(CHANNEL)
        assert message["thread_ts"] == "1690000000.000100"
        assert message["files"][0]["title"] == "Sales metrics chart"


async def test_an_upload_url_that_refuses_the_bytes_is_retried_later_and_nothing_was_shared() -> (
    None
):
    async with FakeSlackApi(token=TOKEN) as api:
        api.fail_next("upload", status=500)
        first = await sender(api).send(delivery())

        assert isinstance(first, RetryLater)
        assert api.files() == []
        assert api.messages("DU0REP") == []
        second = await sender(api).send(delivery())
        assert isinstance(second, Sent)
        assert len(api.files()) == 1


async def test_an_install_without_files_write_is_a_permanent_refusal() -> None:
    async with FakeSlackApi(token=TOKEN) as api:
        api.fail_next("files.getUploadURLExternal", error="missing_scope")
        outcome = await sender(api).send(delivery())

        assert outcome == Rejected(reason="missing_scope")
        assert api.files() == []


async def test_an_upload_whose_completion_went_unanswered_is_found_before_it_is_sent_again() -> (
    None
):
    async with FakeSlackApi(token=TOKEN) as api:
        api.drop_next("files.completeUploadExternal")  # shared, then the connection drops
        slack = sender(api)
        parent = api.add_message(CHANNEL, "the lead's card")
        in_thread = delivery(
            Reply(audience="team", text="Sales metrics chart", image=IMAGE),
            ephemeral_user=None,
            thread_ts=parent,
        )
        outcome = await slack.send(in_thread)

        assert isinstance(outcome, TimedOut)
        (shared,) = [m for m in api.messages(CHANNEL) if m.get("files")]
        assert await slack.find_sent(in_thread) == shared["ts"]
        # Another answer's chart with the same picture is a different upload.
        other = in_thread.model_copy(update={"key": "answer-2"})
        assert await slack.find_sent(other) is None


async def test_a_private_chart_that_may_have_been_shared_is_not_looked_for_in_a_dm() -> None:
    """Reading the requester's DM would need im:write: as with ephemeral notices, the outbox
    sends again, and at worst the requester sees the chart twice."""
    async with FakeSlackApi(token=TOKEN) as api:
        assert await sender(api).find_sent(delivery()) is None
        assert api.calls == []
