"""No parroting (issue 13, items 5 and 8): scripted conversations as a prospect reads them.

Each family is a kind of conversation from the issue's "Why", written five ways or more. In
every one the prospect never reads the same line twice in a row, is asked each qualifying
question at most twice, and every message gets a reply or reaches a person. Then what makes
that possible: wordings chosen by a hash (stable under replay), acknowledgements that echo
the prospect's own figures, and a claims guard that takes those figures as the prospect's
words while still refusing a price nobody computed.
"""

from __future__ import annotations

import itertools
import json
from decimal import Decimal

import pytest

from domain.audit import audit_conversation
from domain.errors import RenderError
from domain.events import BotReplied, ClaimRefused, MessageRead, ReplyRedirected, TicketOpened
from domain.persona import (
    ECHO_PLACEHOLDERS,
    FIGURE_PLACEHOLDERS,
    Persona,
    Template,
    check_persona,
    render,
)
from domain.policy import Policy, RepliesConfig
from domain.policy_check import check_policy
from domain.presenters import REASON_TEXT
from domain.replay import replay_conversation
from tests.support.talk import (
    PROSPECT,
    REP,
    Move,
    Steps,
    bot_messages_to_the_prospect,
    envelopes,
    events,
    final_state,
    record,
    repeated_in_a_row,
    says,
    talk,
    unanswered,
)

LIMIT = 2  # the default policy's [replies] max_asks_per_slot


def asks(steps: Steps) -> dict[str, int]:
    """How often each question, proposal and objection reply was said to the prospect."""
    said = [e.template for e in events(steps, BotReplied) if e.audience == "conversation"]
    return {t: said.count(t) for t in set(said) if t.startswith(("ask", "propose", "objection"))}


def assert_no_parroting(steps: Steps) -> list[str]:
    """The family-independent promises; returns what the prospect read, for more checks."""
    said = bot_messages_to_the_prospect(steps)
    assert repeated_in_a_row(said) == [], said
    assert all(n <= LIMIT for n in asks(steps).values()), asks(steps)
    assert unanswered(steps) == []
    return said


# --- families --------------------------------------------------------------------------------

PRODUCT_QUESTIONS = {
    "plain": [
        "what does your product do?",
        "does it integrate with Salesforce?",
        "how many users can we add?",
        "is there a free trial?",
        "do you have an API?",
        "ok and SSO?",
        "what about support hours?",
    ],
    "casual": [
        "hi there",
        "what's the main use case?",
        "integrations?",
        "can I try it free?",
        "api docs?",
        "mobile app?",
        "is it in the cloud?",
    ],
    "detailed": [
        "Hello, I'd like to understand what your platform covers.",
        "Which CRMs can it sync with?",
        "Can admins manage permissions per team?",
        "How does onboarding work for new users?",
        "Is there reporting built in?",
        "Can we export our data?",
    ],
    "terse": ["features?", "salesforce?", "seats?", "trial?", "api?", "webhooks?"],
    "evaluator": [
        "We're comparing a few sales tools right now.",
        "Does it have an Outlook plugin?",
        "What does the dashboard show?",
        "Can we customise the pipeline stages?",
        "Is there an audit log?",
        "How are updates rolled out?",
    ],
}


@pytest.mark.parametrize("lines", PRODUCT_QUESTIONS.values(), ids=PRODUCT_QUESTIONS.keys())
def test_product_questions_get_different_questions_back_then_a_person(
    default_policy: Policy, lines: list[str]
) -> None:
    steps = talk(default_policy, says(*lines))
    said = assert_no_parroting(steps)
    budget = default_policy.active_persona.templates["ask.budget"].texts
    assert sum(line in budget for line in said) <= LIMIT
    # Not the same slot twice in a row while another is open: budget, timeline, authority…
    templates = [e.template for e in events(steps, BotReplied)]
    assert all(a != b for a, b in itertools.pairwise(templates) if a.startswith("ask."))
    for ticket in events(steps, TicketOpened):  # any handoff says why, in words
        assert ticket.reason.split(",")[0] in REASON_TEXT


