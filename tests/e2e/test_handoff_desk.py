"""The handoff desk end to end on Slack (fake Web API) and Teams (fake connector): what the
prospect sees in their thread and what the team sees in the handoff channel, for each
"Why" of issue 14 that items 1 and 2 answer:

- a rep who writes in the prospect's thread without pressing *Claim* is no longer talked
  over: the bot says nothing more there, the ticket card says who holds the conversation,
  and `@salesbot resume` hands it back (the bot answers again);
- after *Resolve* (an outcome, without *Return to bot*), the prospect's next message is not
  dropped: the ticket comes back to its holder, its card updated in place ("prospect wrote
  again") with what they wrote;
- while a person holds the ticket, each prospect message refreshes its card (the
  transcript so far, its age).

`salesbot chat` and the playground have theirs in `tests/bot/test_chat_desk.py` and
`tests/e2e/test_playground_desk.py`.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from tests.e2e import test_slack as slack_e2e
from tests.e2e import test_teams as teams_e2e
from tests.e2e.harness import eventually, outbox_drained
from tests.e2e.test_slack import HANDOFF, PROSPECT, REP, SHARED, Slack, bot_messages, post_form
from tests.e2e.test_slack import slack as slack  # the fixture: a served bot and fake Slack
from tests.e2e.test_teams import Teams, card_of, invoke, say
from tests.e2e.test_teams import teams as teams  # the fixture: a served bot and fake connector
from tests.fakes.teams_connector import thread_id

# --- Slack ---------------------------------------------------------------------------------


async def _prospect_says(slack: Slack, text: str, thread: str | None = None) -> str:
    ts = slack.api.add_message(SHARED, text, user=PROSPECT["user"], thread_ts=thread)
    event: dict[str, Any] = {"type": "message", "channel": SHARED, "channel_type": "channel"}
    event |= {"text": text, "ts": ts, **PROSPECT}
    if thread is not None:
        event["thread_ts"] = thread
    assert (await slack.events(event)).status == 200
    return ts


async def _rep_says(slack: Slack, text: str, thread: str, *, mention: bool = False) -> None:
    """A rep's reply in the thread: a plain message, or an @mention of the bot."""
    shown = f"<@{slack_e2e.BOT}> {text}" if mention else text
    ts = slack.api.add_message(SHARED, shown, user=REP, thread_ts=thread)
    event = {"type": "app_mention" if mention else "message", "channel": SHARED, "user": REP}
    event |= {"team": slack_e2e.TEAM, "text": shown, "ts": ts, "thread_ts": thread}
    if not mention:
        event["channel_type"] = "channel"
    assert (await slack.events(event)).status == 200


async def _press(slack: Slack, message: dict[str, Any], label: str, note: str = "") -> None:
    """The rep presses the button labelled `label` on `message` in the handoff channel,
    with `note` typed in the card's text box (Slack sends it in `state.values`)."""
    button = next(
        element
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["text"]["text"] == label
    )
    payload = {
        "type": "block_actions",
        "user": {"id": REP, "team_id": slack_e2e.TEAM, "name": "rae"},
        "team": {"id": slack_e2e.TEAM},
        "api_app_id": "A0001",
        "trigger_id": f"trigger-{time.monotonic_ns()}",
        "channel": {"id": HANDOFF},
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": HANDOFF},
        "message": message,
        "actions": [
            {
                "type": "button",
                "action_id": button["action_id"],
                "block_id": "b",
                "value": button["value"],
                "action_ts": str(time.time()),
            }
        ],
    }
    if note:
        payload["state"] = {
            "values": {"note": {"note": {"type": "plain_text_input", "value": note}}}
        }
    assert (await post_form(slack, {"payload": json.dumps(payload)})).status == 200


def _status(message: dict[str, Any]) -> str:
    return str(
        next(
            block["elements"][0]["text"].removeprefix("*Status:* ")
            for block in message["blocks"]
            if block["type"] == "context"
        )
    )


