"""What the /metrics chart shows, checked on its data (`domain.metrics_chart`), before any
pixel: the funnel with meetings and outcomes, both intervals, reproducible bootstrap
intervals for p50/p90, lost reasons when the metrics have them, and the warning."""

from __future__ import annotations

from fractions import Fraction

from domain.analytics import metrics_from_counts
from domain.metrics_chart import bootstrap_percentiles, metrics_chart

MINUTE = 60_000
TIMES = [MINUTE * m for m in (3, 5, 8, 13, 21, 34, 55)]


def metrics(**overrides: object):
    counts: dict[str, object] = {
        "conversations": 12,
        "engaged": 10,
        "won": 3,
        "lost": 2,
        "abandoned": 1,
        "still_open": 4,
        "qualification_ms": TIMES,
        "funnel": {"greeting": 12, "qualify": 9, "proposal": 5},
        "current": {"greeting": 1, "qualify": 4, "proposal": 2},
        "meetings_requested": 4,
    }
    counts.update(overrides)
    return metrics_from_counts(**counts)  # type: ignore[arg-type]


def test_the_funnel_runs_from_started_through_the_flow_and_meetings_to_won() -> None:
    chart = metrics_chart(metrics(), TIMES)
    assert [(bar.label, bar.value) for bar in chart.funnel] == [
        ("started", 12),
        ("engaged", 10),
        ("reached greeting", 12),
        ("reached qualify", 9),
        ("reached proposal", 5),
        ("meeting requested", 4),
        ("won", 3),
    ]
    assert [(bar.label, bar.value) for bar in chart.outcomes] == [
        ("won", 3),
        ("lost", 2),
        ("abandoned", 1),
        ("open", 4),
    ]


def test_conversion_carries_both_intervals_the_metrics_report() -> None:
    m = metrics()
    chart = metrics_chart(m, TIMES)
    assert [(e.method, e.rate, e.interval) for e in chart.conversion] == [
        ("Wilson", 0.3, m.wilson_95),
        ("Jeffreys", 0.3, m.jeffreys_95),
    ]
    assert chart.warning == m.small_sample_warning
    assert chart.warning is not None


def test_time_to_qualify_has_p50_p90_inside_reproducible_bootstrap_intervals() -> None:
    chart = metrics_chart(metrics(), TIMES)
    p50, p90 = chart.time_to_qualify
    assert (p50.label, p50.ms) == ("p50", 13 * MINUTE)
    assert (p90.label, p90.ms) == ("p90", 2_544_000)  # 34 + 0.4 × (55 − 34) = 42.4 min
    for estimate in (p50, p90):
        assert estimate.interval_ms is not None
        low, high = estimate.interval_ms
        assert min(TIMES) <= low <= high <= max(TIMES)
    # A fixed seed: the same times, in any order, give the same intervals.
    assert metrics_chart(metrics(), list(reversed(TIMES))) == chart


def test_a_bootstrap_of_equal_values_has_no_width_and_of_too_few_values_is_not_drawn() -> None:
    assert bootstrap_percentiles([7] * 10, [Fraction(1, 2)]) == ((7, 7),)
    assert bootstrap_percentiles([1, 2, 3], [Fraction(1, 2)]) == (None,)
    chart = metrics_chart(metrics(qualification_ms=TIMES[:3]), TIMES[:3])
    assert all(d.interval_ms is None for d in chart.time_to_qualify)


def test_another_seed_moves_the_interval_so_the_seed_is_what_fixes_it() -> None:
    wide = [MINUTE * m for m in range(1, 200, 7)]
    assert bootstrap_percentiles(wide, [Fraction(1, 2)], seed=1) != bootstrap_percentiles(
        wide, [Fraction(1, 2)], seed=2
    )


def test_no_engaged_conversations_draw_no_rates_and_say_so() -> None:
    empty = metrics_from_counts(
        conversations=0,
        engaged=0,
        won=0,
        lost=0,
        abandoned=0,
        still_open=0,
        qualification_ms=[],
        funnel={},
        current={},
    )
    chart = metrics_chart(empty)
    assert chart.conversion == ()
    assert chart.time_to_qualify == ()
    assert chart.warning == "No engaged conversations yet, so there are no rates to report."


