"""Slack payload → Inbound, from the recorded fixtures and variants built from them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from adapters.action_binding import ActionKey
from adapters.slack import ids
from adapters.slack.inbound import (
    QUOTE_VIEW_CALLBACK_ID,
    CommandUsage,
    Ignored,
    SlackContext,
    from_action,
    from_command,
    from_event,
    from_view_submission,
)
from domain.inbound import (
    CUT_MARKER,
    MAX_MESSAGE_CHARS,
    ButtonClicked,
    CommandInvoked,
    MessagePosted,
)
from domain.policy import Policy
from domain.quote_args import parse_quote_args

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slack"
TEAM = "T111"
BOT = "W111"  # the bot in the event fixtures; a human in the interactivity fixtures
HANDOFF = "C0HANDOFF"
SIGNER = ids.ButtonSigner(ActionKey(b"test-action-secret"), TEAM)
CHANNEL, THREAD = "C222", "1700000000.000100"


def load_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def load_form(name: str) -> dict[str, str]:
    return dict(parse_qsl((FIXTURES / name).read_text().strip(), keep_blank_values=True))


class Guests:
    """The users.info look-up, recording whom it was asked about."""

    def __init__(self, *guests: str) -> None:
        self.guests = set(guests)
        self.asked: list[str] = []

    async def __call__(self, user: str) -> bool:
        self.asked.append(user)
        return user in self.guests


def context(**changes: Any) -> SlackContext:
    values: dict[str, Any] = {
        "team_id": TEAM,
        "bot_user_id": BOT,
        "bot_id": "B111",
        "handoff_channel": HANDOFF,
    }
    values.update(changes)
    return SlackContext(**values)


def message(**event_changes: Any) -> dict[str, Any]:
    """The recorded `message.channels` callback, spoken by a human (W222) instead of the bot."""
    body = load_json("event_callback_message.bolt_fixture.json")
    body["event"]["user"] = "W222"
    body["event"].update(event_changes)
    return body


def mention(**event_changes: Any) -> dict[str, Any]:
    body = load_json("app_mention.bolt_fixture.json")
    body["event"].update(event_changes)
    return body


def human_click(
    action_id: str = "accept_quote", *, signed: bool = True, **value: str
) -> dict[str, Any]:
    """The recorded block_actions payload, on a button this app rendered (signed, or as
    before signing existed) in the conversation's own thread; W333 clicks it."""
    payload = load_json("block_actions.bolt_fixture.json")
    payload["user"]["id"] = "W333"
    payload["team"]["id"] = TEAM
    payload["channel"]["id"] = CHANNEL
    payload["container"] |= {"channel_id": CHANNEL, "thread_ts": THREAD, "is_ephemeral": False}
    button = payload["actions"][0]
    button["action_id"] = action_id
    fields = {"conversation": ids.conversation_id(TEAM, CHANNEL, THREAD)}
    fields |= {"target": "Q-1", "nonce": "n-1"} | value
    button["value"] = ids.button_value(
        fields["conversation"],
        fields["target"],
        fields["nonce"],
        action=action_id.split(":")[0],
        ref="Q-1",
        signer=SIGNER if signed else None,
    )
    return payload


def quote_form(values: dict[str, dict[str, Any]], metadata: str | None = None) -> dict[str, Any]:
    payload = load_json("view_submission.bolt_fixture.json")
    payload["user"]["id"] = "W333"
    view = payload["view"]
    view["callback_id"] = QUOTE_VIEW_CALLBACK_ID
    view["private_metadata"] = (
        metadata if metadata is not None else ids.conversation_id(TEAM, "C222", "1700000000.000100")
    )
    view["state"]["values"] = values
    return payload


def text_input(value: str) -> dict[str, Any]:
    return {"input": {"type": "plain_text_input", "value": value}}


# ---------------------------------------------------------------- events