def _slack_card_text(message: dict[str, Any]) -> str:
    return "\n".join(
        block["text"]["text"]
        for block in message["blocks"]
        if block["type"] == "section" and "text" in block
    )


def _named(slack: Slack) -> None:
    """The rep as users.info names them: the name cards show, as on Teams."""
    slack.api.add_user(REP, name="rae", profile={"display_name": "", "real_name": "Rae Rep"})


def _in_thread(slack: Slack, thread: str) -> list[dict[str, Any]]:
    return [m for m in bot_messages(slack.api, SHARED) if m.get("thread_ts") == thread]


async def test_slack_a_rep_who_writes_in_the_thread_takes_it_over_and_resume_hands_it_back(
    slack: Slack,
) -> None:
    _named(slack)
    thread = await _prospect_says(slack, "Hi, we are evaluating CRMs for a team of 12")
    await eventually(lambda: len(_in_thread(slack, thread)) == 1, "the greeting")

    await _rep_says(slack, "Hi Pat, Rae from sales here. Happy to help.", thread)
    await eventually(lambda: len(bot_messages(slack.api, HANDOFF)) == 1, "the ticket card")
    (ticket,) = bot_messages(slack.api, HANDOFF)
    assert _status(ticket) == "Taken over by Rae Rep"
    assert "Rae from sales here" in _slack_card_text(ticket)

    await _prospect_says(slack, "Great, thanks Rae!", thread)
    await eventually(
        lambda: "Great, thanks Rae!" in _slack_card_text(bot_messages(slack.api, HANDOFF)[0]),
        "the ticket card refreshed with the prospect's words",
    )
    await outbox_drained(slack.client)
    assert len(_in_thread(slack, thread)) == 1, "the bot did not talk over the rep"
    assert len(bot_messages(slack.api, HANDOFF)) == 1, "updated in place, not posted again"

    await _rep_says(slack, "resume", thread, mention=True)
    await eventually(lambda: len(_in_thread(slack, thread)) == 2, "the bot back in the thread")
    assert _in_thread(slack, thread)[1]["text"].startswith("Thanks for")
    await eventually(
        lambda: _status(bot_messages(slack.api, HANDOFF)[0]) == "Returned to the bot by Rae Rep",
        "the card says the bot has it again",
    )
    await _prospect_says(slack, "What does the Pro plan cost?", thread)
    await eventually(lambda: len(_in_thread(slack, thread)) == 3, "the bot answers again")


