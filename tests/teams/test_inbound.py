"""Teams activity → Inbound, from the recorded fixtures and variants built from them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.action_binding import ActionKey
from adapters.teams import ids
from adapters.teams.binding import Placement
from adapters.teams.inbound import (
    Greeting,
    Ignored,
    TeamsContext,
    conversation_reference,
    from_activity,
)
from domain.inbound import CUT_MARKER, MAX_MESSAGE_CHARS, ButtonClicked, MessagePosted
from tests.teams.signing import KEY

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "teams"

# The tenants and bots as the fixtures name them.
PERSONAL_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CHANNEL_TENANT = "b28fdbfd-2b78-4f93-b0f8-8881793f0f8f"
OTHER_TENANT = "11111111-2222-3333-4444-555555555555"
PERSONAL_BOT = "28:c9e8c047-2a74-40a2-b28a-b162d5f5327c"
CHANNEL_BOT = "28:608cacfd-1cea-40c9-b678-4b93e69bb72b"
CARD_BOT = "28:8d88f59b-ae61-4300-bec0-caace7d28446"
# The docs' verbatim "added to a one-to-one chat" example names the bot by two placeholders.
ADDED_BOT = "28:f5d48856-5b42-41a0-8c3a-c5f944b679b0"
USER_AAD = "7faf8ab2-3d56-4244-b585-20c8a42ed2b8"
CLICKER_ID = (
    "29:1Eniglq0-uVL83xNB9GU6w_G5a4SZF0gcJLprZzhtEbel21G_5h-NgoprRw45mP0AXUIZVeqrsIHSYV4ntgfVJQ"
)
CHANNEL = "19:0b7f32667e064dd9b25d7969801541f4@thread.tacv2"
QUOTE_CONVERSATION = ids.conversation_id("a:1pL6i0oY3C0K8oAj8")


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    data.pop("_source")
    return data


def context(tenant_id: str | None = PERSONAL_TENANT, **changes: Any) -> TeamsContext:
    values: dict[str, Any] = {"tenant_id": tenant_id, "bot_id": PERSONAL_BOT, "action_key": KEY}
    values.update(changes)
    return TeamsContext(**values)


def channel_ctx(**changes: Any) -> TeamsContext:
    return context(CHANNEL_TENANT, bot_id=CHANNEL_BOT, **changes)


def card_ctx(**changes: Any) -> TeamsContext:
    return context(PERSONAL_TENANT, bot_id=CARD_BOT, **changes)


def personal(text: str = "quote 10 pro 10%", **changes: Any) -> dict[str, Any]:
    activity = load("teams_message_personal.json")
    activity["text"] = text
    activity.update(changes)
    return activity


def channel(text: str, *, mention: bool, root: str | None = None) -> dict[str, Any]:
    """The recorded channel message; `root` makes it a reply in that thread."""
    activity = load("teams_message_channel_mention.json")
    activity["text"] = text
    if not mention:
        activity["entities"] = [e for e in activity["entities"] if e["type"] != "mention"]
    if root is not None:
        activity["conversation"]["id"] = f"{CHANNEL};messageid={root}"
    return activity


def submit(data: Any, **changes: Any) -> dict[str, Any]:
    activity = load("teams_message_action_submit.json")
    activity["value"] = data
    activity.update(changes)
    return activity


def execute(verb: str, data: Any, **changes: Any) -> dict[str, Any]:
    activity = load("teams_invoke_adaptivecard_action.json")
    activity["value"]["action"].update(verb=verb, data=data)
    activity.update(changes)
    return activity


# Where the submit fixture's click is made: the card was posted there, for that tenant.
CLICKED_IN = "a:1pL6i0oY3C0K8oAj8"
POSTED = Placement(KEY, PERSONAL_TENANT, CLICKED_IN)


def approve_data(nonce: str = "n-1", placement: Placement = POSTED) -> dict[str, Any]:
    """A signed Approve button, as a card posted at `placement` carries it."""
    return placement.action_data(QUOTE_CONVERSATION, "approve_quote", "Q-1042", nonce, None)


def clicked_in_personal_chat(activity: dict[str, Any]) -> dict[str, Any]:
    """The execute fixture (a click in a group space) moved to the submit fixture's chat."""
    activity["conversation"] = load("teams_message_action_submit.json")["conversation"]
    return activity