async def test_the_bots_own_recorded_message_is_ignored() -> None:
    body = load_json("event_callback_message.bolt_fixture.json")

    result = await from_event(body, context(), Guests())

    assert isinstance(result, Ignored)
    assert "own" in result.reason


async def test_a_recorded_mention_becomes_the_reps_message_in_the_thread_it_starts() -> None:
    result = await from_event(load_json("app_mention.bolt_fixture.json"), context(), Guests())

    assert isinstance(result, MessagePosted)
    assert result.text == "Hi there!"
    assert result.actor.id == "W222"
    assert result.actor.role == "rep"
    assert result.conversation_id == "slack:T111:C111:1595926230.009600"
    assert result.delivery_id == ids.message_delivery_id("C111", "1595926230.009600")


async def test_a_mention_arriving_as_app_mention_and_as_a_channel_message_is_one_delivery() -> None:
    as_mention = mention(user_team=TEAM)
    as_message = message(
        text=as_mention["event"]["text"], ts=as_mention["event"]["ts"], user_team=TEAM
    )

    first = await from_event(as_mention, context(), Guests())
    second = await from_event(as_message, context(), Guests())

    assert isinstance(first, MessagePosted)
    assert first == second


async def test_a_retried_event_maps_to_the_same_delivery() -> None:
    body = message(user_team="T999")
    retry = copy.deepcopy(body)
    retry["event_id"] = "Ev999"

    assert await from_event(body, context(), Guests()) == await from_event(
        retry, context(), Guests()
    )


@pytest.mark.parametrize("field", ["user_team", "source_team"])
async def test_a_slack_connect_user_from_another_team_is_a_prospect(field: str) -> None:
    guests = Guests()
    body = message(**{field: "T999"}, user_profile={"display_name": "Dana", "real_name": "Dana R"})

    result = await from_event(body, context(), guests)

    assert isinstance(result, MessagePosted)
    assert result.actor.role == "prospect"
    assert result.actor.name == "Dana"
    assert result.text == "Hi there! Thanks for sharing the info!"
    assert result.conversation_id == "slack:T111:C111:1610261659.001400"
    assert guests.asked == []  # another organisation's user is never looked up


async def test_a_prospect_mentioning_the_bot_stays_a_prospect_whichever_copy_arrives() -> None:
    as_mention = mention(team="T999")
    as_message = message(
        text=as_mention["event"]["text"],
        ts=as_mention["event"]["ts"],
        team="T999",
        user_team="T999",
        source_team="T999",
    )

    first = await from_event(as_mention, context(), Guests())
    second = await from_event(as_message, context(), Guests())

    assert isinstance(first, MessagePosted)
    assert first.actor.role == "prospect"
    assert first == second


async def test_a_guest_of_the_installing_team_is_a_prospect() -> None:
    result = await from_event(message(), context(), Guests("W222"))

    assert isinstance(result, MessagePosted)
    assert result.actor.role == "prospect"


async def test_a_reps_channel_message_without_a_mention_is_not_for_the_bot() -> None:
    result = await from_event(message(), context(), Guests())

    assert isinstance(result, Ignored)


async def test_a_reps_text_command_in_a_thread_reaches_the_domain_without_the_mention() -> None:
    body = mention(text="<@W111> quote 10 pro 10%", thread_ts="1700000000.000100")

    result = await from_event(body, context(), Guests())

    assert isinstance(result, MessagePosted)
    assert result.text == "quote 10 pro 10%"
    assert result.conversation_id == "slack:T111:C111:1700000000.000100"


async def test_a_reply_broadcast_to_the_channel_still_belongs_to_its_thread() -> None:
    body = message(subtype="thread_broadcast", thread_ts="1600000000.000100", user_team="T999")

    result = await from_event(body, context(), Guests())

    assert isinstance(result, MessagePosted)
    assert result.conversation_id == "slack:T111:C111:1600000000.000100"
    assert result.delivery_id == ids.message_delivery_id("C111", "1610261659.001400")


