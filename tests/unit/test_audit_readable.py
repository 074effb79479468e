"""The audit as a sales-ops reader meets it: a summary whose figures can be checked by hand,
then the decisions in plain words, the engineering detail only in its own section."""

from __future__ import annotations

import re
from decimal import Decimal

from bot.policy_loader import load_policy
from domain.audit import DETAIL_HEADING, audit_card, audit_conversation, render_audit
from domain.audit_summary import hot_calibration
from domain.events import MessageRead
from domain.inbound import Actor, LeadArrived, LeadDetails
from domain.policy import Policy
from tests.support.conversation import Recording

READER = load_policy("default")
LEXICONS = READER.model_copy(update={"understanding": None})
CID = "lead-readable"
NOW = 1_795_521_600_000  # 2026-11-24T12:00:00.000Z
PROSPECT = Actor(id="P", name="Pat", role="prospect")
REP = Actor(id="R", name="Rae", role="rep")
LEAD = LeadDetails(
    name="Pat Lee",
    company="Acme",
    email="pat@acme.example",
    message="We have a $40k budget approved, I'm the CFO, we need it next month",
    source="referral",
    company_size=500,
    credit_score=700,
)

ENGINEERING = {
    "an event type or reason code": r"\b[a-z]+_[a-z_]+\b",
    "a policy hash": r"(?<![-\w])[0-9a-f]{12,}\b",
    "a formula": r"U_pen|ROUND_HALF_UP|Σ|σ|w_R|w_U|λ",
    "a feature identifier": r"\b(lex|ent|meta|lang|w|p|n):[a-z]",
    "a flow guard or priority": r"\bpriority \d|\bguard\b",
    "an event number": r"#\d",
}


def seeded(policy: Policy = LEXICONS) -> Recording:
    """A referred lead from a 500-person company names budget, role, need and date; the rep
    quotes 10 Pro seats at 10% off; the prospect asks about the contract (a person takes
    over)."""
    log = Recording(policy, CID, now=NOW, lead_actor=PROSPECT)
    log.send(LeadArrived(lead=LEAD, actor=PROSPECT, **log.ids()))
    log.say("quote 10 pro 10%", actor=REP)
    log.say("What about the contract terms?")
    return log


def engineering_tokens(lines: tuple[str, ...] | list[str]) -> dict[str, list[str]]:
    text = "\n".join(lines)
    found = {what: re.findall(pattern, text) for what, pattern in ENGINEERING.items()}
    return {what: hits for what, hits in found.items() if hits}


def test_the_summary_figures_match_the_hand_computed_score_and_quote() -> None:
    summary = audit_conversation(CID, seeded().events).summary
    # budget 0.4 + timeline 0.3 + authority 0.2 + need 0.1 + large_company 0.1 + warm_source 0.1
    score = summary.score
    assert score is not None
    assert (score.score, score.band, score.qualified) == (Decimal("1.2"), "hot", True)
    assert [(r.feature, r.weight, r.value, r.contribution) for r in score.reasons] == [
        ("budget", Decimal("0.4"), 1, Decimal("0.4")),
        ("timeline", Decimal("0.3"), 1, Decimal("0.3")),
        ("authority", Decimal("0.2"), 1, Decimal("0.2")),
    ]
    assert (score.rest, score.rest_count) == (Decimal("0.3"), 3)
    assert sum(r.contribution for r in score.reasons) + score.rest == score.score
    assert "$" in score.reasons[0].evidence
    assert "cfo" in score.reasons[2].evidence
    assert score.hot_probability is None  # the lexicon scorer's identity link has none
    (quote,) = summary.quotes
    # 10 × 199.00 = 1,990.00; 10% off = 199.00; total 1,791.00 — in cents.
    assert (quote.qty, quote.unit_cents, quote.subtotal_cents) == (10, 19900, 199000)
    assert (quote.discount_cents, quote.tax_cents, quote.total_cents) == (19900, 0, 179100)
    assert quote.status == "issued"


def test_the_summary_says_who_when_how_it_stands_and_who_must_act() -> None:
    log = seeded()
    report = audit_conversation(CID, log.events)
    summary = report.summary
    assert (summary.who.name, summary.who.company, summary.who.email) == (
        "Pat Lee",
        "Acme",
        "pat@acme.example",
    )
    assert summary.who.platform == "lead feed"
    assert (summary.first_message_ms, summary.last_message_ms) == (NOW, NOW + 2000)
    assert summary.outcome.status == "open"
    assert summary.state == "handoff"
    (ticket,) = summary.open_tickets
    assert (ticket.kind, ticket.phase, ticket.holder) == ("handoff", "open", None)
    lines = render_audit(report)
    assert lines[:7] == (
        f"Audit of conversation {CID}",
        "Who: Pat Lee (Acme), pat@acme.example, on Lead feed, lead source referral",
        "Owner: Alex (example owner)",
        "When: first message 2026-11-24T12:00:00Z, last 2026-11-24T12:00:02Z "
        "(2 messages from the prospect)",
        "Outcome: open",
        "State: handoff",
        "Score: 1.20 — hot, qualified: budget +0.40 (“budget”, “$”), timeline +0.30 "
        "(“next month”), authority +0.20 (“i'm the”, “cfo”); everything else +0.30",
    )
    assert f"  {ticket.key} (handoff): sensitive terms (contract, legal, billing…) need a " in (
        "\n".join(lines)
    )
    assert any("total 1,791.00 USD — on offer (issued by R)" in line for line in lines)