QUALIFIED_BUYERS = {
    "cto": (
        "We have a $40k budget and need to go live next month, I am the CTO, "
        "we need a CRM for 25 reps",
        "$40k",
        ["sounds good", "ok", "great"],
    ),
    "cfo": (
        "CFO here. $60k approved, we want to buy before the end of the quarter for our team of 30.",
        "$60k",
        ["Great", "and then?", "cool"],
    ),
    "head_of_sales": (
        "I'm the head of sales; budget is 25000 USD and we must switch by March. 12 sellers.",
        "25000 USD",
        ["ok", "sure", "fine"],
    ),
    "founder": (
        "Founder here, we need a sales tool asap, budget around 10k dollars, team of 8",
        "10k dollars",
        ["sure", "ok", "alright"],
    ),
    "vp": (
        "As VP Sales I sign off. We have €50,000 set aside and want to start in January.",
        "€50,000",
        ["that works", "ok", "good"],
    ),
}


@pytest.mark.parametrize(
    ("opening", "figure", "replies"), QUALIFIED_BUYERS.values(), ids=QUALIFIED_BUYERS.keys()
)
def test_a_qualified_buyer_hears_their_budget_is_offered_a_call_twice_then_gets_a_person(
    default_policy: Policy, opening: str, figure: str, replies: list[str]
) -> None:
    steps = talk(default_policy, says(opening, *replies))
    said = assert_no_parroting(steps)
    assert figure in said[0]  # the prospect's own figure, as they wrote it
    assert "short call" in said[0]
    assert asks(steps)["propose"] == LIMIT
    (ticket,) = events(steps, TicketOpened)
    assert ticket.reason == "qualified_follow_up"
    assert "colleague from our sales team" in said[-1]
    assert final_state(steps).flow_state == "handoff"


REPEATED_OBJECTIONS = {
    "price": [
        "Hi, looking at CRMs",
        "Honestly it's too expensive for us",
        "Still, that's a lot of money",
        "I really can't justify the cost",
        "the price is just too high",
    ],
    "competitor": [
        "hello",
        "we already use HubSpot",
        "we're happy with our current vendor",
        "we are locked in with another provider",
        "not sure we need to switch",
    ],
    "timing": [
        "hey",
        "not a good time, we're busy",
        "maybe later this year",
        "can we circle back next quarter?",
        "we're on hold for now",
    ],
    "authority": [
        "hi",
        "I need to check with my boss",
        "it's not my call",
        "procurement decides",
        "the board has to approve",
    ],
    "pricey": ["Hi there", "it seems pricey", "we're a team of 40 though", "too pricey still"],
}


@pytest.mark.parametrize("lines", REPEATED_OBJECTIONS.values(), ids=REPEATED_OBJECTIONS.keys())
def test_a_repeated_objection_is_answered_at_most_twice_then_the_bot_moves_on(
    default_policy: Policy, lines: list[str]
) -> None:
    steps = talk(default_policy, says(*lines))
    assert_no_parroting(steps)
    for redirect in events(steps, ReplyRedirected):
        assert redirect.said != redirect.planned
        assert redirect.skipped


def test_a_timing_objector_who_names_a_date_is_not_asked_when_right_after(
    default_policy: Policy,
) -> None:
    # The second timing objection in a row ("maybe later this year") gets a question, not the
    # timing reply again ([dialog] move_on_after_objection): never the one about timing.
    steps = talk(default_policy, says(*REPEATED_OBJECTIONS["timing"][:3]))
    last = bot_messages_to_the_prospect(steps)[-1]
    assert "this year" in last  # acknowledged
    assert not any(
        text in last for text in default_policy.active_persona.templates["ask.timeline"].texts
    )


FIGURES = {
    "team_then_budget_then_date": (
        [
            "Hi, we're evaluating CRMs",
            "We're a team of 40 sales reps",
            "our budget is around $25k",
            "we'd like to start in March",
        ],
        ["40", "$25k", "March"],
    ),
    "per_month": (
        [
            "hello",
            "about 12 people would use it",
            "we have about 25000 usd a year for it",
            "by the end of Q3",
        ],
        ["12", "25000 usd a year", "the end of Q3"],
    ),
    "euro": (
        [
            "hey there",
            "There are 80 of us in sales",
            "we have 30.000 € set aside",
            "go live next month",
        ],
        ["80", "30.000 €", "next month"],
    ),
    "dollars": (
        ["Hi", "team of 5", "maybe 10k dollars", "within two months"],
        ["5", "10k dollars", "within two months"],
    ),
    "monthly_spend": (
        [
            "good morning",
            "we have 25 users",
            "we could spend $2,000 a month",
            "ideally before March 15",
        ],
        ["25", "$2,000 a month", "March 15"],
    ),
}