async def test_a_shared_file_with_a_comment_counts_as_a_message() -> None:
    body = message(subtype="file_share", user_team="T999", text="our requirements attached")

    result = await from_event(body, context(), Guests())

    assert isinstance(result, MessagePosted)
    assert result.text == "our requirements attached"


@pytest.mark.parametrize(
    "changes",
    [
        {"subtype": "message_changed"},
        {"subtype": "message_deleted"},
        {"subtype": "channel_join"},
        {"subtype": ["thread_broadcast"]},  # not a value Slack sends: ignored, never a 500
        {"subtype": {"type": "file_share"}},
        {"subtype": "bot_message", "bot_id": "B999"},
        {"bot_id": "B999"},  # another app's post with no subtype at all
        {"bot_id": "B111"},  # our own post, under another user id
        {"user": BOT},
    ],
)
async def test_edits_deletions_joins_and_bot_posts_are_ignored(changes: dict[str, Any]) -> None:
    body = message(user_team="T999", **changes)
    guests = Guests()

    result = await from_event(body, context(), guests)

    assert isinstance(result, Ignored)
    assert guests.asked == []


async def test_a_dm_is_one_conversation_for_the_whole_channel() -> None:
    body = message(channel="D123", channel_type="im", text="can you score this lead?")

    result = await from_event(body, context(), Guests())

    assert isinstance(result, MessagePosted)
    assert result.actor.role == "rep"
    assert result.conversation_id == "slack:T111:D123"


async def test_a_threaded_reply_in_a_dm_belongs_to_that_thread() -> None:
    body = message(channel="D123", channel_type="im", thread_ts="1600000000.000100")

    result = await from_event(body, context(), Guests())

    assert isinstance(result, MessagePosted)
    assert result.conversation_id == "slack:T111:D123:1600000000.000100"


async def test_in_the_handoff_channel_only_mentions_count() -> None:
    chatter = message(channel=HANDOFF, user_team="T999")
    copy_of_mention = message(channel=HANDOFF, text="<@W111> status?")
    asked = mention(channel=HANDOFF, text="<@W111> status?")

    assert isinstance(await from_event(chatter, context(), Guests()), Ignored)
    assert isinstance(await from_event(copy_of_mention, context(), Guests()), Ignored)
    result = await from_event(asked, context(), Guests())
    assert isinstance(result, MessagePosted)
    assert result.text == "status?"


async def test_a_bare_mention_with_nothing_said_is_ignored() -> None:
    result = await from_event(mention(text="<@W111>  "), context(), Guests())

    assert isinstance(result, Ignored)


async def test_the_domain_sees_what_the_user_typed_not_slacks_escapes() -> None:
    body = mention(text="<@W111>: R&amp;D wants &lt;!channel&gt; &amp;lt; pricing")

    result = await from_event(body, context(), Guests())

    assert isinstance(result, MessagePosted)
    assert result.text == "R&D wants <!channel> &lt; pricing"


async def test_configured_approvers_and_auditors_carry_their_rights() -> None:
    ctx = context(approvers=frozenset({"W222"}), auditors=frozenset({"W222"}))

    result = await from_event(mention(), ctx, Guests())

    assert isinstance(result, MessagePosted)
    assert (result.actor.approver, result.actor.auditor) == (True, True)
    assert isinstance(plain := await from_event(mention(), context(), Guests()), MessagePosted)
    assert (plain.actor.approver, plain.actor.auditor) == (False, False)


@pytest.mark.parametrize(
    ("approvers", "sole"),
    [({"W222"}, True), ({"W222", "W999"}, False), ({"W999"}, False), (set(), False)],
)
async def test_the_only_configured_approver_is_marked_sole_approver(
    approvers: set[str], sole: bool
) -> None:
    result = await from_event(mention(), context(approvers=frozenset(approvers)), Guests())

    assert isinstance(result, MessagePosted)
    assert result.actor.sole_approver is sole


