"""The fairness penalty decides who is pursued now (issue 15, item 4).

A qualified lead whose urgency after the penalty reaches `[pursuit] min_urgency` is
announced to the team as a priority; a low credit score can keep a lead from it, and the
audit says so. Because the penalty now decides something, replaying with it switched off
shows differences. A policy without `[pursuit]` decides and hashes as before.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.audit import audit_conversation, render_audit
from domain.events import PursuitDecided, TeamNotified, TicketEscalated, TicketRepinged
from domain.fairness_report import LeadSample, fairness_report, render_fairness, size_segment
from domain.narrative import FairnessConfig
from domain.policy import Policy
from domain.pursuit import PursuitConfig, pursued_now
from domain.replay import replay_conversation
from tests.support.talk import Move, Steps, envelopes, events, record, says, talk
from tests.unit.test_handoff_desk import MINUTE, PROSPECT, Desk, events_of

BUYER = "We have a 50k budget, I'm the VP and we need it urgently, next month"
"""Hot under the default reader, raw urgency 0.8 ("urgently")."""


def buyer(credit: int | None) -> list[Move]:
    return [{"kind": "lead", "text": "Hi there", "credit": credit}, *says(BUYER, "ok thanks")]


def hot_posts(steps: Steps) -> list[str]:
    return [r.text for _, d in steps for r in d.replies if r.audience == "team" and "Hot" in r.text]


@pytest.mark.parametrize("credit", [None, 600, 720])
def test_an_urgent_hot_lead_is_announced_as_a_priority(
    default_policy: Policy, credit: int | None
) -> None:
    steps = talk(default_policy, buyer(credit))
    assert hot_posts(steps) == ["Hot lead, pursue now: Pat Prospect is qualified."]
    (decided,) = events(steps, PursuitDecided)
    assert (decided.pursue_now, decided.urgency, decided.raw_urgency) == (
        True,
        Decimal("0.8"),
        Decimal("0.8"),
    )
    (post,) = [e for e in events(steps, TeamNotified) if e.kind == "hot_lead"]
    assert post.priority == "now"
    # The post pages the on-call group (each platform resolves it from `[handoff.on_call]`).
    (reply,) = [r for _, d in steps for r in d.replies if "Hot lead" in r.text]
    assert reply.mention == "on_call"


@pytest.mark.parametrize("credit", [0, 450, 599])
def test_a_low_credit_score_keeps_the_same_lead_from_priority_and_the_audit_says_why(
    default_policy: Policy, credit: int
) -> None:
    steps = talk(default_policy, buyer(credit))
    # The team still hears of the hot lead, without priority and without the reason:
    # the credit score behind it is for auditors.
    assert hot_posts(steps) == ["Hot lead: Pat Prospect is qualified."]
    assert all(r.mention is None for _, d in steps for r in d.replies)
    (decided,) = events(steps, PursuitDecided)
    # U_pen = max(0, 0.8 − 0.8 × 0.8) = 0.16 < 0.5
    assert (decided.pursue_now, decided.urgency, decided.qualified) == (
        False,
        Decimal("0.16"),
        True,
    )
    text = "\n".join(render_audit(audit_conversation("conv-props", envelopes(steps))))
    assert (
        "Qualified but not pursued now: the fairness penalty lowered urgency to 0.16, "
        "below 0.5" in text
    )
    assert "credit" not in " ".join(hot_posts(steps))


def test_a_lead_that_never_qualifies_records_no_pursuit(default_policy: Policy) -> None:
    steps = talk(
        default_policy,
        [{"kind": "lead", "text": "We need this urgently, can you tell me more?", "credit": 700}],
    )
    assert events(steps, PursuitDecided) == []


def test_replaying_with_the_penalty_off_now_changes_a_decision(default_policy: Policy) -> None:
    steps, inbounds = record(default_policy, buyer(500))
    same = replay_conversation("conv-props", inbounds, envelopes(steps), lambda _: default_policy)
    assert same.differences == ()
    without = default_policy.model_copy(
        update={"fairness": FairnessConfig(c0=600, lambda_=Decimal(0))}
    )
    changed = replay_conversation("conv-props", inbounds, envelopes(steps), lambda _: without)
    assert changed.differences, "switching the penalty off must change what the team is told"
    shown = " ".join(f"{d.recorded!r} {d.replayed!r}" for d in changed.differences)
    assert "pursue now" in shown


def test_a_policy_without_pursuit_decides_and_hashes_as_before(default_policy: Policy) -> None:
    before = default_policy.model_copy(update={"pursuit": None})
    assert '"pursuit"' not in before.canonical_json()
    assert '"pursuit"' in default_policy.canonical_json()
    steps = talk(before, buyer(720))
    assert events(steps, PursuitDecided) == []
    assert hot_posts(steps) == ["Hot lead: Pat Prospect is qualified."]
    (post,) = [e for e in events(steps, TeamNotified) if e.kind == "hot_lead"]
    assert "priority" not in post.model_dump(mode="json")  # stored bytes as before


def test_the_rule_reads_qualified_and_penalised_urgency() -> None:
    config = PursuitConfig(min_urgency=Decimal("0.5"))
    assert pursued_now(config, True, Decimal("0.5"))
    assert not pursued_now(config, True, Decimal("0.49"))
    assert not pursued_now(config, False, Decimal("1"))


# ------------------------------------------------------------------ the counterfactual


def sample(
    name: str,
    band: str,
    credit: int | None,
    urgent: bool,
    source: str = "web",
    size: int | None = None,
) -> LeadSample:
    return LeadSample.model_validate(
        {
            "conversation_id": name,
            "band": band,
            "qualified": band == "hot",
            "features": {"urgency": int(urgent), "story_future": 0, "emotional_valence": 0},
            "credit": credit,
            "source": source,
            "company_size": size,
        }
    )


WEIGHTS = {"urgency": Decimal("0.8"), "story_future": Decimal(0), "emotional_valence": Decimal(0)}
LEADS = [
    sample("a", "hot", 500, True, "web", 20),  # penalised: 0.8 → 0.16, moved out
    sample("b", "hot", 700, True, "web", 300),  # pursued either way
    sample("c", "warm", 550, True, "partner", 60),  # penalised, never pursued (warm)
    sample("d", "hot", None, True, "", None),  # unknown credit: never penalised
    sample("e", "hot", 650, False, "partner", 1500),  # hot but not urgent
]


def test_the_report_against_hand_computed_figures() -> None:
    report = fairness_report(
        LEADS,
        policy_version="p" * 64,
        urgency_weights=WEIGHTS,
        fairness=FairnessConfig(c0=600, lambda_=Decimal("0.8")),
        min_urgency=Decimal("0.5"),
    )
    overall = report.overall
    assert (overall.leads, overall.pursued_without_penalty, overall.pursued_with_penalty) == (
        5,
        3,
        2,
    )
    assert overall.moved_out == 1
    # (−0.64 + 0 − 0.64 + 0 + 0) / 5
    assert overall.mean_urgency_change == Decimal("-0.2560")
    bands = {g.group: (g.leads, g.moved_out, g.mean_urgency_change) for g in report.by_band}
    assert bands == {
        "hot": (4, 1, Decimal("-0.1600")),
        "warm": (1, 0, Decimal("-0.6400")),
    }
    sources = {g.group: (g.leads, g.pursued_with_penalty) for g in report.by_source}
    assert sources == {"web": (2, 1), "partner": (2, 0), "unknown": (1, 1)}
    sizes = [g.group for g in report.by_company_size]
    assert sizes == ["1-49", "50-199", "200-999", "1000+", "unknown"]
    credit = report.credit_groups
    # below 600: a, c → 0 of 2 pursued; at or above: b, e → 1 of 2
    assert (credit.below, credit.at_or_above, credit.unknown) == (2, 2, 1)
    assert (credit.rate_below, credit.rate_at_or_above) == (Decimal("0.0000"), Decimal("0.5000"))
    assert credit.ratio == Decimal("0.0000")
    assert credit.flagged
    # Without the penalty a would be pursued: 1 of 2 below, 1 of 2 above.
    assert credit.ratio_without_penalty == Decimal("1.0000")
    text = "\n".join(render_fairness(report))
    assert "FLAGGED: below 0.8 (the four-fifths rule)" in text
    assert "the penalty moved 1 out" in text


def test_the_sweep_shows_the_penalty_fading_with_lambda() -> None:
    report = fairness_report(
        LEADS,
        policy_version="p" * 64,
        urgency_weights=WEIGHTS,
        fairness=FairnessConfig(c0=600, lambda_=Decimal("0.8")),
        min_urgency=Decimal("0.5"),
        sweep=True,
    )
    rows = {(row.c0, row.lambda_): row for row in report.sweep}
    assert len(rows) == 5 * 6  # c0 500…700 × λ 0, 0.25, 0.5, 0.75, 0.8, 1
    assert rows[(600, Decimal(0))].moved_out == 0
    assert not rows[(600, Decimal(0))].flagged
    # λ 0.25: a keeps 0.6 ≥ 0.5, still pursued; λ 0.5: 0.4, moved out.
    assert rows[(600, Decimal("0.25"))].moved_out == 0
    assert rows[(600, Decimal("0.5"))].moved_out == 1
    # c0 500: nobody's credit is below it, nobody is moved.
    assert all(rows[(500, lam)].moved_out == 0 for lam in (Decimal("0.8"), Decimal(1)))


def test_no_leads_and_size_segments() -> None:
    report = fairness_report(
        [],
        policy_version="p" * 64,
        urgency_weights=WEIGHTS,
        fairness=FairnessConfig(),
        min_urgency=Decimal("0.5"),
    )
    assert report.leads == 0
    assert report.credit_groups.ratio is None
    assert render_fairness(report)[-1] == "No stored leads: nothing to compare."
    assert [size_segment(n) for n in (None, 1, 49, 50, 199, 200, 999, 1000)] == [
        "unknown",
        "1-49",
        "1-49",
        "50-199",
        "50-199",
        "200-999",
        "200-999",
        "1000+",
    ]


# ------------------------------------------------------------------ the priority SLA tier


def waiting_after(policy: Policy, first: str) -> Desk:
    thread = Desk(policy, "slack:T1:C1:1700000000.000300", lead_actor=PROSPECT)
    thread.say(first)
    thread.say("Can I talk to a person please?")
    ticket = thread.state.open_handoff_ticket()
    assert ticket is not None
    assert ticket.status == "open"
    return thread


def test_a_lead_pursued_now_climbs_the_ladder_on_the_priority_tier(
    default_policy: Policy,
) -> None:
    assert default_policy.pursuit is not None
    assert default_policy.pursuit.unclaimed_reping_ms == 5 * MINUTE
    urgent = waiting_after(default_policy, BUYER)
    assert urgent.state.pursue_now
    assert events_of(urgent.timer(4 * MINUTE), TicketRepinged) == []
    assert len(events_of(urgent.timer(2 * MINUTE), TicketRepinged)) == 1  # 6 min: re-pinged
    assert len(events_of(urgent.timer(15 * MINUTE), TicketEscalated)) == 1  # 21 min

    # Hot but not urgent: the ordinary ladder (15 min).
    calm = waiting_after(default_policy, "We have a 50k budget, I'm the VP, next quarter")
    assert calm.state.qualified
    assert not calm.state.pursue_now
    assert events_of(calm.timer(6 * MINUTE), TicketRepinged) == []
    assert len(events_of(calm.timer(10 * MINUTE), TicketRepinged)) == 1


def test_the_tier_s_delays_are_in_order() -> None:
    with pytest.raises(ValueError, match="must be later than"):
        PursuitConfig(
            min_urgency=Decimal("0.5"),
            unclaimed_reping_ms=20 * MINUTE,
            unclaimed_escalate_ms=10 * MINUTE,
        )