def as_message(result: object) -> MessagePosted:
    assert isinstance(result, MessagePosted), result
    return result


def as_click(result: object) -> ButtonClicked:
    assert isinstance(result, ButtonClicked), result
    return result


def as_ignored(result: object) -> Ignored:
    assert isinstance(result, Ignored), result
    return result


# --- the recorded fixtures, as Teams sends them -------------------------------------------


def test_a_personal_chat_message_is_addressed_to_the_bot_and_deduped_by_activity_id() -> None:
    result = as_message(from_activity(load("teams_message_personal.json"), context()))
    conversation = load("teams_message_personal.json")["conversation"]["id"]
    assert result.conversation_id == f"teams:{conversation}"
    assert result.delivery_id == "teams:act:1485983408511"
    assert result.text == "Hello Teams TestBot.Sending bold-italic rich text"
    assert result.addressed
    assert (result.actor.id, result.actor.name, result.actor.role) == (
        USER_AAD,
        "Megan Bowen",
        "rep",
    )


def test_a_channel_mention_reaches_the_bot_without_the_mention_in_its_thread() -> None:
    result = as_message(from_activity(load("teams_message_channel_mention.json"), channel_ctx()))
    assert result.text == "hello from ACME"
    assert result.addressed
    assert result.conversation_id == f"teams:{CHANNEL};messageid=1677621221150"
    assert result.actor.role == "rep"


def test_the_recorded_card_actions_of_another_app_are_ignored() -> None:
    submitted = as_ignored(from_activity(load("teams_message_action_submit.json"), card_ctx()))
    executed = as_ignored(from_activity(load("teams_invoke_adaptivecard_action.json"), card_ctx()))
    assert submitted.reason == "foreign card data"
    assert executed.reason == "unknown verb 'approveQuote'"


def test_the_bot_added_to_a_personal_chat_asks_for_a_greeting() -> None:
    activity = load("teams_conversation_update_bot_added_personal.json")
    result = from_activity(activity, context(bot_id=ADDED_BOT))
    assert isinstance(result, Greeting)
    assert result.personal
    reference = result.conversation_reference
    assert reference["serviceUrl"] == "https://smba.trafficmanager.net/amer-client-ss.msg/"
    assert reference["conversation"] == {
        "conversationType": "personal",
        "id": "***",
        "tenantId": "<TENANT ID>",  # copied from channelData: proactive sends need it here
    }
    assert reference["user"] == activity["from"]
    assert reference["bot"] == activity["recipient"]
    # The greeting is `help` for whoever added the bot, deduped by the activity id.
    assert result.welcome is not None
    assert (result.welcome.command, result.welcome.actor.id) == ("help", "***")
    assert result.welcome.delivery_id == "teams:act:f:5f85c2ad"
    assert result.welcome.conversation_id == "teams:***"


def test_the_bot_added_to_a_team_stores_the_channel_reference_without_greeting() -> None:
    activity = load("teams_conversation_update_bot_added_team.json")
    result = from_activity(activity, channel_ctx())
    assert isinstance(result, Greeting)
    assert not result.personal
    assert result.welcome is None
    assert result.conversation_reference == {
        "user": activity["from"],
        "bot": activity["recipient"],
        "conversation": activity["conversation"],
        "channelId": "msteams",
        "serviceUrl": "https://smba.trafficmanager.net/amer/",
    }
    json.dumps(result.conversation_reference)  # stored as raw protocol JSON


def test_a_conversation_reference_carries_the_locale_of_a_message() -> None:
    reference = conversation_reference(load("teams_message_personal.json"))
    assert reference["locale"] == "en-US"