async def test_a_message_longer_than_the_domain_keeps_is_cut_with_a_visible_marker() -> None:
    result = await from_event(mention(text="a" * (MAX_MESSAGE_CHARS + 5000)), context(), Guests())

    assert isinstance(result, MessagePosted)
    assert len(result.text) == MAX_MESSAGE_CHARS
    assert result.text.endswith(CUT_MARKER)
    exact = await from_event(mention(text="b" * MAX_MESSAGE_CHARS), context(), Guests())
    assert isinstance(exact, MessagePosted)
    assert exact.text == "b" * MAX_MESSAGE_CHARS


async def test_events_nobody_handles_are_ignored() -> None:
    body = load_json("event_callback_message.bolt_fixture.json")
    body["event"] = {"type": "reaction_added", "user": "W222"}

    assert isinstance(await from_event(body, context(), Guests()), Ignored)
    assert isinstance(
        await from_event(load_json("url_verification.slack_docs.json"), context(), Guests()),
        Ignored,
    )


# ---------------------------------------------------------------- slash commands


async def test_an_unknown_recorded_slash_command_gets_the_command_list() -> None:
    result = await from_command(load_form("slash_command.bolt_fixture.txt"), context(), Guests())

    assert isinstance(result, CommandUsage)
    assert "/quote" in result.text
    assert "/salesbot help" in result.text


async def test_quote_in_a_channel_is_a_command_in_the_channel_keyed_by_its_trigger() -> None:
    form = load_form("slash_command.bolt_fixture.txt") | {
        "command": "/quote",
        "text": "10 pro 10%",
        "user_id": "W333",
    }

    result = await from_command(form, context(), Guests())

    assert isinstance(result, CommandInvoked)
    assert (result.command, result.args) == ("quote", "10 pro 10%")
    assert result.conversation_id == "slack:T111:C111"
    assert result.delivery_id == "slack:cmd:111.111.xxx"
    assert result.actor.id == "W333"
    assert result.actor.name == "primary-owner"
    assert result.actor.role == "rep"


async def test_the_slack_docs_slash_command_is_read_in_its_own_workspace() -> None:
    form = load_form("slash_command.slack_docs.txt") | {"command": "/lead"}

    result = await from_command(form, context(team_id="T0001"), Guests())

    assert isinstance(result, CommandInvoked)
    assert (result.command, result.args) == ("lead", "94070")
    assert result.conversation_id == "slack:T0001:C2147483705"
    assert result.actor.name == "Steve"


@pytest.mark.parametrize(
    ("command", "text", "expected"),
    [
        ("/salesbot", "", ("help", "")),
        ("/salesbot", "help", ("help", "")),
        ("/salesbot", "quote 10 pro", ("quote", "10 pro")),
        ("/salesbot", "Metrics", ("metrics", "")),
        ("/audit", " Q-1 ", ("audit", "Q-1")),
        ("/metrics", "", ("metrics", "")),
        ("/lead", "ACME &amp; Co, 200 staff", ("lead", "ACME & Co, 200 staff")),
    ],
)
async def test_slash_commands_map_to_the_one_command_list(
    command: str, text: str, expected: tuple[str, str]
) -> None:
    form = load_form("slash_command.bolt_fixture.txt") | {"command": command, "text": text}

    result = await from_command(form, context(), Guests())

    assert isinstance(result, CommandInvoked)
    assert (result.command, result.args) == expected


@pytest.mark.parametrize(("command", "text"), [("/salesbot", "dance"), ("/help", "")])
async def test_words_that_are_not_commands_get_the_usage_and_store_nothing(
    command: str, text: str
) -> None:
    form = load_form("slash_command.bolt_fixture.txt") | {"command": command, "text": text}

    result = await from_command(form, context(), Guests())

    assert isinstance(result, CommandUsage)
    assert "/quote" in result.text