@pytest.mark.parametrize(("lines", "figures"), FIGURES.values(), ids=FIGURES.keys())
def test_the_reply_acknowledges_the_prospects_own_figure_before_the_next_question(
    default_policy: Policy, lines: list[str], figures: list[str]
) -> None:
    steps = talk(default_policy, says(*lines))
    said = assert_no_parroting(steps)
    for figure, reply in zip(figures, said[1:], strict=True):
        assert figure in reply, (figure, reply)
    replies = [e for e in events(steps, BotReplied) if e.audience == "conversation"]
    reads = events(steps, MessageRead)
    for reply, reading in zip(replies[1:], reads[1:], strict=True):
        assert reply.acknowledged is not None
        assert reply.acknowledged.startswith("ack.")
        # The echoed words are the reading's entities, exactly as extracted.
        entity_texts = (
            {m["text"] for m in reading.entities["money"]}
            | {d["text"] for d in reading.entities["dates"]}
            | {str(reading.entities["team_size"])}
        )
        assert set(reply.echoed.values()) <= entity_texts


def after_close(follow_ups: list[str]) -> list[Move]:
    """Qualified, quoted, accepted; then the prospect writes, a rep resolves the ticket
    that opens, and the prospect writes again, several times."""
    moves: list[Move] = [
        *says("We have a $40k budget, I am the CTO and want to start next month"),
        {"kind": "quote", "args": "10 pro 10%", "pause_s": 60},
        {"kind": "click", "action": "accept_quote", "actor": PROSPECT, "pick": 0, "pause_s": 60},
    ]
    for line in follow_ups:
        moves += says(line)
        moves.append(
            {
                "kind": "click",
                "action": "resolve_ticket",
                "actor": REP,
                "pick": "latest_ticket",
                "choice": "closed",
                "pause_s": 60,
            }
        )
    return moves


AFTER_CLOSE = {
    "thanks": ["thanks!", "one more thing", "hello?"],
    "questions": ["when do we start?", "who do I send the PO to?", "can I add a user?"],
    "short": ["ok", "ok", "ok"],
    "chatty": ["great working with you", "looking forward to it", "see you soon"],
    "worried": ["did it go through?", "I haven't heard back", "anyone there?"],
}


@pytest.mark.parametrize("follow_ups", AFTER_CLOSE.values(), ids=AFTER_CLOSE.keys())
def test_after_the_close_each_message_reaches_a_person_in_new_words(
    default_policy: Policy, follow_ups: list[str]
) -> None:
    # The bot answers each message after an outcome (`[handoff] after_outcome = "bot"`; the
    # default reopens the ticket for its holder instead, and the bot stays silent).
    assert default_policy.handoff is not None
    desk = default_policy.handoff.model_copy(update={"after_outcome": "bot"})
    steps = talk(default_policy.model_copy(update={"handoff": desk}), after_close(follow_ups))
    said = assert_no_parroting(steps)
    won = next(text for text in said if "in touch here" in text)
    assert "paperwork" in won
    assert "onboarding" in won
    quote_id = next(iter(final_state(steps).quotes))
    assert quote_id in won or "the colleague who prepared your quote" in won.lower()
    closing = [e for e in events(steps, TicketOpened) if e.reason == "message_after_close"]
    assert len(closing) == len(follow_ups)


# --- wordings, replay, echoes and the claims guard ---------------------------------------------


def test_the_wording_is_chosen_by_the_conversation_and_replays_exactly(
    default_policy: Policy,
) -> None:
    # The flow's own wordings: without a knowledge base, product questions get questions back.
    default_policy = default_policy.model_copy(update={"knowledge": None})
    greetings = set()
    for number in range(12):
        cid = f"conv-{number}"
        steps, inbounds = record(default_policy, says(*PRODUCT_QUESTIONS["plain"]), cid)
        greetings.add(bot_messages_to_the_prospect(steps)[0])
        replay = replay_conversation(cid, inbounds, envelopes(steps), lambda _: default_policy)
        assert replay.differences == ()
        again = talk(default_policy, says(*PRODUCT_QUESTIONS["plain"]), cid)
        assert bot_messages_to_the_prospect(again) == bot_messages_to_the_prospect(steps)
    # Different conversations are greeted in different words (3 wordings, 12 conversations).
    assert len(greetings) >= 2