def test_a_conversation_reference_is_the_same_for_every_message_of_its_conversation() -> None:
    """It names the conversation, not the message: stored once, not at every message."""
    first = load("teams_message_personal.json")
    second = {**first, "id": "1485983408999", "text": "and another thing"}
    assert conversation_reference(first) == conversation_reference(second)
    assert "activityId" not in conversation_reference(first)


# --- roles ---------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["from", "channelData"])
@pytest.mark.parametrize("user_role", ["guest", "anonymous"])
def test_a_guest_of_the_bots_tenant_is_a_prospect(where: str, user_role: str) -> None:
    activity = personal()
    activity[where]["userRole"] = user_role
    assert as_message(from_activity(activity, context())).actor.role == "prospect"


def test_a_member_the_roster_calls_a_user_is_a_rep() -> None:
    activity = personal()
    activity["from"]["userRole"] = "user"
    assert as_message(from_activity(activity, context())).actor.role == "rep"


def test_a_user_of_another_tenant_is_a_prospect() -> None:
    activity = personal()
    activity["channelData"]["tenant"]["id"] = OTHER_TENANT
    assert as_message(from_activity(activity, context())).actor.role == "prospect"


def test_a_sender_whose_own_tenant_differs_is_a_prospect_in_our_channel() -> None:
    activity = channel("<at>SalesBot</at> hi", mention=True)
    activity["from"]["tenantId"] = OTHER_TENANT
    assert as_message(from_activity(activity, channel_ctx())).actor.role == "prospect"


def test_an_anonymous_participant_without_an_entra_id_is_a_prospect_named_by_teams_id() -> None:
    activity = personal()
    del activity["from"]["aadObjectId"]
    actor = as_message(from_activity(activity, context())).actor
    assert actor.role == "prospect"
    assert actor.id == activity["from"]["id"]


def test_without_a_configured_tenant_no_one_is_a_rep() -> None:
    result = as_message(from_activity(personal(), context(tenant_id=None)))
    assert result.actor.role == "prospect"


def test_tenant_ids_compare_without_regard_to_case() -> None:
    result = as_message(from_activity(personal(), context(PERSONAL_TENANT.upper())))
    assert result.actor.role == "rep"


@pytest.mark.parametrize("configured", [USER_AAD, CLICKER_ID])
def test_approvers_and_auditors_are_recognised_by_entra_id_or_teams_id(configured: str) -> None:
    ctx = card_ctx(approvers=frozenset({configured}), auditors=frozenset({configured}))
    actor = as_click(from_activity(submit(approve_data()), ctx)).actor
    assert (actor.approver, actor.auditor) == (True, True)
    plain = as_click(from_activity(submit(approve_data()), card_ctx())).actor
    assert (plain.approver, plain.auditor) == (False, False)


@pytest.mark.parametrize(
    ("configured", "sole"),
    [
        ({USER_AAD}, True),
        ({CLICKER_ID}, True),
        ({USER_AAD, CLICKER_ID}, True),  # the same person by both ids
        ({USER_AAD, "aad-someone-else"}, False),
        ({"aad-someone-else"}, False),
        (set(), False),
    ],
)
def test_the_sole_approver_is_the_one_person_all_configured_approvers_name(
    configured: set[str], sole: bool
) -> None:
    actor = as_click(
        from_activity(submit(approve_data()), card_ctx(approvers=frozenset(configured)))
    ).actor
    assert actor.sole_approver is sole


# --- messages ------------------------------------------------------------------------------


def test_a_text_command_passes_as_a_message_for_the_domain_to_recognise() -> None:
    result = as_message(from_activity(personal("  quote 10 pro 10%\n"), context()))
    assert result.text == "quote 10 pro 10%"


def test_text_over_what_a_message_may_hold_is_cut_with_a_note_saying_so() -> None:
    long = as_message(from_activity(personal("x" * 50_000), context())).text
    assert len(long) == MAX_MESSAGE_CHARS == 40_000
    assert long.endswith(CUT_MARKER)
    assert long.startswith("x" * 39_000)
    exact = as_message(from_activity(personal("y" * MAX_MESSAGE_CHARS), context())).text
    assert exact == "y" * MAX_MESSAGE_CHARS


