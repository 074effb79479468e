"""The prospect's conversation, over random conversations (Hypothesis): what a prospect notices.

The shared property test of the conversation issue (issue 13; the handoff-desk issue extends
it). Whatever the prospect writes, in whatever order, mixed with reps' quotes, clicks on every
button, idle timers, reps talking in the thread (a takeover under `[handoff]`) and random
sequences of ticket actions (claim, resolve with each outcome of the picker, return to the
bot, `resume`):

1. no two consecutive bot messages to the prospect are the same text;
2. every prospect message gets a reply, or a post the team sees (the handoff channel, the
   team's thread, the approvers), or arrives while a person holds the conversation (an open
   handoff ticket: the bot stays silent so it does not talk over them).
3. a prospect who takes their leave (`prospect_left`) is never asked a sales question, sent
   an objection reply or offered a proposal in the same turn, and the team hears of a lost
   deal at most once per conversation.

A bot message to the prospect is a reply to the conversation that is a new message (not a
card updated in place). Private notices to whoever clicked or typed a command (`requester`)
answer that person's own action and are not part of the conversation.
"""

from __future__ import annotations

from typing import Any, get_args

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.policy_loader import load_policy
from domain.events import BotReplied, ProspectLeft, TeamNotified
from domain.inbound import ActionId
from tests.support.talk import (
    MANAGER,
    PROSPECT,
    REP,
    bot_messages_to_the_prospect,
    final_state,
    repeated_in_a_row,
    says,
    talk,
    unanswered,
)

POLICIES = {"default": load_policy("default"), "seed": load_policy("seed")}

# What prospects write, family by family, in several wordings each (the "Why").
PROSPECT_LINES = [
    # questions about the product
    "what does your product do?",
    "does it integrate with Salesforce?",
    "how many users can we add?",
    "is there a free trial?",
    "do you have an API?",
    "where is our data hosted?",
    # qualification answers, with figures the bot may echo
    "We have a $40k budget and need to go live next month",
    "I am the CTO and I sign off on this",
    "we're a team of 25",
    "budget is around 10k dollars",
    "we'd like to start in March",
    "by the end of Q3",
    # objections, repeated and paraphrased
    "too expensive for us",
    "that's pricey",
    "not a good time, we're busy",
    "maybe next quarter",
    "we already use HubSpot",
    "I need to check with my boss",
    # people, paperwork, goodbyes
    "Can I talk to a real person please?",
    "can we cancel the contract and get a refund?",
    "sounds good",
    "ok",
    "thanks bye",
    "just browsing",
    # leaving, in several ways and languages; buyers with an objection
    "not interested, thanks",
    "we went with Pipedrive in the end",
    "I'm a student doing a school project",
    "Vielen Dank, schönen Tag noch",
    "cfo here. $40k approved. want to buy before EOQ, but is there a discount?",
]
prospect_text = st.one_of(
    st.sampled_from(PROSPECT_LINES), st.sampled_from(PROSPECT_LINES), st.text(max_size=40)
)


REP_LINES = ["Happy to help, Pat.", "Let me check.", "resume", "/resume"]
"""What reps write in the conversation: words for the prospect (a takeover), and `resume`."""
TICKET_ACTIONS = ["claim_ticket", "resolve_ticket", "resolve_ticket", "return_to_bot"]
OUTCOME_CHOICES = [
    "",
    "won",
    "lost",
    "lost price",
    "lost chose_competitor",
    "lost made_up_reason",
    "handled",
    "closed",
    "closed",
    "back",
]
"""Resolve's picker: each outcome, a lost reason, one the policy does not list, and Back."""


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A conversation: mostly the prospect, with the team's moves in between."""
    moves: list[dict[str, Any]] = []
    if draw(st.booleans()):
        moves.append({"kind": "lead", "text": draw(st.sampled_from(PROSPECT_LINES))})
    for _ in range(draw(st.integers(min_value=1, max_value=14))):
        kind = draw(
            st.sampled_from(
                ["prospect"] * 6
                + ["quote", "click", "click", "rep_says", "timer", "help", "ticket", "ticket"]
            )
        )
        move: dict[str, Any] = {"kind": kind, "pause_s": draw(st.integers(5, 120))}
        if kind == "prospect":
            move["text"] = draw(prospect_text)
        elif kind == "quote":
            move["args"] = draw(st.sampled_from(["10 pro 10%", "3 enterprise 20%", "5 starter"]))
        elif kind == "click":
            move["action"] = draw(st.sampled_from(get_args(ActionId)))
            move["actor"] = draw(st.sampled_from([PROSPECT, REP, MANAGER]))
            move["pick"] = draw(st.integers(0, 5))
        elif kind == "rep_says":
            move["text"] = draw(st.sampled_from(REP_LINES))
        elif kind == "ticket":
            # The team working the conversation's ticket: its buttons and the outcome picker's.
            move["kind"] = "click"
            move["action"] = draw(st.sampled_from(TICKET_ACTIONS))
            move["actor"] = draw(st.sampled_from([REP, MANAGER]))
            move["pick"] = draw(st.integers(0, 5))
            if move["action"] == "resolve_ticket":
                move["choice"] = draw(st.sampled_from(OUTCOME_CHOICES))
        elif kind == "timer":
            move["days"] = draw(st.integers(0, 9))
        moves.append(move)
    return moves


@settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(conversations(), st.sampled_from(sorted(POLICIES)))
def test_the_bot_never_says_the_same_thing_twice_in_a_row_and_never_ignores_the_prospect(
    moves: list[dict[str, Any]], policy_name: str
) -> None:
    steps = talk(POLICIES[policy_name], moves)
    said = bot_messages_to_the_prospect(steps)
    assert repeated_in_a_row(said) == [], said
    assert unanswered(steps) == []
    for _, decision in steps:
        found = [env.event for env in decision.events]
        if any(isinstance(event, ProspectLeft) for event in found):
            sales = [
                event.template
                for event in found
                if isinstance(event, BotReplied)
                and event.template.startswith(("ask", "objection", "propose"))
            ]
            assert sales == [], sales
    lost_posts = [
        env.event
        for _, decision in steps
        for env in decision.events
        if isinstance(env.event, TeamNotified) and env.event.kind == "lost"
    ]
    assert len(lost_posts) <= 1


@settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PROSPECT_LINES), min_size=3, max_size=12))
def test_a_prospect_alone_is_asked_each_question_at_most_twice(lines: list[str]) -> None:
    policy = POLICIES["default"]
    counts = final_state(talk(policy, says(*lines))).said_counts
    limit = policy.replies.max_asks_per_slot
    assert limit == 2
    asked = {template: n for template, n in counts.items() if template.startswith("ask")}
    assert all(n <= limit for n in asked.values()), asked
    assert counts.get("propose", 0) <= limit
