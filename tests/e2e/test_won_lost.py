"""Won and lost on the record end to end (issue 14 item 5) on Slack (fake Web API) and Teams
(fake connector): the team's ticket card updated in place when a rep records how the deal
ended — by a slash command from another channel naming the conversation, by `@salesbot lost
…` inside the prospect's thread, by the card's *Won* / *Lost…* buttons, or by a command typed
to the bot in Teams. The prospect hears nothing of it. `salesbot chat` has its own in
`tests/bot/test_chat_won_lost.py`, the playground in `tests/e2e/test_playground_won_lost.py`.
"""

from __future__ import annotations

from typing import Any

from tests.e2e import test_slack as slack_e2e
from tests.e2e import test_teams as teams_e2e
from tests.e2e.harness import eventually, outbox_drained
from tests.e2e.test_handoff_desk import (
    _in_thread,
    _latest,
    _named,
    _press,
    _prospect_says,
    _rep_says,
    _status,
    _teams_press,
    _teams_status,
)
from tests.e2e.test_slack import HANDOFF, REP, Slack, bot_messages, post_form
from tests.e2e.test_slack import slack as slack  # the fixture: a served bot and fake Slack
from tests.e2e.test_teams import Teams, card_of, say
from tests.e2e.test_teams import teams as teams  # the fixture: a served bot and fake connector
from tests.fakes.teams_connector import thread_id


def _conversation_field(message: dict[str, Any]) -> str:
    """The conversation id the ticket card shows (what a rep copies into a command)."""
    for block in message["blocks"]:
        for field in block.get("fields", []):
            text = field["text"]
            if text.startswith("*Conversation*"):
                return str(text.split("\n", 1)[1])
    raise AssertionError("the card shows no conversation")


async def test_slack_won_by_slash_command_from_another_channel_names_the_conversation(
    slack: Slack,
) -> None:
    _named(slack)
    thread = await _prospect_says(slack, "Can I talk to a real person please?")
    await eventually(lambda: len(bot_messages(slack.api, HANDOFF)) == 1, "the ticket card")
    ticket = bot_messages(slack.api, HANDOFF)[0]
    conversation = _conversation_field(ticket)
    response = await post_form(
        slack,
        {
            "command": "/won",
            "text": conversation,
            "team_id": slack_e2e.TEAM,
            "channel_id": "D_REP",
            "user_id": REP,
            "user_name": "rae",
            "trigger_id": "trig-won",
            "response_url": "https://hooks.slack.com/commands/won",
        },
    )
    assert response.status == 200
    await eventually(
        lambda: _status(bot_messages(slack.api, HANDOFF)[0]) == "Resolved by Rae Rep: won",
        "the ticket card updated in place",
    )
    await outbox_drained(slack.client)
    assert len(bot_messages(slack.api, HANDOFF)) == 1
    assert len(_in_thread(slack, thread)) == 1, "the prospect heard nothing of it"


async def test_slack_lost_by_mention_in_the_thread_with_a_reason_and_a_note(slack: Slack) -> None:
    _named(slack)
    thread = await _prospect_says(slack, "Can I talk to a real person please?")
    await eventually(lambda: len(bot_messages(slack.api, HANDOFF)) == 1, "the ticket card")
    await _rep_says(slack, "lost budget", thread, mention=True)  # not a reason: nothing done
    await _rep_says(slack, "lost timing back in Q3", thread, mention=True)
    await eventually(
        lambda: (
            _status(bot_messages(slack.api, HANDOFF)[0])
            == "Resolved by Rae Rep: lost (is not ready yet): “back in Q3”"
        ),
        "the lost deal on the ticket card",
    )


async def test_slack_lost_by_the_ticket_cards_button_asks_for_the_reason(slack: Slack) -> None:
    _named(slack)
    await _prospect_says(slack, "Can I talk to a real person please?")
    await eventually(lambda: len(bot_messages(slack.api, HANDOFF)) == 1, "the ticket card")
    await _press(slack, bot_messages(slack.api, HANDOFF)[0], "Lost…")
    await eventually(
        lambda: _status(bot_messages(slack.api, HANDOFF)[0]) == "Rae Rep is marking it lost: why?",
        "the reasons",
    )
    await _press(slack, bot_messages(slack.api, HANDOFF)[0], "Price", note="Too dear")
    await eventually(
        lambda: (
            _status(bot_messages(slack.api, HANDOFF)[0])
            == "Resolved by Rae Rep: lost (found it too expensive): “Too dear”"
        ),
        "the lost deal",
    )


async def test_teams_won_by_button_and_lost_by_a_typed_command(teams: Teams) -> None:
    connector = teams.connector
    thread = thread_id(teams_e2e.SHARED, "1700000002100")
    await teams.post(say(teams, thread, teams_e2e.PROSPECT, "Can I talk to a real person please?"))
    (ticket,) = await connector.wait_for_posts(teams_e2e.HANDOFF, 1)
    won = await _teams_press(teams, card_of(ticket), "Won")
    assert _teams_status(won) == "Resolved by Rae Rep: won"

    other = thread_id(teams_e2e.SHARED, "1700000002200")
    await teams.post(say(teams, other, teams_e2e.PROSPECT, "Can I talk to a real person please?"))
    second = (await connector.wait_for_posts(teams_e2e.HANDOFF, 2))[1]
    await teams.post(say(teams, other, teams_e2e.REP, "lost price too dear", mention=True))
    await eventually(
        lambda: (
            _teams_status(card_of(_latest(teams, second)))
            == "Resolved by Rae Rep: lost (found it too expensive): “too dear”"
        ),
        "the lost deal on the ticket card",
    )
    await outbox_drained(teams.client)