def test_the_bots_mention_and_a_colon_after_it_are_stripped_in_a_channel() -> None:
    activity = channel("<at>SalesBot</at>: quote 10 pro 10%", mention=True)
    assert as_message(from_activity(activity, channel_ctx())).text == "quote 10 pro 10%"


def test_other_peoples_mentions_keep_their_names() -> None:
    activity = channel("<at>SalesBot</at> loop in <at>Adele Vance</at> please", mention=True)
    text = as_message(from_activity(activity, channel_ctx())).text
    assert text == "loop in Adele Vance please"


def test_html_entities_are_unescaped_after_the_mention_is_gone() -> None:
    typed = "<at>SalesBot</at> R&amp;D&nbsp;says &lt;at&gt;SalesBot&lt;/at&gt; is 2 &gt; 1"
    text = as_message(from_activity(channel(typed, mention=True), channel_ctx())).text
    assert text == "R&D says <at>SalesBot</at> is 2 > 1"


def test_a_message_that_is_only_the_mention_is_ignored() -> None:
    result = as_ignored(
        from_activity(channel("<at>SalesBot</at> &nbsp;", mention=True), channel_ctx())
    )
    assert result.reason == "empty text after the mention"


def test_a_reps_unmentioned_reply_in_a_channel_thread_is_recorded_unaddressed() -> None:
    activity = channel("I can do 12% if you sign today", mention=False, root="1677620000000")
    result = as_message(from_activity(activity, channel_ctx()))
    assert not result.addressed
    assert result.conversation_id == f"teams:{CHANNEL};messageid=1677620000000"
    assert result.text == "I can do 12% if you sign today"


def test_a_reps_unmentioned_new_channel_post_is_ignored() -> None:
    # A new post's conversation id names the post itself as the thread's root.
    activity = channel("lunch?", mention=False)
    result = as_ignored(from_activity(activity, channel_ctx()))
    assert result.reason == "a rep's message that does not mention the bot"


def test_a_reps_unmentioned_group_chat_message_goes_to_the_domain_unaddressed() -> None:
    """A group chat may be shared with a guest: a rep's words there are recorded where the
    bot serves the guest (and take the conversation over under `[handoff]`); elsewhere the
    domain does nothing with them."""
    activity = channel("Hi Pat, Alex from sales here", mention=False)
    activity["conversation"] = {
        "isGroup": True,
        "conversationType": "groupChat",
        "tenantId": CHANNEL_TENANT,
        "id": "19:meeting_abc@thread.v2",
    }
    result = as_message(from_activity(activity, channel_ctx()))
    assert not result.addressed
    assert result.actor.role == "rep"
    assert result.conversation_id == "teams:19:meeting_abc@thread.v2"


def test_a_prospects_unmentioned_channel_message_is_addressed() -> None:
    activity = channel("what does pro cost?", mention=False, root="1677620000000")
    activity["from"]["userRole"] = "guest"
    result = as_message(from_activity(activity, channel_ctx()))
    assert result.addressed
    assert result.actor.role == "prospect"


def test_the_bots_own_message_and_other_bots_messages_are_ignored() -> None:
    own, other = personal(), personal()
    own["from"] = {"id": PERSONAL_BOT, "name": "Teams TestBot"}
    other["from"] = {"id": "28:another-bot", "name": "Polly"}
    assert as_ignored(from_activity(own, context())).reason == "the bot's own message"
    assert as_ignored(from_activity(other, context())).reason == "another bot's message"


# --- card actions --------------------------------------------------------------------------


def test_action_submit_and_action_execute_give_the_same_click_for_the_same_nonce() -> None:
    submitted = as_click(from_activity(submit(approve_data()), card_ctx()))
    executed = as_click(
        from_activity(
            clicked_in_personal_chat(execute("approve_quote", approve_data())), card_ctx()
        )
    )
    assert submitted == executed
    assert submitted.binding == "ok"
    assert submitted.delivery_id == f"teams:action:n-1:{USER_AAD}"
    assert (submitted.conversation_id, submitted.action, submitted.target) == (
        QUOTE_CONVERSATION,
        "approve_quote",
        "Q-1042",
    )