def echo_persona(ack: str, *, guard_target: str = "Who decides?") -> Persona:
    return Persona(
        name="Tester",
        tone="plain",
        allowed_claims=("pricing",),
        escalate_below=Decimal(0),
        actions={},
        templates={
            "escalate": Template(text="A colleague will reply here."),
            "ack.budget": Template(text=ack),
            "ask.authority": Template(text=guard_target),
        },
        fallbacks={"*": "escalate"},
    )


def test_an_echoed_budget_is_the_prospects_words_not_a_price_claim() -> None:
    persona = echo_persona("Thanks, a budget of {budget} helps.")
    assert "budget" in ECHO_PLACEHOLDERS
    assert "budget" not in FIGURE_PLACEHOLDERS
    assert check_persona(persona) == ()
    rendered = render(persona, "ack.budget", {}, guard=True, echoes={"budget": "$40k"})
    assert rendered.text == "Thanks, a budget of $40k helps."
    assert rendered.refused == ()
    assert rendered.echoed == {"budget": "$40k"}


def test_an_echo_comes_only_from_the_reading_never_from_other_values() -> None:
    persona = echo_persona("Thanks, a budget of {budget} helps.")
    # A value merely named like an echo (values may carry anything) is dropped: no line.
    with pytest.raises(RenderError, match="nothing it can say"):
        render(persona, "ack.budget", {"budget": "$1"}, fallbacks=False)
    echoed = render(persona, "ack.budget", {"budget": "$1"}, echoes={"budget": "$40k"})
    assert echoed.text == "Thanks, a budget of $40k helps."


def test_the_claims_guard_still_refuses_an_invented_price_next_to_an_echo(
    default_policy: Policy,
) -> None:
    persona = echo_persona(
        "Thanks, a budget of {budget} helps.", guard_target="Our Pro plan is $99 a seat."
    )
    assert any("without evidence" in p for p in check_persona(persona))
    rendered = render(persona, "ask.authority", {}, guard=True, echoes={"budget": "$40k"})
    assert rendered.template_action == "escalate"
    assert rendered.refused
    assert rendered.refused[0][0] == "ask.authority"

    # End to end: the default policy with an invented price in its budget acknowledgement.
    templates = dict(default_policy.active_persona.templates)
    templates["ack.budget"] = Template(text="Thanks! {budget} buys 200 seats at $99.")
    persona = default_policy.active_persona.model_copy(update={"templates": templates})
    broken = default_policy.model_copy(update={"personas": {"salespro": persona}})
    steps = talk(broken, says("hi", "our budget is around $25k"))
    refused = events(steps, ClaimRefused)
    assert [r.template for r in refused] == ["ack.budget"]
    last = bot_messages_to_the_prospect(steps)[-1]
    assert "$99" not in last
    assert "200 seats" not in last
    assert any(r.audience == "handoff" for _, d in steps for r in d.replies)


def test_a_template_that_can_only_echo_fails_the_check_but_an_acknowledgement_may() -> None:
    persona = echo_persona("A budget of {budget}, noted.", guard_target="About {budget}?")
    problems = check_persona(persona)
    assert len(problems) == 1
    assert "'ask.authority'" in problems[0]
    assert "echoes" in problems[0]


def test_no_repeat_needs_a_second_wording_where_the_bot_may_repeat_itself(
    default_policy: Policy,
) -> None:
    assert check_policy(default_policy) == ()
    templates = dict(default_policy.active_persona.templates)
    templates["flood_notice"] = Template(text="Slow down, please.")
    persona = default_policy.active_persona.model_copy(update={"templates": templates})
    # Without `[languages]`: a translation of one wording per language is its own finding.
    one_wording = default_policy.model_copy(
        update={"personas": {"salespro": persona}, "languages": None}
    )
    problems = check_policy(one_wording)
    assert len(problems) == 1
    assert "'flood_notice'" in problems[0]
    without = one_wording.model_copy(update={"replies": RepliesConfig()})
    assert check_policy(without) == ()