def test_lost_reasons_are_drawn_most_first_when_the_metrics_count_them() -> None:
    """`Metrics` gains `lost_reasons` in the won/lost change; any reason → count mapping
    there is drawn, and metrics without one draw no reasons."""
    assert metrics_chart(metrics()).lost_reasons == ()
    with_reasons = metrics().model_copy(
        update={"lost_reasons": {"price": 1, "timing": 3, "budget": 1, "none": 0}}
    )
    bars = metrics_chart(with_reasons).lost_reasons
    assert [(b.label, b.value) for b in bars] == [("timing", 3), ("budget", 1), ("price", 1)]


def test_the_alt_text_says_the_numbers_in_words() -> None:
    alt = metrics_chart(metrics(), TIMES).alt_text
    assert alt.startswith("Sales metrics chart: 3 won of 10 engaged conversations; Wilson 95% ")
    assert "time to qualify p50 13.0 min" in alt


def _envelope(conversation: str, seq: int, event: object, version: str = "v1"):
    from domain.events import EventEnvelope

    return EventEnvelope.model_validate(
        {
            "conversation_id": conversation,
            "seq": seq,
            "at_ms": seq,
            "policy_version": version,
            "delivery_id": f"d{seq}",
            "event": event,
        }
    )


def test_segments_count_engaged_conversations_by_persona_and_lead_source_in_any_order() -> None:
    from domain.events import (
        ConversationClosed,
        ConversationReopened,
        ConversationStarted,
        ProspectMessageReceived,
    )
    from domain.inbound import LeadDetails
    from domain.metrics_chart import conversion_segments, segment_facts

    def lead(source: str) -> ConversationStarted:
        return ConversationStarted(
            origin="lead", started_by="P", lead=LeadDetails(name="N", message="m", source=source)
        )

    said = ProspectMessageReceived(actor_id="P", text="hi")
    events = [
        # Won from the web form under policy v1.
        _envelope("a", 1, lead(" Web ")),
        _envelope("a", 2, said),
        _envelope("a", 3, ConversationClosed(outcome="won", by="R")),
        # Won, then reopened: open again, not won (the latest ending by seq decides).
        _envelope("b", 1, lead("web"), version="v2"),
        _envelope("b", 2, said),
        _envelope("b", 3, ConversationClosed(outcome="won", by="R")),
        _envelope(
            "b",
            4,
            ConversationReopened(
                reason="prospect_wrote", was_lost=False, from_state="closed", to_state="greeting"
            ),
        ),
        # A chat that never said anything: started, not engaged, in no group.
        _envelope("c", 1, ConversationStarted(origin="direct", started_by="P")),
        # A rep's stream without a start: not a conversation.
        _envelope("rep", 1, said),
    ]
    personas = {"v1": "salespro", "v2": "concise"}
    forward = conversion_segments(segment_facts(events), personas.__getitem__)
    backward = conversion_segments(segment_facts(reversed(events)), personas.__getitem__)
    assert forward == backward
    assert [(s.dimension, s.label, s.won, s.engaged) for s in forward] == [
        ("persona", "concise", 0, 1),
        ("persona", "salespro", 1, 1),
        ("lead source", "web", 1, 2),
    ]
    web = forward[-1]
    m = metrics(won=1, engaged=2)
    assert web.rate == 0.5
    # The same interval functions as the metrics' own conversion.
    assert (web.wilson_95, web.jeffreys_95) == (m.wilson_95, m.jeffreys_95)


def test_groups_past_the_eighth_are_added_up_as_other() -> None:
    from domain.metrics_chart import SegmentFacts, conversion_segments

    facts = [
        SegmentFacts(policy_version="v", source=f"s{i:02}", engaged=True, won=i % 2 == 0)
        for i in range(11)
    ]
    segments = conversion_segments(facts, lambda v: "p")
    sources = [s for s in segments if s.dimension == "lead source"]
    assert [s.label for s in sources] == [f"s{i:02}" for i in range(8)] + ["other (3)"]
    assert (sources[-1].won, sources[-1].engaged) == (2, 3)  # s08 and s10 won, s09 did not


def test_the_alt_text_names_the_segments() -> None:
    from domain.metrics_chart import Segment

    chart = metrics_chart(
        metrics(),
        TIMES,
        (Segment.of("persona", "salespro", 3, 10), Segment.of("lead source", "web", 2, 4)),
    )
    assert chart.alt_text.endswith("by persona: salespro 3 of 10; by lead source: web 2 of 4.")