def test_a_redelivered_click_with_a_new_activity_id_keeps_its_delivery_id() -> None:
    first = as_click(from_activity(submit(approve_data(), id="1575667812345"), card_ctx()))
    again = as_click(from_activity(submit(approve_data(), id="1575667899999"), card_ctx()))
    assert first.delivery_id == again.delivery_id


def test_a_second_persons_click_on_the_same_button_is_its_own_delivery() -> None:
    first = as_click(from_activity(submit(approve_data()), card_ctx()))
    other = submit(approve_data())
    other["from"] = {"id": "29:someone-else", "name": "Adele", "aadObjectId": "aad-adele"}
    second = as_click(from_activity(other, card_ctx()))
    assert first.delivery_id != second.delivery_id
    assert second.delivery_id == "teams:action:n-1:aad-adele"


def test_card_inputs_merged_into_the_data_do_not_hide_our_action() -> None:
    data = {**approve_data(), "discountInput": "15"}
    assert as_click(from_activity(submit(data), card_ctx())).action == "approve_quote"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            {"c": QUOTE_CONVERSATION, "a": "approve_quote", "t": "Q-1", "n": "n"},
            "foreign card data",
        ),
        ({**approve_data(), "salesbot": True}, "foreign card data"),
        ({**approve_data(), "n": ""}, "foreign card data"),
        ("approve_quote", "foreign card data"),
        (
            ids.action_data(QUOTE_CONVERSATION, "delete_everything", "Q-1", "n"),
            "unknown action 'delete_everything'",
        ),
        (
            ids.action_data("slack:T1:C1:1.2", "approve_quote", "Q-1", "n"),
            "card data naming another platform's conversation",
        ),
    ],
)
def test_foreign_or_forged_card_data_is_ignored(data: Any, reason: str) -> None:
    assert as_ignored(from_activity(submit(data), card_ctx())).reason == reason


def test_an_execute_whose_verb_disagrees_with_its_data_is_ignored() -> None:
    result = as_ignored(from_activity(execute("reject_quote", approve_data()), card_ctx()))
    assert result.reason == "verb 'reject_quote' does not match the card data's action"


def test_an_execute_with_a_known_verb_but_foreign_data_is_ignored() -> None:
    result = from_activity(execute("approve_quote", {"quoteId": "Q-1042"}), card_ctx())
    assert as_ignored(result).reason == "foreign card data"


# --- clicks bound to their card ------------------------------------------------------------


def test_a_legacy_unsigned_click_is_refused_where_it_was_made() -> None:
    legacy = ids.action_data(QUOTE_CONVERSATION, "approve_quote", "Q-1042", "n-1")
    click = as_click(from_activity(submit(legacy), card_ctx()))
    assert click.binding == "unsigned"
    assert click.conversation_id == ids.conversation_id(CLICKED_IN)
    assert (click.action, click.target) == ("approve_quote", "Q-1042")
    assert click.delivery_id == f"teams:action:n-1:{USER_AAD}:unsigned"


@pytest.mark.parametrize(
    "change",
    [
        {"t": "Q-9999"},  # another quote
        {"c": ids.conversation_id("19:another@thread.tacv2")},  # another conversation
        {"r": "Q-9999"},
        {"n": "n-2"},
        {"tn": OTHER_TENANT},
        {"w": "a:someone-elses-chat"},
        {"s": "v1.00000000000000000000000000000000"},
        {"s": "v2.made-up"},
        {"s": 12},
        {"s": None},
    ],
)
def test_edited_card_data_is_a_bad_signature(change: dict[str, Any]) -> None:
    forged = {**approve_data(), **change}
    click = as_click(from_activity(submit(forged), card_ctx()))
    assert click.binding == "bad_signature"
    assert click.conversation_id == ids.conversation_id(CLICKED_IN)


