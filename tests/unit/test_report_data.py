"""The report's numbers (`domain.report_data`) on hand-made event logs, figure by figure:
the window, tickets' time to claim, objection escalation rates, score bins, feature totals,
the flow's traffic and its DOT text."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from decimal import Decimal

from bot.policy_loader import load_policy
from domain.crm import CrmDeal
from domain.events import (
    ConversationClosed,
    ConversationStarted,
    CrmSyncRequested,
    EventEnvelope,
    FlowAdvanced,
    ObjectionClassified,
    ProspectMessageReceived,
    TicketClaimed,
    TicketOpened,
)
from domain.inbound import LeadDetails
from domain.objections import ObjectionResult
from domain.report_data import CrmDelivery, contributions, report_data, score_bins
from domain.report_flow import flow_dot, quoted
from domain.scoring import LeadScore

MINUTE = 60_000
POLICY = load_policy("default")
_seq = itertools.count(1)


def envelope(conversation: str, at_ms: int, event: object, version: str = "v1") -> EventEnvelope:
    return EventEnvelope.model_validate(
        {
            "conversation_id": conversation,
            "seq": next(_seq),
            "at_ms": at_ms,
            "policy_version": version,
            "delivery_id": f"d{at_ms}",
            "event": event,
        }
    )


def started(conversation: str, at_ms: int, source: str | None = None) -> EventEnvelope:
    lead = None if source is None else LeadDetails(name="N", message="hello", source=source)
    return envelope(
        conversation,
        at_ms,
        ConversationStarted(origin="lead" if lead else "direct", started_by="P", lead=lead),
    )


def said(conversation: str, at_ms: int) -> EventEnvelope:
    return envelope(conversation, at_ms, ProspectMessageReceived(actor_id="P", text="hi"))


def ticket(
    conversation: str, key: str, reason: str, opened: int, claimed: int | None
) -> list[EventEnvelope]:
    events = [
        envelope(
            conversation,
            opened,
            TicketOpened(ticket_key=key, kind="handoff", reason=reason, trigger_seq=1, summary="s"),
        )
    ]
    if claimed is not None:
        events.append(envelope(conversation, claimed, TicketClaimed(ticket_key=key, by="R")))
    return events


def build(
    conversations: Sequence[Sequence[EventEnvelope]],
    since_ms: int | None = None,
    until_ms: int | None = None,
):
    return report_data(
        conversations,
        policy=POLICY,
        store="test.db",
        persona_of=lambda v: f"persona-{v}",
        since_ms=since_ms,
        until_ms=until_ms,
    )


def test_tickets_by_reason_with_time_to_claim_p50_and_p90() -> None:
    # Three "legal" tickets claimed after 2, 4 and 10 minutes, one never claimed; one
    # "billing_refund" ticket claimed after 1 minute.
    conversations = []
    for i, wait in enumerate((2, 4, 10, None)):
        base = i * 100 * MINUTE
        conversations.append(
            [
                started(f"c{i}", base),
                said(f"c{i}", base),
                *ticket(
                    f"c{i}", f"T{i}", "legal", base, None if wait is None else base + wait * MINUTE
                ),
            ]
        )
    conversations.append(
        [started("c9", 0), said("c9", 0), *ticket("c9", "T9", "billing_refund", 5, 5 + MINUTE)]
    )
    rows = build(conversations).tickets
    assert [(r.reason, r.opened, r.claimed) for r in rows] == [
        ("legal", 4, 3),
        ("billing_refund", 1, 1),
    ]
    legal = rows[0]
    assert legal.claim_p50_ms == 4 * MINUTE  # the middle of 2, 4, 10
    # Type 7: position (3 − 1) × 0.9 = 1.8 → 4 + 0.8 × (10 − 4) = 8.8 minutes.
    assert legal.claim_p90_ms == 528_000
    assert legal.words == "legal or contract paperwork"
    assert (rows[1].claim_p50_ms, rows[1].claim_p90_ms) == (MINUTE, MINUTE)


def test_the_window_takes_conversations_started_in_it_and_their_events_before_its_end() -> None:
    early = [started("early", 0), said("early", 0)]
    inside = [
        started("inside", 10 * MINUTE),
        said("inside", 10 * MINUTE),
        *ticket("inside", "T1", "legal", 11 * MINUTE, 30 * MINUTE),  # claimed after the end
        envelope("inside", 31 * MINUTE, ConversationClosed(outcome="won", by="R")),
    ]
    late = [started("late", 40 * MINUTE), said("late", 40 * MINUTE)]
    rep_stream = [said("rep-lead", 12 * MINUTE)]  # no ConversationStarted: not a conversation
    data = build([early, inside, late, rep_stream], since_ms=5 * MINUTE, until_ms=20 * MINUTE)
    assert data.conversations == 1
    assert data.as_of_ms == 11 * MINUTE
    assert [(r.opened, r.claimed) for r in data.tickets] == [(1, 0)]  # claimed after the window
    assert (data.metrics.won, data.metrics.open) == (0, 1)  # won after the window: open in it
    everything = build([early, inside, late, rep_stream])
    assert (everything.conversations, everything.metrics.won) == (3, 1)


def test_objection_classes_and_their_escalation_rates() -> None:
    def objection(name: str | None, escalate: bool) -> ObjectionClassified:
        return ObjectionClassified(
            result=ObjectionResult(
                objection=name,
                confidence=Decimal(1),
                hits={},
                sensitive=() if name else ("lawyer",),
                escalate=escalate,
                escalation_reason="sensitive_terms" if escalate else None,
            )
        )

    a = [
        started("a", 0),
        envelope("a", 1, objection("price", False)),
        envelope("a", 2, objection("price", True)),
    ]
    b = [
        started("b", 0),
        envelope("b", 1, objection("price", False)),
        envelope("b", 2, objection(None, True)),
    ]
    rows = build([a, b]).objections
    assert [
        (r.objection, r.messages, r.conversations, r.escalated, r.escalation_rate) for r in rows
    ] == [
        ("price", 3, 2, 1, 0.3333),
        ("sensitive terms (no class)", 1, 1, 1, 1.0),
    ]


def test_scores_are_binned_with_round_edges_and_counted_by_band() -> None:
    # Span 6.37 → about ten bins of 0.637 → a round width of 1; from ⌊−1.29⌋ = −2 to 6.
    bins = score_bins([Decimal("-1.286663"), Decimal("5.080504")], ["cold", "hot"])
    assert [(b.low, b.high) for b in bins] == [(Decimal(i), Decimal(i + 1)) for i in range(-2, 6)]
    assert (bins[0].cold, bins[-1].hot, sum(b.hot + b.warm + b.cold for b in bins)) == (1, 1, 2)
    # Seed-policy scores (0 to 1.2): width 0.2 (1.2 / 10 = 0.12 → 0.2).
    seed = score_bins([Decimal("0"), Decimal("0.6"), Decimal("1.2")], ["cold", "warm", "hot"])
    assert [b.low for b in seed] == [
        Decimal(x) for x in ("0", "0.2", "0.4", "0.6", "0.8", "1", "1.2")
    ]
    assert [b.warm for b in seed] == [0, 0, 0, 1, 0, 0, 0]
    assert score_bins([], []) == ()


def test_feature_totals_add_w_times_x_over_leads_and_keep_the_intercept_apart() -> None:
    def score(**parts: str) -> LeadScore:
        values = {k: Decimal(v) for k, v in parts.items()}
        return LeadScore(
            score=sum(values.values(), Decimal(0)),
            probability=None,
            band="warm",
            features=dict.fromkeys(values, 1),
            weights=values,
            contributions=values,
            evidence={},
            negated={},
        )

    found = contributions(
        [
            score(budget="0.4", authority="0.25", intercept="-0.1"),
            score(budget="0.4", no_budget="-0.5", intercept="-0.1"),
        ]
    )
    assert [(r.feature, r.total, r.leads) for r in found.positive] == [
        ("budget", Decimal("0.8"), 2),
        ("authority", Decimal("0.25"), 1),
    ]
    assert [(r.feature, r.total) for r in found.negative] == [("no_budget", Decimal("-0.5"))]
    assert found.intercept_total == Decimal("-0.2")
    assert (found.leads, found.features) == (2, 3)


def test_the_flow_counts_conversations_per_transition_and_per_pair_of_states() -> None:
    def advance(
        conversation: str, at: int, source: str, to: str, trigger: str, guard: str | None = None
    ):
        return envelope(
            conversation,
            at,
            FlowAdvanced(from_state=source, to_state=to, trigger=trigger, guard=guard, priority=1),
        )

    a = [started("a", 0), advance("a", 1, "start", "greeting", "prospect_message")]
    b = [
        started("b", 0),
        advance("b", 1, "start", "greeting", "prospect_message"),
        advance("b", 2, "greeting", "proposal", "prospect_message", "is_buying"),
        advance("b", 3, "proposal", "proposal", "quote_issued"),
        advance("b", 4, "proposal", "proposal", "quote_issued"),
        advance("b", 5, "proposal", "nowhere", "magic"),  # not in this policy
    ]
    flow = build([a, b]).flow
    edges = {(e.source, e.to, e.label): (e.conversations, e.taken, e.in_policy) for e in flow.edges}
    assert flow.started == 2
    assert edges[("start", "greeting", "prospect_message")] == (2, 2, True)
    assert edges[("greeting", "proposal", "prospect_message [is_buying]")] == (1, 1, True)
    assert edges[("proposal", "proposal", "quote_issued")] == (1, 2, True)
    assert edges[("proposal", "nowhere", "magic")] == (1, 1, False)
    assert edges[("start", "handoff", "prospect_message [is_sensitive]")] == (0, 0, True)
    pairs = {(p.source, p.to): p for p in flow.pairs}
    assert pairs[("proposal", "proposal")].labels == ("quote_issued",)
    dot = flow_dot(flow)
    assert '"__start__" -> "start" [label="2 started"' in dot
    assert '"start" -> "greeting" [label="2 conversations\\nprospect_message"' in dot
    assert '"proposal" -> "proposal" [label="1 conversation, 2×\\nquote_issued"' in dot
    assert '"proposal" -> "nowhere" [label="1 conversation\\nmagic", color="#c62828"' in dot
    assert '"start" -> "handoff" [color="#9e9e9e", style=dashed' in dot  # nobody went there


def test_dot_strings_escape_quotes_backslashes_and_newlines() -> None:
    assert quoted('a "b" \\ c\nd') == '"a \\"b\\" \\\\ c\\nd"'


def test_conversion_by_persona_and_lead_source_in_the_report() -> None:
    won = [
        started("w", 0, source="Web"),
        said("w", 1),
        envelope("w", 2, ConversationClosed(outcome="won", by="R")),
    ]
    other = [started("o", 0, source=""), said("o", 1)]
    chat = envelope("d", 0, ConversationStarted(origin="direct", started_by="P"), version="v2")
    segments = build([won, other, [chat, said("d", 1)]]).chart.segments
    assert [(s.dimension, s.label, s.won, s.engaged) for s in segments] == [
        ("persona", "persona-v1", 1, 2),
        ("persona", "persona-v2", 0, 1),
        ("lead source", "not a lead", 0, 1),
        ("lead source", "unknown", 0, 1),
        ("lead source", "web", 1, 1),
    ]


def crm_write(conversation: str, at_ms: int, artifact: str) -> EventEnvelope:
    deal = CrmDeal(
        external_id=f"salesbot:deal:{conversation}",
        stage="qualified",
        crm_stage="qualifiedtobuy",
        pipeline="default",
    )
    return envelope(
        conversation,
        at_ms,
        CrmSyncRequested(
            artifact=artifact,  # type: ignore[arg-type]
            external_id=f"salesbot:{artifact}:{conversation}:{at_ms}",
            reason="r",
            deal=deal,
        ),
    )


def test_the_crm_sync_by_artifact_with_its_lag_what_waits_and_what_failed() -> None:
    a = [started("a", 0), crm_write("a", 1 * MINUTE, "deal"), crm_write("a", 2 * MINUTE, "note")]
    b = [started("b", 0), crm_write("b", 3 * MINUTE, "deal"), crm_write("b", 4 * MINUTE, "deal")]
    c = [started("c", 0), crm_write("c", 5 * MINUTE, "quote")]
    seqs = {(env.conversation_id, env.at_ms): env.seq for env in [*a, *b, *c]}
    deliveries = {
        ("a", seqs["a", 1 * MINUTE]): CrmDelivery(
            status="sent", created_at_ms=MINUTE, sent_at_ms=MINUTE + 2000
        ),
        ("a", seqs["a", 2 * MINUTE]): CrmDelivery(status="dead", created_at_ms=2 * MINUTE),
        ("b", seqs["b", 3 * MINUTE]): CrmDelivery(
            status="sent", created_at_ms=3 * MINUTE, sent_at_ms=3 * MINUTE + 10_000
        ),
        ("b", seqs["b", 4 * MINUTE]): CrmDelivery(status="pending", created_at_ms=4 * MINUTE),
        # c's quote was never enqueued (a runtime without the CRM hook): it waits too.
    }
    sync = report_data(
        [a, b, c],
        policy=POLICY,
        store="test.db",
        persona_of=str,
        crm_deliveries=deliveries,
        now_ms=10 * MINUTE,
    ).crm
    assert sync is not None
    rows = {row.artifact: row for row in sync.artifacts}
    assert [row.artifact for row in sync.artifacts] == ["deal", "quote", "note"]
    deal = rows["deal"]
    assert (deal.requested, deal.sent, deal.waiting, deal.failed) == (3, 2, 1, 0)
    # Type 7 (linear), as the metrics: of 2 s and 10 s, p50 = 6 s and p90 = 2 + 0.9 × 8 = 9.2 s.
    assert (deal.lag_p50_ms, deal.lag_p90_ms) == (6000, 9200)
    assert (rows["note"].failed, rows["quote"].waiting) == (1, 1)
    assert sync.oldest_waiting_ms == 10 * MINUTE - 4 * MINUTE
    assert build([a[:1]]).crm is None