async def test_slack_after_resolve_the_prospects_next_message_comes_back_to_the_holder(
    slack: Slack,
) -> None:
    _named(slack)
    thread = await _prospect_says(slack, "Can I talk to a real person please?")
    await eventually(lambda: len(bot_messages(slack.api, HANDOFF)) == 1, "the ticket card")
    await _press(slack, bot_messages(slack.api, HANDOFF)[0], "Claim ticket")
    await eventually(
        lambda: _status(bot_messages(slack.api, HANDOFF)[0]) == "Claimed by Rae Rep", "claimed"
    )
    await _press(slack, bot_messages(slack.api, HANDOFF)[0], "Resolve")
    await eventually(
        lambda: _status(bot_messages(slack.api, HANDOFF)[0]).endswith("how did it end?"),
        "the outcome picker",
    )
    await _press(slack, bot_messages(slack.api, HANDOFF)[0], "Closed")
    await eventually(
        lambda: _status(bot_messages(slack.api, HANDOFF)[0]) == "Closed by Rae Rep", "closed"
    )
    said_before = len(_in_thread(slack, thread))

    await _prospect_says(slack, "Sorry, one more question about invoices", thread)
    await eventually(
        lambda: (
            _status(bot_messages(slack.api, HANDOFF)[0])
            == "Claimed by Rae Rep: prospect wrote again"
        ),
        "the ticket back with its holder",
    )
    card = bot_messages(slack.api, HANDOFF)[0]
    assert _slack_card_text(card).endswith("prospect: Sorry, one more question about invoices")
    labels = [
        e["text"]["text"] for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert labels == ["Resolve", "Return to bot", "Won", "Lost…"]
    await outbox_drained(slack.client)
    assert len(_in_thread(slack, thread)) == said_before, "the holder answers, not the bot"
    assert len(bot_messages(slack.api, HANDOFF)) == 1


# --- Teams ---------------------------------------------------------------------------------


def _teams_status(card: dict[str, Any]) -> str:
    """The card's status line as plain text (its Markdown backslash escapes undone)."""
    status = str(next(item["text"] for item in card["body"] if item.get("color") == "Accent"))
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", status)


def _teams_text(card: dict[str, Any]) -> str:
    return "\n".join(
        item["text"]
        for item in card["body"]
        if item["type"] == "TextBlock" and "style" not in item and "color" not in item
    )


async def _teams_press(
    teams: Teams, card: dict[str, Any], label: str, note: str = ""
) -> dict[str, Any]:
    """The rep presses `label` on the handoff `card` as they see it, with `note` typed in its
    text box (Teams merges the input's value into the action's data); the invoke's answer
    (the card refreshed in place)."""
    action = next(a for a in card["actions"] if a["title"] == label)
    data = dict(action["data"]) | ({"note": note} if note else {})
    activity = invoke(
        teams_e2e.HANDOFF,
        teams_e2e.REP,
        action["verb"],
        data,
        service_url=teams.connector.base_url,
    )
    response = await teams.post(activity)
    assert response.status == 200
    answered: dict[str, Any] = (await response.json())["value"]
    return answered


def _latest(teams: Teams, posted: dict[str, Any]) -> dict[str, Any]:
    activity = teams.connector.activity(teams_e2e.HANDOFF, posted["id"])
    assert activity is not None
    return activity


async def test_teams_a_rep_who_writes_in_the_thread_takes_it_over_and_resume_hands_it_back(
    teams: Teams,
) -> None:
    connector = teams.connector
    thread = thread_id(teams_e2e.SHARED, "1700000000700")
    await teams.post(say(teams, thread, teams_e2e.PROSPECT, "Hi, we are evaluating CRMs"))
    await connector.wait_for_posts(thread, 1)

    # The rep answers in the thread without mentioning the bot (its RSC lets it read that).
    await teams.post(say(teams, thread, teams_e2e.REP, "Hi Pat, Rae from sales here."))
    (ticket,) = await connector.wait_for_posts(teams_e2e.HANDOFF, 1)
    assert _teams_status(card_of(ticket)) == "Taken over by Rae Rep"

    await teams.post(say(teams, thread, teams_e2e.PROSPECT, "Great, thanks Rae!"))
    await connector.wait_for_updates(1)
    assert "Great, thanks Rae!" in _teams_text(card_of(_latest(teams, ticket)))
    await outbox_drained(teams.client)
    assert len(connector.posted(thread)) == 1, "the bot did not talk over the rep"

    await teams.post(say(teams, thread, teams_e2e.REP, "resume", mention=True))
    posts = await connector.wait_for_posts(thread, 2)
    assert posts[1]["text"].startswith("Thanks for")
    await eventually(
        lambda: _teams_status(card_of(_latest(teams, ticket))) == "Returned to the bot by Rae Rep",
        "the card says the bot has it again",
    )


async def test_teams_in_a_group_chat_with_a_guest_a_reps_words_take_it_over(
    teams: Teams,
) -> None:
    connector = teams.connector
    chat = "19:chat-with-gus@thread.v2"
    guest = teams_e2e.GUEST
    await teams.post(say(teams, chat, guest, "Hi, what does the Pro plan cost?", kind="groupChat"))
    await connector.wait_for_posts(chat, 1)
    await teams.post(say(teams, chat, teams_e2e.REP, "Gus, I'll take this one.", kind="groupChat"))
    (ticket,) = await connector.wait_for_posts(teams_e2e.HANDOFF, 1)
    assert _teams_status(card_of(ticket)) == "Taken over by Rae Rep"
    await teams.post(say(teams, chat, guest, "Thanks Rae", kind="groupChat"))
    await connector.wait_for_updates(1)
    await outbox_drained(teams.client)
    assert len(connector.posted(chat)) == 1, "the bot stays quiet in the chat"


async def test_teams_after_resolve_the_prospects_next_message_comes_back_to_the_holder(
    teams: Teams,
) -> None:
    connector = teams.connector
    thread = thread_id(teams_e2e.SHARED, "1700000000900")
    prospect = teams_e2e.PROSPECT
    await teams.post(say(teams, thread, prospect, "Can I talk to a real person please?"))
    (ticket,) = await connector.wait_for_posts(teams_e2e.HANDOFF, 1)
    claimed = await _teams_press(teams, card_of(ticket), "Claim ticket")
    assert _teams_status(claimed) == "Claimed by Rae Rep"
    picker = await _teams_press(teams, claimed, "Resolve")
    assert [a["title"] for a in picker["actions"]] == [
        "Won",
        "Lost…",
        "Handled: back to the bot",
        "Closed",
        "Back",
    ]
    closed = await _teams_press(teams, picker, "Closed")
    assert _teams_status(closed) == "Closed by Rae Rep"
    assert closed.get("actions", []) == []
    await outbox_drained(teams.client)
    said_before = len(connector.posted(thread))

    await teams.post(say(teams, thread, prospect, "Sorry, one more question about invoices"))
    await eventually(
        lambda: (
            _teams_status(card_of(_latest(teams, ticket)))
            == "Claimed by Rae Rep: prospect wrote again"
        ),
        "the ticket back with its holder",
    )
    card = card_of(_latest(teams, ticket))
    assert "one more question about invoices" in _teams_text(card)
    assert [a["title"] for a in card["actions"]] == ["Resolve", "Return to bot", "Won", "Lost…"]
    await outbox_drained(teams.client)
    assert len(connector.posted(thread)) == said_before, "the holder answers, not the bot"


async def test_slack_a_lost_deal_is_resolved_with_a_reason_and_the_reps_note(slack: Slack) -> None:
    _named(slack)
    await _prospect_says(slack, "Can I talk to a real person please?")
    await eventually(lambda: len(bot_messages(slack.api, HANDOFF)) == 1, "the ticket card")
    for label, shown in (
        ("Claim ticket", "Claimed by Rae Rep"),
        ("Resolve", "Rae Rep is resolving it: how did it end?"),
        ("Lost…", "Rae Rep is resolving it as lost: why?"),
    ):
        await _press(slack, bot_messages(slack.api, HANDOFF)[0], label)

        def shows(status: str = shown) -> bool:
            return _status(bot_messages(slack.api, HANDOFF)[0]) == status

        await eventually(shows, shown)
    reasons = bot_messages(slack.api, HANDOFF)[0]
    assert any(block["type"] == "input" for block in reasons["blocks"]), "the note's text box"
    await _press(slack, reasons, "Price", note="Budget frozen until next year")
    await eventually(
        lambda: (
            _status(bot_messages(slack.api, HANDOFF)[0])
            == "Resolved by Rae Rep: lost (found it too expensive): “Budget frozen until next year”"
        ),
        "the lost deal with its reason and note",
    )


async def test_teams_a_lost_deal_is_resolved_with_a_reason_and_the_reps_note(teams: Teams) -> None:
    connector = teams.connector
    thread = thread_id(teams_e2e.SHARED, "1700000001100")
    await teams.post(say(teams, thread, teams_e2e.PROSPECT, "Can I talk to a real person please?"))
    (ticket,) = await connector.wait_for_posts(teams_e2e.HANDOFF, 1)
    claimed = await _teams_press(teams, card_of(ticket), "Claim ticket")
    picker = await _teams_press(teams, claimed, "Resolve")
    reasons = await _teams_press(teams, picker, "Lost…")
    assert [item["id"] for item in reasons["body"] if item["type"] == "Input.Text"] == ["note"]
    lost = await _teams_press(teams, reasons, "Price", note="Budget frozen until next year")
    assert _teams_status(lost) == (
        "Resolved by Rae Rep: lost (found it too expensive): “Budget frozen until next year”"
    )