def test_data_signed_with_another_key_is_a_bad_signature() -> None:
    elsewhere = Placement(ActionKey(b"another installation"), PERSONAL_TENANT, CLICKED_IN)
    click = as_click(from_activity(submit(approve_data(placement=elsewhere)), card_ctx()))
    assert click.binding == "bad_signature"


def test_a_click_from_another_tenant_is_refused_where_it_was_made() -> None:
    # A user of another tenant submits a real button copied from our tenant's card, from
    # their own personal chat with the bot.
    theirs = submit(approve_data())
    theirs["conversation"] = {"id": "a:theirs", "conversationType": "personal"}
    theirs["conversation"]["tenantId"] = OTHER_TENANT
    theirs["channelData"]["tenant"] = {"id": OTHER_TENANT}
    click = as_click(from_activity(theirs, card_ctx()))
    assert click.binding == "wrong_tenant"
    assert click.conversation_id == ids.conversation_id("a:theirs")


def test_an_activity_stating_two_tenants_is_not_the_signed_one() -> None:
    mixed = submit(approve_data())
    mixed["channelData"]["tenant"] = {"id": OTHER_TENANT}
    assert as_click(from_activity(mixed, card_ctx())).binding == "wrong_tenant"


def test_tenant_ids_of_a_click_compare_without_regard_to_case() -> None:
    upper = Placement(KEY, PERSONAL_TENANT.upper(), CLICKED_IN)
    assert as_click(from_activity(submit(approve_data(placement=upper)), card_ctx())).binding == (
        "ok"
    )


def test_a_card_posted_where_the_tenant_was_unknown_binds_the_conversation_only() -> None:
    unknown = Placement(KEY, "", CLICKED_IN)
    activity = submit(approve_data(placement=unknown))
    activity["channelData"]["tenant"] = {"id": OTHER_TENANT}
    activity["conversation"]["tenantId"] = OTHER_TENANT
    assert as_click(from_activity(activity, card_ctx())).binding == "ok"


def test_a_click_in_another_conversation_of_the_same_tenant_is_refused_there() -> None:
    elsewhere = submit(approve_data())
    elsewhere["conversation"]["id"] = "a:another-personal-chat"
    click = as_click(from_activity(elsewhere, card_ctx()))
    assert click.binding == "wrong_conversation"
    assert click.conversation_id == ids.conversation_id("a:another-personal-chat")


@pytest.mark.parametrize(
    ("posted_in", "clicked_in", "binding"),
    [
        # A card posted to a channel starts its own thread: clicks come from that thread.
        (CHANNEL, f"{CHANNEL};messageid=1677621221150", "ok"),
        (CHANNEL, CHANNEL, "ok"),
        (f"{CHANNEL};messageid=1", f"{CHANNEL};messageid=1", "ok"),
        (f"{CHANNEL};messageid=1", CHANNEL, "ok"),  # the thread's own channel
        (f"{CHANNEL};messageid=1", f"{CHANNEL};messageid=2", "wrong_conversation"),
        (CHANNEL, "19:another@thread.tacv2;messageid=1", "wrong_conversation"),
        (CLICKED_IN, f"{CHANNEL};messageid=1", "wrong_conversation"),
    ],
)
def test_a_click_counts_in_the_conversation_or_thread_its_card_was_posted_in(
    posted_in: str, clicked_in: str, binding: str
) -> None:
    activity = submit(approve_data(placement=Placement(KEY, PERSONAL_TENANT, posted_in)))
    activity["conversation"]["id"] = clicked_in
    assert as_click(from_activity(activity, card_ctx())).binding == binding


def test_a_refused_click_never_shares_a_delivery_with_the_real_one() -> None:
    real = as_click(from_activity(submit(approve_data()), card_ctx()))
    forged = as_click(from_activity(submit({**approve_data(), "t": "Q-1"}), card_ctx()))
    assert real.delivery_id != forged.delivery_id