async def test_a_guest_running_a_slash_command_is_not_a_rep() -> None:
    form = load_form("slash_command.bolt_fixture.txt") | {"command": "/metrics", "user_id": "W9"}

    result = await from_command(form, context(), Guests("W9"))

    assert isinstance(result, CommandInvoked)
    assert result.actor.role == "prospect"


# ---------------------------------------------------------------- buttons


async def test_the_recorded_click_on_a_button_we_did_not_render_is_ignored() -> None:
    wire = load_form("block_actions.wire_form_encoded.bolt_fixture.txt")
    payload = json.loads(wire["payload"])
    assert payload == load_json("block_actions.bolt_fixture.json")

    assert isinstance(await from_action(payload, context(), Guests(), SIGNER), Ignored)
    payload["actions"][0]["action_id"] = "accept_quote"  # a known action, a foreign value
    result = await from_action(payload, context(), Guests(), SIGNER)
    assert result == Ignored(reason="foreign button")


async def test_a_click_acts_on_the_conversation_and_target_in_the_button() -> None:
    result = await from_action(human_click(), context(), Guests(), SIGNER)

    assert isinstance(result, ButtonClicked)
    assert result.action == "accept_quote"
    assert result.target == "Q-1"
    assert result.conversation_id == "slack:T111:C222:1700000000.000100"
    assert result.actor.id == "W333"
    assert result.actor.name == "primary-owner"
    assert result.actor.role == "rep"


async def test_a_redelivered_click_is_the_same_delivery_but_another_persons_is_not() -> None:
    first = await from_action(human_click(), context(), Guests(), SIGNER)
    again = await from_action(human_click(), context(), Guests(), SIGNER)
    other = human_click()
    other["user"]["id"] = "W444"
    someone_else = await from_action(other, context(), Guests(), SIGNER)

    assert isinstance(first, ButtonClicked)
    assert isinstance(again, ButtonClicked)
    assert isinstance(someone_else, ButtonClicked)
    assert first.delivery_id == again.delivery_id
    assert first.delivery_id != someone_else.delivery_id


async def test_an_approver_clicking_approve_carries_the_approver_right() -> None:
    ctx = context(approvers=frozenset({"W333"}))

    result = await from_action(human_click("approve_quote"), ctx, Guests(), SIGNER)

    assert isinstance(result, ButtonClicked)
    assert result.action == "approve_quote"
    assert result.actor.approver


async def test_a_click_from_another_organisation_is_a_prospects() -> None:
    payload = human_click()
    payload["user"]["team_id"] = "T999"

    result = await from_action(payload, context(), Guests(), SIGNER)

    assert isinstance(result, ButtonClicked)
    assert result.actor.role == "prospect"


async def test_a_suffixed_action_id_still_names_its_action() -> None:
    result = await from_action(human_click("claim_ticket:2"), context(), Guests(), SIGNER)

    assert isinstance(result, ButtonClicked)
    assert result.action == "claim_ticket"


@pytest.mark.parametrize(
    "conversation", ["teams:19:abc", "slack:T999:C222:1700000000.000100", "nonsense"]
)
async def test_a_button_naming_a_conversation_outside_this_workspace_is_ignored(
    conversation: str,
) -> None:
    result = await from_action(human_click(conversation=conversation), context(), Guests(), SIGNER)

    assert result == Ignored(reason="foreign button")


# ---------------------------------------------------------------- clicks bound to their card

CLAIMED = ids.conversation_id(TEAM, CHANNEL, THREAD)


async def test_a_signed_click_where_its_card_lives_is_ok() -> None:
    result = await from_action(human_click(), context(), Guests(), SIGNER)

    assert isinstance(result, ButtonClicked)
    assert (result.binding, result.conversation_id) == ("ok", CLAIMED)