# --- compatibility and the audit ---------------------------------------------------------------


def test_a_policy_without_the_new_keys_keeps_its_canonical_json(default_policy: Policy) -> None:
    stripped_templates = {
        name: template.model_copy(update={"variants": ()})
        for name, template in default_policy.active_persona.templates.items()
    }
    persona = default_policy.active_persona.model_copy(update={"templates": stripped_templates})
    old = default_policy.model_copy(
        update={"personas": {"salespro": persona}, "replies": RepliesConfig()}
    )
    data = json.loads(old.canonical_json())
    assert "replies" not in data
    assert not any("variants" in t for t in data["personas"]["salespro"]["templates"].values())
    shipped = json.loads(default_policy.canonical_json())
    assert shipped["replies"] == {"no_repeat": True, "max_asks_per_slot": 2}
    assert shipped["personas"]["salespro"]["templates"]["ask.budget"]["variants"]


def test_without_replies_the_old_rule_asks_the_same_question_again(
    default_policy: Policy,
) -> None:
    """What a stored policy without `[replies]` (nor a knowledge base) keeps doing (so its
    replay matches)."""
    old = default_policy.model_copy(
        update={"replies": RepliesConfig(), "knowledge": None, "dialog": None}
    )
    steps = talk(old, says(*PRODUCT_QUESTIONS["plain"][:5]))
    templates = [e.template for e in events(steps, BotReplied)]
    assert templates[1:] == ["ask.budget"] * 4
    assert events(steps, ReplyRedirected) == []


def test_the_audit_says_which_wording_what_was_echoed_and_why_the_bot_moved_on(
    default_policy: Policy,
) -> None:
    lines = [*REPEATED_OBJECTIONS["price"], "we're a team of 12"]
    assert default_policy.dialog is not None
    # The [replies] limit alone (a policy without [dialog]'s move-on rule) …
    limit_only = default_policy.model_copy(
        update={
            "dialog": default_policy.dialog.model_copy(update={"move_on_after_objection": False})
        }
    )
    # … and the default, where an objection reply is not said twice in a row either.
    for policy, why in (
        (limit_only, "already said 2 times (the limit is 2)"),
        (default_policy, "was the reply just before (answered once, then move on)"),
    ):
        steps = talk(policy, says(*lines))
        report = audit_conversation("conv-props", envelopes(steps))
        text = "\n".join(
            line for entry in report.entries for line in (entry.summary, *entry.details)
        )
        assert "Moved on (no parroting): objection.price skipped, ask.budget said" in text
        assert f"skipped objection.price: {why}" in text
        assert "acknowledged first: ack.team_size" in text
        assert "echoed the prospect's words: {team_size} = “12”" in text
        assert ", variant " in text


@pytest.mark.parametrize(
    ("line", "reason", "words"),
    [
        ("Can I talk to a real person please?", "human_request", "from our team"),
        ("We'll need an NDA signed before we share anything.", "legal", "Legal and contract"),
        ("can we cancel the contract and get a refund?", "billing_refund", "handles billing"),
    ],
)
def test_a_handoff_tells_the_prospect_why_a_person_is_coming(
    default_policy: Policy, line: str, reason: str, words: str
) -> None:
    steps = talk(default_policy, says("hi", line))
    (ticket,) = events(steps, TicketOpened)
    assert reason in ticket.reason
    last = bot_messages_to_the_prospect(steps)[-1]
    assert "for that request" not in last
    assert words.lower() in last.lower()


def test_an_acknowledgement_or_handoff_line_under_a_name_never_looked_up_is_reported(
    default_policy: Policy,
) -> None:
    templates = dict(default_policy.active_persona.templates)
    templates["ack.budgett"] = Template(text="Noted: {budget}.")
    templates["escalate.legall"] = Template(text="A colleague will reply here.")
    persona = default_policy.active_persona.model_copy(update={"templates": templates})
    # Without `[languages]`: a missing translation of the typo is its own finding.
    typos = default_policy.model_copy(update={"personas": {"salespro": persona}, "languages": None})
    problems = check_policy(typos)
    assert len(problems) == 2
    assert "'ack.budgett' is never said" in problems[0]
    assert "'escalate.legall' is never said" in problems[1]