@settings(deadline=None, max_examples=60)
@given(
    field=st.sampled_from(["c", "t", "n", "r", "tn", "w"]),
    value=st.text(max_size=40),
)
def test_no_edit_of_a_signed_field_is_acted_on(field: str, value: str) -> None:
    original = approve_data()
    forged = {**original, field: value}
    result = from_activity(submit(forged), card_ctx())
    if isinstance(result, Ignored):  # no longer our data at all (an emptied nonce, …)
        return
    same = ids.parse_action_data(forged) == ids.parse_action_data(original)  # "r": "" is no ref
    assert as_click(result).binding == ("ok" if same else "bad_signature")


def test_a_lead_conversations_card_is_ours() -> None:
    data = POSTED.action_data("lead-0123456789abcdef", "claim_ticket", "T-1", "n-9", None)
    assert as_click(from_activity(submit(data), card_ctx())).conversation_id == (
        "lead-0123456789abcdef"
    )


def test_other_invokes_are_ignored() -> None:
    activity = execute("approve_quote", approve_data(), name="task/fetch")
    assert (
        as_ignored(from_activity(activity, card_ctx())).reason
        == "invoke 'task/fetch' is not handled"
    )


# --- everything else -----------------------------------------------------------------------


def test_a_conversation_update_that_adds_only_people_is_ignored() -> None:
    activity = load("teams_conversation_update_bot_added_team.json")
    activity["membersAdded"] = [{"id": "29:new-colleague", "aadObjectId": "aad-new"}]
    assert isinstance(from_activity(activity, channel_ctx()), Ignored)


@pytest.mark.parametrize("kind", ["typing", "messageReaction", "installationUpdate", "event"])
def test_other_activity_types_are_ignored_with_the_reason(kind: str) -> None:
    activity = personal(type=kind)
    assert as_ignored(from_activity(activity, context())).reason == (
        f"activity type {kind!r} is not handled"
    )


def test_a_conversation_reference_keeps_only_the_fields_of_a_reference() -> None:
    activity = load("teams_message_channel_mention.json")
    activity["from"]["padding"] = "x" * 1000
    activity["recipient"]["extra"] = {"nested": [1, 2]}
    activity["conversation"]["junk"] = True
    reference = conversation_reference(activity)
    assert set(reference["user"]) <= {"id", "name", "aadObjectId", "role"}
    assert set(reference["bot"]) <= {"id", "name", "aadObjectId", "role"}
    assert "junk" not in reference["conversation"]
    assert reference["conversation"]["id"] == activity["conversation"]["id"]
    assert reference["conversation"]["tenantId"] == CHANNEL_TENANT


@pytest.mark.parametrize(
    "change",
    [
        {"n": "n" * 65},
        {"a": "approve_quote" + " " * 60},
        {"s": "v1." + "0" * 62},
        {"t": "Q" * 1025},
        {"c": QUOTE_CONVERSATION + "x" * 1025},
        {"w": "a:" + "x" * 1023},
    ],
)
def test_card_data_longer_than_any_we_write_is_not_ours(change: dict[str, Any]) -> None:
    assert ids.parse_action_data({**approve_data(), **change}) is None


# --- ids -----------------------------------------------------------------------------------


def test_a_teams_conversation_id_gives_back_its_bot_framework_id() -> None:
    thread = f"{CHANNEL};messageid=1677621221150"
    assert ids.bf_conversation(ids.conversation_id(thread)) == thread
    assert ids.bf_conversation("slack:T1:C1:1.2") is None
    assert ids.bf_conversation("lead-0123456789abcdef") is None
    assert ids.bf_conversation("teams:") is None


@settings(deadline=None)
@given(
    conversation=st.text(min_size=1, max_size=ids.MAX_FIELD),
    action=st.text(min_size=1, max_size=ids.MAX_SHORT_FIELD),
    target=st.text(max_size=ids.MAX_FIELD),
    nonce=st.text(min_size=1, max_size=ids.MAX_SHORT_FIELD),
)
def test_card_data_survives_the_trip_through_json(
    conversation: str, action: str, target: str, nonce: str
) -> None:
    data = json.loads(json.dumps(ids.action_data(conversation, action, target, nonce)))
    assert ids.parse_action_data(data) == ids.ActionData(conversation, action, target, nonce)