async def test_a_click_on_a_card_from_before_signing_is_unsigned_in_its_conversation() -> None:
    result = await from_action(human_click(signed=False), context(), Guests(), SIGNER)

    assert isinstance(result, ButtonClicked)
    assert (result.binding, result.conversation_id) == ("unsigned", CLAIMED)


@pytest.mark.parametrize("field", ["t", "c", "r", "n", "s"])
async def test_a_value_changed_after_signing_has_a_bad_signature(field: str) -> None:
    payload = human_click()
    button = payload["actions"][0]
    value = json.loads(button["value"])
    value[field] = {
        "t": "Q-other",
        "c": ids.conversation_id(TEAM, CHANNEL, "1700000000.000999"),
        "r": "Q-other",
        "n": "n-2",
        "s": "v1." + "0" * 32,
    }[field]
    payload["container"]["thread_ts"] = ids.location(value["c"]).thread_ts  # type: ignore[union-attr]
    button["value"] = json.dumps(value)

    result = await from_action(payload, context(), Guests(), SIGNER)

    assert isinstance(result, ButtonClicked)
    assert result.binding == "bad_signature"


async def test_a_value_signed_with_another_key_or_for_another_action_has_a_bad_signature() -> None:
    rotated = ids.ButtonSigner(ActionKey(b"another-secret"), TEAM)
    stale = await from_action(human_click(), context(), Guests(), rotated)
    as_approve = human_click()
    as_approve["actions"][0]["action_id"] = "approve_quote"  # the value is accept_quote's
    other_action = await from_action(as_approve, context(), Guests(), SIGNER)

    assert isinstance(stale, ButtonClicked)
    assert stale.binding == "bad_signature"
    assert isinstance(other_action, ButtonClicked)
    assert other_action.binding == "bad_signature"


@pytest.mark.parametrize(
    ("channel", "thread", "recorded_in"),
    [
        ("C333", THREAD, ids.conversation_id(TEAM, "C333", THREAD)),
        ("C333", None, ids.conversation_id(TEAM, "C333")),
        (CHANNEL, "1700000000.000999", ids.conversation_id(TEAM, CHANNEL, "1700000000.000999")),
    ],
)
async def test_a_value_copied_into_another_conversation_is_refused_where_it_was_clicked(
    channel: str, thread: str | None, recorded_in: str
) -> None:
    payload = human_click()
    payload["channel"]["id"] = channel
    payload["container"]["channel_id"] = channel
    if thread is None:
        del payload["container"]["thread_ts"]
    else:
        payload["container"]["thread_ts"] = thread

    result = await from_action(payload, context(), Guests(), SIGNER)

    assert isinstance(result, ButtonClicked)
    assert (result.binding, result.conversation_id) == ("wrong_conversation", recorded_in)
    assert result.target == "Q-1"


async def test_a_click_from_another_workspace_is_refused_where_it_was_clicked() -> None:
    payload = human_click()
    payload["team"]["id"] = "T999"
    payload["container"]["channel_id"] = payload["channel"]["id"] = "C999"

    result = await from_action(payload, context(), Guests(), SIGNER)

    assert isinstance(result, ButtonClicked)
    assert result.binding == "wrong_workspace"
    assert result.conversation_id == ids.conversation_id(TEAM, "C999", THREAD)


async def test_a_slack_connect_user_clicking_in_our_channel_is_not_another_workspace() -> None:
    payload = human_click()
    payload["user"]["team_id"] = "T999"  # their organisation; `team` is still ours

    result = await from_action(payload, context(), Guests(), SIGNER)

    assert isinstance(result, ButtonClicked)
    assert (result.binding, result.actor.role) == ("ok", "prospect")


