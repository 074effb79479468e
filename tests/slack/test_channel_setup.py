"""The Slack half of `setup`: the channel read out of Slack's mention syntax (slash command
and @mention in a thread), the admin right from `SALESBOT_ADMINS`, the other `/salesbot`
commands reading their text as typed although `/salesbot` now escapes, and the router and
directory placing a workspace's cards in the channel its admin chose."""

from __future__ import annotations

from typing import Any

from adapters.slack.channels import KEY, WorkspaceChannels
from adapters.slack.inbound import (
    CommandUsage,
    SlackContext,
    from_command,
    from_event,
    named_channel,
    named_people,
    plain,
)
from adapters.slack.router import SlackRouter
from domain.cards import Reply
from domain.decide import new_conversation
from domain.events import ChannelSet
from domain.inbound import Actor, ChannelRef, CommandInvoked, MessagePosted, UserRef
from domain.policy import Policy
from storage.memory import MemoryStore

TEAM, OTHER = "T111", "T222"
CONTEXT = SlackContext(team_id=TEAM, bot_user_id="W111", admins=frozenset({"W_ADM"}))


async def rep(_user: str) -> bool:
    return False  # nobody is a guest


def form(text: str, command: str = "/salesbot", user: str = "W_ADM") -> dict[str, str]:
    return {
        "command": command,
        "text": text,
        "user_id": user,
        "user_name": "ada",
        "channel_id": "C0WORK",
        "team_id": TEAM,
        "trigger_id": "111.222.abc",
    }


async def test_a_slash_command_names_the_channel_by_its_id_and_the_workspace() -> None:
    result = await from_command(form("setup handoff <#C0DESK|deals-desk>"), CONTEXT, rep)
    assert isinstance(result, CommandInvoked)
    assert (result.command, result.args) == ("setup", "handoff #deals-desk")
    assert result.channel == ChannelRef(id="C0DESK", name="deals-desk")
    assert result.installation == f"slack:{TEAM}"
    assert result.actor.admin
    assert result.actor.may_admin


async def test_slash_setup_and_a_mention_without_a_name_or_a_bare_id_work_too() -> None:
    direct = await from_command(form("leads <#C0LEADS>", command="/setup"), CONTEXT, rep)
    assert isinstance(direct, CommandInvoked)
    assert direct.channel == ChannelRef(id="C0LEADS")
    assert direct.args == "leads #C0LEADS"
    assert named_channel("handoff C0DESK1234")[1] == ChannelRef(id="C0DESK1234")
    # Typed as plain text (a manifest from before `should_escape`): no channel to take.
    assert named_channel("handoff #deals-desk") == ("handoff #deals-desk", None)


async def test_setup_of_a_role_list_names_people_and_groups_by_their_ids() -> None:
    text = "setup approvers <@U0ANN|ann> <!subteam^S0SALES|@sales-leads> <@W0BEN> <@U0ANN>"
    result = await from_command(form(text), CONTEXT, rep)
    assert isinstance(result, CommandInvoked)
    assert result.args == "approvers @ann @sales-leads @W0BEN @U0ANN"
    assert result.users == (
        UserRef(id="U0ANN", name="ann"),
        UserRef(id="S0SALES", name="sales-leads"),
        UserRef(id="W0BEN"),
    )
    assert result.installation == f"slack:{TEAM}"
    assert named_people("admins U0CARL12345 and nobody else")[1] == (UserRef(id="U0CARL12345"),)
    # Other commands carry no people: stored exactly as before.
    quote = await from_command(form("quote 10 pro <@U0ANN|ann>"), CONTEXT, rep)
    assert isinstance(quote, CommandInvoked)
    assert quote.users == ()
    assert "users" not in quote.model_dump(mode="json")


async def test_a_rep_who_is_no_admin_carries_no_admin_right() -> None:
    result = await from_command(form("setup handoff <#C0DESK|d>", user="W_REP"), CONTEXT, rep)
    assert isinstance(result, CommandInvoked)
    assert not result.actor.admin


