"""Auditors and approvers may be Slack user groups: their members get the rights."""

from __future__ import annotations

from typing import Any

from adapters.slack.directory import SlackDirectory
from adapters.slack.sender import make_client
from tests.fakes.slack_api import FakeSlackApi


async def test_members_of_an_approver_group_are_approvers_and_others_are_not() -> None:
    async with FakeSlackApi(token="xoxb-test", team_id="T0001", bot_user_id="UBOT") as api:
        asked: list[str] = []

        def members(params: dict[str, Any]) -> dict[str, Any]:
            asked.append(str(params.get("usergroup")))
            return {"users": ["U0BOSS", "U0LEAD"]}

        api.on("usergroups.users.list", members)
        directory = SlackDirectory(
            make_client("xoxb-test", api.base_url),
            auditors=frozenset({"U0AUDIT"}),
            approvers=frozenset({"S0MANAGERS"}),
            handoff_channel=None,
        )
        context = await directory.context()
        assert context.approvers == {"U0BOSS", "U0LEAD"}
        assert context.auditors == {"U0AUDIT"}
        assert context.team_id == "T0001"
        await directory.context()
        assert asked == ["S0MANAGERS"]  # cached between actions


async def test_an_unreadable_group_grants_nothing() -> None:
    async with FakeSlackApi(token="xoxb-test") as api:
        directory = SlackDirectory(
            make_client("xoxb-test", api.base_url),
            auditors=frozenset({"S0NOPE"}),
            approvers=frozenset(),
            handoff_channel=None,
        )
        assert (await directory.context()).auditors == frozenset()


async def test_people_are_named_as_slack_shows_them_and_asked_about_once() -> None:
    async with FakeSlackApi(token="xoxb-test") as api:
        api.add_user("U0PAT", name="pat", profile={"display_name": "Pat", "real_name": "Pat Lee"})
        api.add_user("U0RAE", name="rae", profile={"display_name": "", "real_name": "Rae Rep"})
        api.add_user("U0GUS", name="gus", is_restricted=True)
        directory = SlackDirectory(
            make_client("xoxb-test", api.base_url),
            auditors=frozenset(),
            approvers=frozenset(),
            handoff_channel=None,
        )
        assert await directory.display_name("U0PAT") == "Pat"  # the display name first
        assert await directory.display_name("U0RAE") == "Rae Rep"  # else the real name
        assert await directory.display_name("U0GUS") is None  # no profile: the caller's name
        assert await directory.is_guest("U0GUS")
        assert not await directory.is_guest("U0PAT")
        assert await directory.display_name("U0NOBODY") is None
        assert await directory.is_guest("U0NOBODY")  # unknown: least rights
        asked = [str(call.params.get("user")) for call in api.calls_of("users.info")]
        # Someone Slack will not describe is asked about again later, not at every message.
        assert sorted(asked) == ["U0GUS", "U0NOBODY", "U0PAT", "U0RAE"]