@pytest.mark.parametrize("where", ["handoff", "leads"])
async def test_cards_in_the_handoff_and_leads_channels_act_on_their_conversation(
    where: str,
) -> None:
    payload = human_click("claim_ticket")
    payload["container"] = {"type": "message", "message_ts": "1.2", "channel_id": "C0WHERE"}
    ctx = context(**{f"{where}_channel": "C0WHERE"})

    result = await from_action(payload, ctx, Guests(), SIGNER)

    assert isinstance(result, ButtonClicked)
    assert (result.binding, result.conversation_id) == ("ok", CLAIMED)


async def test_a_refused_click_does_not_use_up_the_button_for_the_real_one() -> None:
    moved = human_click()
    moved["container"]["channel_id"] = "C333"
    refused = await from_action(moved, context(), Guests(), SIGNER)
    real = await from_action(human_click(), context(), Guests(), SIGNER)

    assert isinstance(refused, ButtonClicked)
    assert isinstance(real, ButtonClicked)
    assert refused.delivery_id != real.delivery_id


async def test_a_click_that_says_nowhere_it_was_made_is_ignored() -> None:
    payload = human_click()
    del payload["container"]["channel_id"]
    del payload["channel"]

    assert isinstance(await from_action(payload, context(), Guests(), SIGNER), Ignored)


# ---------------------------------------------------------------- the quote form


async def test_the_recorded_view_of_another_form_is_ignored() -> None:
    payload = load_json("view_submission.bolt_fixture.json")

    assert isinstance(await from_view_submission(payload, context(), Guests()), Ignored)


async def test_a_quote_typed_in_the_form_is_the_quote_command_in_its_conversation() -> None:
    payload = quote_form({"args": text_input("10 pro 10%")})

    result = await from_view_submission(payload, context(), Guests())

    assert isinstance(result, CommandInvoked)
    assert (result.command, result.args) == ("quote", "10 pro 10%")
    assert result.conversation_id == "slack:T111:C222:1700000000.000100"
    assert result.delivery_id == "slack:view:V111:1596530361.3wRYuk3R"
    assert result.actor.id == "W333"


async def test_the_forms_fields_become_arguments_the_quote_parser_reads(
    default_policy: Policy,
) -> None:
    payload = quote_form(
        {
            "qty": text_input("10"),
            "sku": {"pick": {"type": "static_select", "selected_option": {"value": "PRO"}}},
            "discount": text_input("12.5"),
            "tax": text_input(""),
        }
    )

    result = await from_view_submission(payload, context(), Guests())

    assert isinstance(result, CommandInvoked)
    assert result.args == "qty=10 sku=PRO discount=12.5%"
    request = parse_quote_args(result.args, default_policy.catalog)
    assert (request.qty, request.sku, str(request.discount)) == (10, "PRO", "0.125")


@pytest.mark.parametrize("metadata", ["", "This is for you!", "slack:T999:C222"])
async def test_a_quote_form_without_a_conversation_of_ours_is_ignored(metadata: str) -> None:
    payload = quote_form({"args": text_input("10 pro")}, metadata=metadata)

    assert isinstance(await from_view_submission(payload, context(), Guests()), Ignored)


async def test_a_reps_top_level_channel_chatter_is_ignored() -> None:
    result = await from_event(message(text="lunch anyone?"), context(), Guests())
    assert isinstance(result, Ignored)


async def test_a_reps_thread_reply_without_a_mention_reaches_the_domain_unaddressed() -> None:
    result = await from_event(
        message(text="Happy to help with the contract", thread_ts="1700000000.000100"),
        context(),
        Guests(),
    )
    assert isinstance(result, MessagePosted)
    assert result.addressed is False
    assert result.conversation_id.endswith(":1700000000.000100")


async def test_a_prospects_thread_message_is_addressed_even_without_a_mention() -> None:
    result = await from_event(
        message(text="Any update?", thread_ts="1700000000.000100", user_team="T999"),
        context(),
        Guests(),
    )
    assert isinstance(result, MessagePosted)
    assert result.actor.role == "prospect"
    assert result.addressed is True