def test_the_decisions_read_in_plain_words_under_one_heading() -> None:
    report = audit_conversation(CID, seeded().events)
    lines = render_audit(report)
    # 19 events; the flow staying in proposal after the quote has nothing to tell.
    assert len(report.entries) == 19
    assert [line for line in lines if line.startswith("Decisions")] == ["Decisions (18):"]
    assert sum(line.startswith("Audit of") for line in lines) == 1
    plain = "\n".join(lines)
    assert "Scored 1.20 — hot, qualified: budget +0.40" in plain
    assert "Quote Q-" in plain
    assert "issued by R: 10 × Pro seat" in plain
    assert "A person was asked to take over: sensitive terms" in plain
    assert "Alex (example owner) owns this conversation (spread evenly among the owners)" in plain
    assert "Resonance" in plain
    assert "(credit score 700: no fairness penalty)" in plain
    assert "Qualified but not pursued now: urgency 0.0 is below 0.5" in plain
    assert engineering_tokens(lines) == {}


def test_the_engineering_detail_is_only_in_its_own_titled_section() -> None:
    lines = render_audit(audit_conversation(CID, seeded().events), detail=True)
    start = lines.index(DETAIL_HEADING)
    assert engineering_tokens(lines[:start]) == {}
    found = engineering_tokens(lines[start:])
    # The detector sees them where they belong: types, hashes, formulas, guards.
    assert {"an event type or reason code", "a policy hash", "a formula"} <= set(found)
    assert "lead_scored" in found["an event type or reason code"]


def test_chat_shows_the_summary_and_plain_decisions_with_its_title_once() -> None:
    report = audit_conversation(CID, seeded().events)
    card = audit_card(report)
    assert card.title == f"Audit of conversation {CID}"
    assert not any(line.startswith("Audit of") for line in card.lines)
    assert card.lines[0].startswith("Who: Pat Lee")
    assert engineering_tokens(card.lines) == {}


def test_a_long_conversation_shows_its_latest_decisions_in_chat_and_says_how_many_are_left() -> (
    None
):
    log = seeded()
    for n in range(30):
        log.say(f"Another question number {n}")
    report = audit_conversation(CID, log.events)
    card = audit_card(report)
    decided = [e for e in report.entries if e.plain]
    heading = next(line for line in card.lines if line.startswith("Decisions"))
    assert heading == f"Decisions ({len(decided)}):"
    assert f"  … {len(decided) - 40} earlier, on the command line: salesbot audit ID" in card.lines
    assert card.lines[-1].endswith(decided[-1].plain)


def test_the_trained_reader_s_score_shows_its_calibrated_hot_probability() -> None:
    log = Recording(READER, CID, now=NOW, lead_actor=PROSPECT)
    log.lead("I'm the CFO, $40k is approved and we want to sign before the end of the quarter.")
    reading = next(e.event for e in log.events if isinstance(e.event, MessageRead))
    band = next(x for x in reading.explanations if x.head == "band")
    summary = audit_conversation(CID, log.events).summary
    score = summary.score
    assert score is not None
    # One message: the conversation's sum is the message's, calibrated as it was recorded.
    assert (score.score, score.hot_probability) == (band.total, band.probability)
    assert sum(r.contribution for r in score.reasons) + score.rest == score.score
    assert [r.words for r in score.reasons] == ["authority", "approved", "buying"]
    assert score.reasons[0].evidence == ("cfo",)


def test_a_later_score_is_calibrated_under_the_policy_that_decided_it() -> None:
    log = Recording(READER, CID, now=NOW, lead_actor=PROSPECT)
    log.lead("I'm the CFO, $40k is approved and we want to sign before the end of the quarter.")
    log.say("I am the CTO")
    asked: list[str] = []

    def calibrate(version: str, score: Decimal) -> Decimal | None:
        asked.append(version)
        return hot_calibration(READER, score)

    summary = audit_conversation(CID, log.events, calibrate).summary
    assert summary.score is not None
    assert summary.score.hot_probability == hot_calibration(READER, summary.score.score)
    assert set(asked) == {READER.version}
    line = next(
        e.plain
        for e in audit_conversation(CID, log.events, calibrate).entries[::-1]
        if e.plain.startswith("Scored")
    )
    assert "(probability hot 0." in line


def test_a_lost_deal_says_why_and_to_whom() -> None:
    log = Recording(LEXICONS, CID, now=NOW, lead_actor=PROSPECT)
    log.lead("Hello, we are evaluating tools")
    log.say("Can I talk to a person about the contract?")
    key = next(iter(log.state.tickets))
    log.click("claim_ticket", key, REP)
    log.click("resolve_ticket", f"{key}:lost:price", REP)
    summary = audit_conversation(CID, log.events).summary
    assert (summary.outcome.status, summary.outcome.reason) == ("lost", "price")
    assert summary.open_tickets == ()
    assert "Outcome: lost (" in "\n".join(render_audit(audit_conversation(CID, log.events)))