async def test_setup_typed_to_the_bot_in_a_thread_is_the_same_command() -> None:
    body: dict[str, Any] = {
        "type": "event_callback",
        "team_id": TEAM,
        "event": {
            "type": "app_mention",
            "user": "W_ADM",
            "channel": "C0WORK",
            "ts": "1700000000.000200",
            "thread_ts": "1700000000.000100",
            "text": "<@W111> setup handoff <#C0DESK|deals-desk>",
        },
    }
    result = await from_event(body, CONTEXT, rep)
    assert isinstance(result, CommandInvoked)
    assert result.conversation_id == f"slack:{TEAM}:C0WORK:1700000000.000100"
    assert result.channel == ChannelRef(id="C0DESK", name="deals-desk")
    assert result.installation == f"slack:{TEAM}"
    body["event"]["text"] = "<@W111> setup is done, thanks"
    body["event"]["user"] = "W_PROSPECT"
    body["event"]["user_team"] = "T_ELSEWHERE"
    assert isinstance(await from_event(body, CONTEXT, rep), MessagePosted)  # a prospect's words


async def test_other_salesbot_commands_read_their_text_as_typed() -> None:
    result = await from_command(
        form("lead budget <mailto:a@b.co|a@b.co> see <https://x.io|x.io> in <#C1|sales>"),
        CONTEXT,
        rep,
    )
    assert isinstance(result, CommandInvoked)
    assert result.args == "budget a@b.co see x.io in #sales"
    assert result.channel is None
    assert result.installation == ""
    assert plain("<@U1|pat> <!here> 5 &lt; 6") == "@pat @here 5 &lt; 6"
    unknown = await from_command(form("<#C1|sales>"), CONTEXT, rep)
    assert isinstance(unknown, CommandUsage)
    assert "“#sales”" in unknown.text


async def chosen(store: MemoryStore) -> WorkspaceChannels:
    channels = WorkspaceChannels(
        store, lambda: 1_000, handoff_channel="C0HANDOFF", leads_channel="C0LEADS"
    )
    await channels.load()
    event = ChannelSet(
        installation=f"slack:{OTHER}", purpose="handoff", channel="C0DESK", name="d", by="W_ADM"
    )
    assert await channels.chose(event, 1_000)
    return channels


async def test_the_router_places_a_workspaces_cards_in_its_own_channel(
    default_policy: Policy,
) -> None:
    store = MemoryStore()
    channels = await chosen(store)
    router = SlackRouter(handoff_channel="C0HANDOFF", leads_channel="C0LEADS", channels=channels)

    def target(team: str, audience: str) -> str:
        conversation = f"slack:{team}:C0WORK:1.2"
        inbound = MessagePosted(
            delivery_id="d-1",
            conversation_id=conversation,
            actor=Actor(id="P", role="prospect"),
            text="hi",
        )
        state = new_conversation(conversation, default_policy)
        reply = Reply(audience=audience, text="x")  # type: ignore[arg-type]
        (route,) = router.route(inbound, reply, state)
        return str(route.target["channel"])

    assert target(OTHER, "handoff") == "C0DESK"
    assert target(OTHER, "approvers") == "C0DESK"
    assert target(OTHER, "escalation") == "C0DESK"
    assert target(OTHER, "team") == "C0LEADS"  # its leads channel was not chosen
    assert target(TEAM, "handoff") == "C0HANDOFF"
    assert target(TEAM, "team") == "C0LEADS"

    again = WorkspaceChannels(store, lambda: 2_000, handoff_channel="C0H", leads_channel=None)
    await again.load()  # another process, or a restart
    assert again.handoff(OTHER) == "C0DESK"
    assert again.handoff(TEAM) == "C0H"
    stored = await store.get_state(KEY)
    assert stored is not None
    assert stored["workspaces"][OTHER]["handoff"]["by"] == "W_ADM"
    assert {"schema", "generator"} <= set(stored)


async def test_another_platforms_installation_is_not_kept() -> None:
    store = MemoryStore()
    channels = WorkspaceChannels(store, lambda: 0, handoff_channel=None, leads_channel=None)
    event = ChannelSet(installation="teams:x", purpose="handoff", channel="19:x", name="", by="a")
    assert not await channels.chose(event, 0)
    assert await store.get_state(KEY) is None
