"""The audit report: every decision explained with numbers a reader can recompute."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from bot.policy_loader import load_policy
from domain.audit import (
    DETAIL_HEADING,
    AuditEntry,
    AuditReport,
    audit_conversation,
    audit_quote,
    find_quote_conversation,
    render_audit,
)
from domain.errors import DomainError
from domain.events import QuoteIssued, QuoteRevised
from domain.inbound import (
    Actor,
)
from domain.policy import Policy
from domain.quotes import QuoteRules
from tests.support.conversation import Recording

# Most entries below are the lexicon classifier's (hits, negation, confidence): the default
# policy as it read before the trained reader. The reader's own entry is tested at the end.
READER = load_policy("default")
POLICY = READER.model_copy(update={"understanding": None})
CID = "conv-audit"
NOW = 1_795_521_600_000  # 2026-11-24T12:00:00.000Z
PROSPECT = Actor(id="P", name="Pat", role="prospect")
REP = Actor(id="R", name="Rae", role="rep")
BOSS = Actor(id="B", name="Bo", role="rep", approver=True, auditor=True)
HOT_LEAD = "We have a $5000 budget, I am the CTO, starting next month, urgent"


# Quotes as every policy handled them before `[quotes]`: an approval re-issues the quote
# under a new id, and a new quote leaves the older ones open.
SEPARATE_IDS = POLICY.model_copy(update={"quotes": QuoteRules()})


def new_log(conversation_id: str = CID, policy: Policy = POLICY) -> Recording:
    return Recording(policy, conversation_id, now=NOW, lead_actor=PROSPECT)


def entry(report: AuditReport, type_: str) -> AuditEntry:
    return next(e for e in report.entries if e.type == type_)


def approved_quote_log(policy: Policy = SEPARATE_IDS) -> Recording:
    log = new_log(policy=policy)
    log.lead(HOT_LEAD, credit=580)
    log.say("quote 3 enterprise 25%", actor=REP)
    first = log.quote_ids()[0]
    log.click("accept_quote", first, PROSPECT)
    log.click("request_approval", first, REP)
    log.click("approve_quote", first, BOSS)
    log.say("quote 1 starter", actor=REP)
    return log


def test_a_lead_score_is_shown_feature_by_feature_and_sums_to_its_band() -> None:
    log = new_log()
    log.lead(HOT_LEAD)
    details = entry(audit_conversation(CID, log.events), "lead_scored").details
    assert 'budget: 0.4 × 1 = 0.4 (matched: "budget", "$")' in details
    assert "browsing: -0.4 × 0 = 0.0" in details
    assert details[-1] == "score = Σ = 0.4 + 0.3 + 0.2 = 0.9 → hot (qualified)"


def test_negated_terms_are_named_next_to_the_feature_they_did_not_count_for() -> None:
    log = new_log()
    log.lead("Not urgent at all, just exploring")
    details = entry(audit_conversation(CID, log.events), "lead_scored").details
    timeline = next(line for line in details if line.startswith("timeline:"))
    assert timeline == 'timeline: 0.3 × 0 = 0.0 (negated: "urgent")'
    assert details[-1].endswith("→ cold (not qualified)")


def test_the_fairness_penalty_is_recomputable_and_the_credit_score_is_shown_to_auditors() -> None:
    log = new_log()
    log.lead(HOT_LEAD, credit=580)
    narrative = entry(audit_conversation(CID, log.events), "narrative_assessed")
    assert (
        "credit 580 < c0 600: U_pen = max(0, U − λ·C_U) = max(0, 0.8 − 0.8 × 0.8) "
        "= max(0, 0.8 − 0.64) = 0.16"
    ) in narrative.details
    assert "reason: penalized (credit 580 < 600) [credit_below_threshold]" in narrative.details
    assert "R = Σ w_R·f = 0.6 + 0.1 = 0.7" in narrative.details
    assert (
        narrative.summary == "Narrative: resonance 0.7, urgency 0.8 → 0.16 (credit_below_threshold)"
    )


def test_an_unknown_credit_score_is_audited_as_unchecked_not_as_fine() -> None:
    log = new_log()
    log.lead(HOT_LEAD)
    details = entry(audit_conversation(CID, log.events), "narrative_assessed").details
    assert "credit unknown: no penalty, U_pen = U = 0.8 (c0 = 600, λ = 0.8)" in details
    assert details[-1].endswith("[credit_unknown]")


def test_a_flow_step_names_its_trigger_guard_and_priority() -> None:
    log = new_log()
    log.lead(HOT_LEAD)
    flow = entry(audit_conversation(CID, log.events), "flow_advanced")
    # A lead hot from its first message is a buyer ([dialog]): the proposal, ahead of any
    # objection.
    assert flow.summary == "start → proposal on prospect_message [is_buying, priority 25]"


def test_an_objection_shows_its_hits_confidence_and_why_it_escalated() -> None:
    log = new_log()
    log.lead("Hello")
    log.say("too expensive, and what about the contract?")
    objection = entry(audit_conversation(CID, log.events), "objection_classified")
    assert objection.summary == (
        "Objection: price (confidence 0.500); sensitive terms: contract → escalate (sensitive_terms)"
    )
    assert "class: price, confidence = 1 / 2 = 0.500 (its hits / all hits)" in objection.details
    assert 'sensitive terms: "contract"' in objection.details


def test_a_bot_reply_is_audited_with_its_template_and_exact_text() -> None:
    log = new_log()
    log.lead(HOT_LEAD)
    reply = entry(audit_conversation(CID, log.events), "bot_replied")
    wordings = load_policy("default").active_persona.templates["propose"].texts
    assert reply.details[0].startswith("action: propose, template: propose, variant ")
    variant = int(reply.details[0].rsplit(" ", 1)[1])
    # An acknowledgement of the lead's budget may open the reply; the proposal follows.
    assert reply.details[-1].startswith("text: ")
    assert reply.details[-1].endswith(wordings[variant])


def test_a_quote_entry_carries_its_proof_verbatim() -> None:
    log = approved_quote_log()
    issued = [e.event.quote for e in log.events if isinstance(e.event, QuoteIssued)]
    report = audit_conversation(CID, log.events)
    quote_entries = [e for e in report.entries if e.type == "quote_issued"]
    assert [e.details for e in quote_entries] == [q.proof for q in issued]
    assert "needs approval" in quote_entries[0].summary
    assert f"replaces {issued[0].quote_id}" in quote_entries[1].summary
    assert report.quotes == tuple(q.quote_id for q in issued)


def test_a_quote_audit_follows_its_approval_and_leaves_out_the_rest() -> None:
    log = approved_quote_log()
    first, approved, unrelated = log.quote_ids()
    report = audit_quote(first, log.events)
    assert (report.kind, report.target, report.conversation_id) == ("quote", first, CID)
    assert [e.type for e in report.entries] == [
        "quote_issued",
        "action_ignored",
        "approval_requested",
        "ticket_opened",
        "quote_approved",
        "quote_issued",
        "ticket_resolved",
    ]
    assert report.quotes == (first, approved)
    assert unrelated not in report.quotes
    assert report.tickets[0].endswith(
        f"(triggered by event #{report.entries[2].seq}, quote {first})"
    )
    assert report.tickets[1].endswith("resolved by B")
    assert audit_quote(approved, log.events).entries == report.entries


def test_an_approved_discount_is_audited_as_version_two_of_the_same_quote() -> None:
    log = approved_quote_log(POLICY)
    first, later = log.quote_ids()
    revised = next(e.event for e in log.events if isinstance(e.event, QuoteRevised))
    assert revised.quote.quote_id == first
    report = audit_quote(first, log.events)
    assert [e.type for e in report.entries] == [
        "quote_issued",
        "action_ignored",
        "approval_requested",
        "ticket_opened",
        "quote_approved",
        "quote_revised",
        "ticket_resolved",
        "quote_superseded",
    ]
    assert report.quotes == (first, f"{first} v2")
    assert entry(report, "quote_revised").summary.startswith(
        f"{first} v2 after the approved discount (approved by B): total "
    )
    assert entry(report, "quote_revised").details == revised.quote.proof
    assert entry(report, "quote_superseded").summary == (
        f"{first} v2 superseded by {later} (issued by R); it can no longer be accepted"
    )
    assert f"Quotes: {first}, {first} v2" in render_audit(report, detail=True)


def test_an_accepted_quote_is_audited_with_the_version_and_total_the_deal_closed_on() -> None:
    log = new_log()
    log.lead(HOT_LEAD)
    log.say("quote 3 enterprise 25%", actor=REP)
    (quote_id,) = log.quote_ids()
    log.click("request_approval", quote_id, REP)
    log.click("approve_quote", quote_id, BOSS)
    log.click("accept_quote", quote_id, PROSPECT)
    total = log.state.quotes[quote_id].quote.figures()["total"]
    accepted = entry(audit_conversation(CID, log.events), "quote_accepted")
    assert accepted.summary == f"Quote {quote_id} v2 accepted by P: total {total}"


def test_a_refused_accept_is_audited_with_what_was_offered_instead() -> None:
    log = new_log()
    log.lead(HOT_LEAD)
    log.say("quote 10 pro", actor=REP)
    log.say("quote 12 pro", actor=REP)
    old, current = log.quote_ids()
    log.click("accept_quote", old, PROSPECT)
    report = audit_quote(old, log.events)
    assert entry(report, "quote_superseded").summary == (
        f"{old} superseded by {current} (issued by R); it can no longer be accepted"
    )
    assert entry(report, "quote_accept_refused").summary == (
        f"Accept of {old} by P refused: superseded; {current} offered instead; "
        "nothing about the deal changed"
    )


def test_an_unknown_quote_is_a_clear_error() -> None:
    log = approved_quote_log()
    with pytest.raises(DomainError, match=r"^No quote Q-0000000000 in these events\.$"):
        audit_quote("Q-0000000000", log.events)


def test_an_unknown_conversation_is_a_clear_error() -> None:
    with pytest.raises(DomainError, match=r"^No conversation nope in these events\.$"):
        audit_conversation("nope", approved_quote_log().events)


def test_the_conversation_that_issued_a_quote_is_found_among_many() -> None:
    other = new_log("conv-other")
    other.lead("Hello")
    log = approved_quote_log()
    everything = [*other.events, *log.events]
    assert find_quote_conversation(log.quote_ids()[0], everything) == CID
    assert find_quote_conversation("Q-0000000000", everything) is None
    assert audit_quote(log.quote_ids()[0], everything).conversation_id == CID


def test_the_ticket_history_follows_a_handoff_from_opening_to_hand_back() -> None:
    log = new_log()
    log.lead("Hello")
    log.say("Question about the SLA")
    key = next(iter(log.state.tickets))
    log.click("claim_ticket", key, REP)
    log.click("claim_ticket", key, BOSS)
    log.click("return_to_bot", key, REP)
    report = audit_conversation(CID, log.events)
    history = [line.split(" ", 1)[1] for line in report.tickets]
    assert history[0].startswith(f"ticket {key} opened: handoff, sensitive_terms")
    assert history[1:] == [
        f"ticket {key} claimed by Rae (R)",  # the holder's name, recorded under `[handoff]`
        f"handed back to the bot by R (ticket {key})",
    ]
    ignored = entry(report, "action_ignored")
    assert ignored.summary == f"Click claim_ticket on {key} by B ignored: already_claimed"


def test_audits_and_refusals_say_who_asked_for_what_and_why() -> None:
    log = new_log()
    log.lead("Hello")
    log.command("audit", "", BOSS)
    log.command("audit", "", REP)
    report = audit_conversation(CID, log.events)
    assert entry(report, "audit_requested").summary == f"B requested the audit of {CID}"
    assert entry(report, "command_refused").summary == "Command /audit by R refused: not_auditor"


def test_every_entry_names_its_policy_and_time_and_the_report_lists_policies_in_order(
    tmp_path: Path,
) -> None:
    path = tmp_path / "candidate.toml"
    path.write_text('extends = "default"\n[scoring.bands]\nhot = 0.95\nwarm = 0.4\n', "utf-8")
    newer = load_policy(str(path))
    log = new_log()
    log.lead("Hello")
    log.say("We have a budget", policy=newer)
    report = audit_conversation(CID, log.events)
    assert report.policy_versions == (POLICY.version, newer.version)
    assert [e.seq for e in report.entries] == [e.seq for e in log.events]
    assert [e.policy_version for e in report.entries] == [e.policy_version for e in log.events]
    assert report.entries[0].at == "2026-11-24T12:00:00.000Z"
    assert report.entries[-1].at == "2026-11-24T12:00:01.000Z"
    assert all("\n" not in e.summary for e in report.entries)


def test_a_long_multi_line_message_keeps_a_one_line_summary_and_its_full_text() -> None:
    log = new_log()
    text = "First line of a long story\n" + "word " * 60
    log.lead(text)
    message = entry(audit_conversation(CID, log.events), "prospect_message_received")
    assert "\n" not in message.summary
    assert message.summary.endswith("…")
    assert message.details[0] == "text: First line of a long story"


def test_the_detail_section_has_entries_with_short_policy_hashes_and_tickets() -> None:
    log = approved_quote_log(POLICY)
    lines = render_audit(audit_conversation(CID, log.events), detail=True)
    assert lines[0] == f"Audit of conversation {CID}"
    detail = lines[lines.index(DETAIL_HEADING) :]
    assert detail[1] == "Schema 2, salesbot/0.1.0"
    assert detail[2] == f"Policy versions: {POLICY.version}"
    first_entry = next(line for line in lines if line.startswith("#1 "))
    assert first_entry.startswith(
        f"#1 2026-11-24T12:00:00.000Z [policy {POLICY.short_version}] conversation_started:"
    )
    assert "Ticket history:" in lines
    assert any(re.fullmatch(r"    .*ticket T-[0-9a-f]{16} resolved by B", line) for line in lines)
    assert any(line == '    budget: 0.4 × 1 = 0.4 (matched: "budget", "$")' for line in lines)


def test_the_report_round_trips_through_json_for_audit_json() -> None:
    report = audit_conversation(CID, approved_quote_log().events)
    assert AuditReport.model_validate_json(report.model_dump_json()) == report


def test_a_reading_lists_each_head_that_fired_with_its_terms_sum_and_threshold() -> None:
    log = Recording(READER, CID, now=NOW, lead_actor=PROSPECT)
    log.lead("We'll need an NDA signed before we share our data model.")
    report = audit_conversation(CID, log.events)
    reading = entry(report, "message_read")
    assert "needs a human" in reading.summary
    assert "legal" in reading.summary
    assert any(line.startswith("language en") for line in reading.details)
    assert "reason:legal:" in reading.details
    start = reading.details.index("reason:legal:")
    block = []
    for line in reading.details[start + 1 :]:
        if not line.startswith("  "):
            break
        block.append(line)
    assert any(line.startswith("  lex:legal: ") for line in block)
    assert re.fullmatch(
        r"  sum = -?[0-9.]+ ≥ threshold -?[0-9.]+ \(probability 0\.[0-9]+, calibrated, for display\)",
        block[-1],
    )


def test_the_band_shows_its_calibrated_probability_of_hot_beside_the_sum_that_decided() -> None:
    log = Recording(READER, CID, now=NOW, lead_actor=PROSPECT)
    log.lead("I'm the CFO, $40k is approved and we want to sign before the end of the quarter.")
    reading = entry(audit_conversation(CID, log.events), "message_read")
    start = reading.details.index("band:")
    sum_line = next(line for line in reading.details[start:] if line.startswith("  sum = "))
    shown = re.fullmatch(
        r"  sum = (-?[0-9.]+) [≥<] threshold -?[0-9.]+ "
        r"\(probability hot (0\.[0-9]+|1), calibrated, for display\)",
        sum_line,
    )
    assert shown is not None, sum_line
    assert reading.summary.startswith("Message read: hot")
    assert Decimal(shown.group(2)) > Decimal("0.5")  # a hot reading is more likely hot than not
