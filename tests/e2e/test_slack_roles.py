"""Who may do what, through the real server and the fake Slack Web API (issue 10's Why):
a prospect in a Slack Connect channel cannot read scoring weights with `/lead`, never sees
the rules behind a quote, and the only approver cannot approve their own discount."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.e2e.harness import eventually, outbox_drained
from tests.e2e.test_slack import (
    BOSS,
    HANDOFF,
    PROSPECT,
    REP,
    SHARED,
    TEAM,
    Slack,
    bot_messages,
    click,
    post_form,
    slack,
    texts,
)


def command(name: str, text: str, user: str, team: str, trigger: str) -> dict[str, str]:
    return {
        "command": name,
        "text": text,
        "team_id": team,
        "channel_id": SHARED,
        "user_id": user,
        "user_name": user.lower(),
        "trigger_id": trigger,
        "response_url": "https://hooks.slack.com/commands/x",
    }


__all__ = ["slack"]  # the fixture, shared with test_slack


async def stored_events(slack: Slack, conversation: str) -> list[Any]:
    return [envelope.event for envelope in await slack.store.load(conversation)]


async def test_a_prospect_cannot_score_text_and_read_the_weights(slack: Slack) -> None:
    fields = command("/lead", "budget 50k, CTO, next month", PROSPECT["user"], "T0ACME", "t-1")
    assert (await post_form(slack, fields)).status == 200
    await eventually(lambda: bool(slack.api.ephemerals(SHARED)), "the answer")
    await outbox_drained(slack.client)
    (answer,) = slack.api.ephemerals(SHARED)
    assert answer["user"] == PROSPECT["user"]
    assert "for the sales team" in answer["text"]
    shown = json.dumps(slack.api.ephemerals(SHARED)) + texts(bot_messages(slack.api, SHARED))
    assert "budget" not in shown
    assert "×" not in shown  # no feature × weight arithmetic
    (refused,) = await stored_events(slack, f"slack:{TEAM}:{SHARED}")
    assert (refused.type, refused.reason) == ("command_refused", "reps_only")


async def test_the_only_approver_cannot_approve_their_own_discount(slack: Slack) -> None:
    api = slack.api
    response = await post_form(slack, command("/quote", "10 pro 20%", BOSS, TEAM, "t-2"))
    assert response.status == 200
    await eventually(lambda: any(e.get("blocks") for e in api.ephemerals(SHARED)), "the card")
    card = next(e for e in api.ephemerals(SHARED) if e.get("blocks"))
    await click(slack, card, "request_approval", BOSS)
    await eventually(lambda: len(bot_messages(api, HANDOFF)) == 1, "the approval card")
    approval = bot_messages(api, HANDOFF)[0]
    # BOSS is the only configured approver: the card asks for a manager.
    assert "Waiting for a manager" in texts([approval])
    await click(slack, approval, "approve_quote", BOSS, channel=HANDOFF)
    # Told privately (an ephemeral follows the conversation the click acts on).
    await eventually(
        lambda: any("four eyes" in e.get("text", "") for e in api.ephemerals(SHARED)),
        "the refusal",
    )
    await outbox_drained(slack.client)
    events = await stored_events(slack, f"slack:{TEAM}:{SHARED}")
    assert "quote_approved" not in [e.type for e in events]
    assert [e.reason for e in events if e.type == "action_ignored"] == ["four_eyes"]
    assert re.search(r"Q-[0-9a-f]{10} v2", texts(bot_messages(api, SHARED))) is None
    assert "rep cap" not in texts(bot_messages(api, SHARED))


async def test_a_rep_cannot_approve_and_a_prospect_sees_only_the_offer(slack: Slack) -> None:
    api = slack.api
    await post_form(slack, command("/quote", "10 pro 10%", REP, TEAM, "t-3"))
    await eventually(lambda: len(bot_messages(api, SHARED)) == 1, "the quote card")
    (card,) = bot_messages(api, SHARED)
    shown = texts([card])
    assert "Accept quote" in shown
    assert "Talk to a person" in shown
    for internal in ("rep cap", "request_approval", "approval ="):
        assert internal not in shown
