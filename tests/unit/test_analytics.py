"""Metrics over the event log, checked against numbers worked out by hand."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.analytics import (
    Interval,
    Metrics,
    compute_metrics,
    jeffreys_interval,
    percentiles,
    render_metrics,
    wilson_interval,
)
from domain.decide import decide, new_conversation
from domain.events import (
    ConversationAbandoned,
    ConversationClosed,
    ConversationStarted,
    Event,
    EventEnvelope,
    FlowAdvanced,
    LeadScored,
    ProspectMessageReceived,
    QuoteIssued,
)
from domain.inbound import (
    Actor,
    ButtonClicked,
    Inbound,
    LeadArrived,
    LeadDetails,
    MessagePosted,
    TimerElapsed,
)
from domain.policy import Policy
from domain.scoring import LeadScore

Z = 1.959963984540054
T0 = 1_790_000_000_000
DAY = 24 * 3600 * 1000
STATES = ("start", "greeting", "qualify", "objection", "proposal", "handoff", "closed", "abandoned")


def _score() -> LeadScore:
    return LeadScore(
        score=Decimal("1.5"),
        probability=None,
        band="hot",
        features={},
        weights={},
        contributions={},
        evidence={},
        negated={},
    )


class Stream:
    """Builds one conversation's envelopes with gap-free seq numbers."""

    def __init__(self, conversation_id: str, at_ms: int = T0) -> None:
        self.conversation_id = conversation_id
        self.at_ms = at_ms
        self.envelopes: list[EventEnvelope] = []

    def add(self, event: Event, after_ms: int = 1000) -> Stream:
        self.at_ms += after_ms if self.envelopes else 0
        self.envelopes.append(
            EventEnvelope(
                conversation_id=self.conversation_id,
                seq=len(self.envelopes) + 1,
                at_ms=self.at_ms,
                policy_version="test",
                delivery_id=f"{self.conversation_id}-{len(self.envelopes)}",
                event=event,
            )
        )
        return self

    def start(self) -> Stream:
        return self.add(ConversationStarted(origin="direct", started_by="P"))

    def message(self, text: str = "hello", after_ms: int = 1000) -> Stream:
        return self.add(ProspectMessageReceived(actor_id="P", text=text), after_ms)

    def scored(self, qualified: bool, after_ms: int = 0, subject: str = "conversation") -> Stream:
        return self.add(
            LeadScored(subject=subject, score=_score(), qualified=qualified),  # type: ignore[arg-type]
            after_ms,
        )

    def advance(self, source: str, to: str) -> Stream:
        return self.add(
            FlowAdvanced(from_state=source, to_state=to, trigger="prospect_message", priority=90)
        )

    def close(self, outcome: str) -> Stream:
        return self.add(ConversationClosed(outcome=outcome, by="P"))  # type: ignore[arg-type]

    def abandon(self) -> Stream:
        return self.add(ConversationAbandoned(idle_ms=8 * DAY), 8 * DAY)


def engaged_streams(won: int, lost: int = 0, abandoned: int = 0, open_: int = 0) -> list[Stream]:
    streams: list[Stream] = []
    for outcome, count in (("won", won), ("lost", lost), ("abandoned", abandoned), ("", open_)):
        for _ in range(count):
            stream = Stream(f"c{len(streams)}").start().message()
            if outcome == "abandoned":
                stream.abandon()
            elif outcome:
                stream.close(outcome)
            streams.append(stream)
    return streams


def grouped(streams: list[Stream]) -> list[EventEnvelope]:
    return [env for stream in streams for env in stream.envelopes]


def interleaved(streams: list[Stream]) -> list[EventEnvelope]:
    return sorted(grouped(streams), key=lambda env: (env.at_ms, env.conversation_id))


def hand_wilson(k: int, n: int) -> tuple[float, float]:
    p = k / n
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z / (1 + Z**2 / n) * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
    return centre - half, centre + half


def test_three_won_of_ten_engaged_is_a_thirty_percent_conversion_with_both_intervals() -> None:
    metrics = compute_metrics(grouped(engaged_streams(won=3, lost=2, abandoned=1, open_=4)))
    assert (metrics.engaged, metrics.won, metrics.lost, metrics.abandoned, metrics.open) == (
        10,
        3,
        2,
        1,
        4,
    )
    assert metrics.conversion_rate == 0.3
    assert metrics.abandonment_rate == 0.1
    low, high = hand_wilson(3, 10)
    assert metrics.wilson_95 == Interval(low=round(low, 4), high=round(high, 4))
    assert metrics.wilson_95 == Interval(low=0.1078, high=0.6032)
    assert metrics.jeffreys_95 == Interval(low=0.0927, high=0.6058)  # Beta(3.5, 7.5)


def test_no_wins_gives_a_jeffreys_interval_starting_at_zero() -> None:
    wilson = wilson_interval(0, 10)
    jeffreys = jeffreys_interval(0, 10)
    assert wilson is not None
    assert jeffreys is not None
    assert wilson.low == 0.0
    assert math.copysign(1.0, wilson.low) == 1.0  # not a rounded -0.0
    assert wilson.high == round(hand_wilson(0, 10)[1], 4)
    assert jeffreys.low == 0.0
    assert 0.0 < jeffreys.high < wilson.high  # Beta(0.5, 10.5)'s 97.5% quantile ≈ 0.217
    assert jeffreys.high == pytest.approx(0.2172, abs=1e-4)


def test_all_won_gives_a_jeffreys_interval_ending_at_one() -> None:
    metrics = compute_metrics(grouped(engaged_streams(won=5)))
    assert metrics.conversion_rate == 1.0
    assert metrics.jeffreys_95 is not None
    assert metrics.wilson_95 is not None
    assert metrics.jeffreys_95.high == 1.0
    assert metrics.wilson_95.high == 1.0
    assert metrics.wilson_95.low == round(hand_wilson(5, 5)[0], 4)
    # Symmetric to k = 0: Beta(5.5, 0.5)'s 2.5% quantile is 1 − Beta(0.5, 5.5)'s 97.5%.
    mirrored = jeffreys_interval(0, 5)
    assert mirrored is not None
    assert metrics.jeffreys_95.low == pytest.approx(1 - mirrored.high, abs=1e-4)


def test_an_empty_log_gives_no_rates_and_renders_without_crashing() -> None:
    metrics = compute_metrics([])
    assert metrics.conversations == 0
    assert metrics.conversion_rate is None
    assert metrics.abandonment_rate is None
    assert metrics.wilson_95 is None
    assert metrics.jeffreys_95 is None
    assert metrics.time_to_qualify.n == 0
    assert metrics.time_to_qualify.p50_ms is None
    assert metrics.funnel == {}
    lines = render_metrics(metrics)
    assert "Conversion: no engaged conversations yet." in lines
    assert metrics.small_sample_warning in lines


def test_percentiles_interpolate_linearly_between_order_statistics() -> None:
    result = percentiles([4000, 1000, 3000, 2000])
    assert (result.n, result.p50_ms, result.p90_ms) == (4, 2500, 3700)
    single = percentiles([1234])
    assert (single.p50_ms, single.p90_ms) == (1234, 1234)
    # Three values: h = 0.9·2 = 1.8 → 10 + 0.8·(20 − 10) = 18; half a ms rounds up.
    odd = percentiles([0, 10, 20])
    assert (odd.p50_ms, odd.p90_ms) == (10, 18)
    assert percentiles([0, 1]).p50_ms == 1


def test_time_to_qualify_runs_from_the_start_to_the_first_qualifying_score() -> None:
    streams = []
    for i, wait_ms in enumerate((1000, 2000, 3000, 4000)):
        stream = Stream(f"q{i}").start().message(after_ms=wait_ms).scored(qualified=True)
        stream.message().scored(qualified=True, after_ms=0)  # a later re-score does not count
        streams.append(stream)
    streams.append(Stream("never").start().message().scored(qualified=False))
    metrics = compute_metrics(interleaved(streams))
    ttq = metrics.time_to_qualify
    assert (ttq.n, ttq.p50_ms, ttq.p90_ms) == (4, 2500, 3700)
    assert "Time to qualify (n=4): p50 2.5 s, p90 3.7 s" in render_metrics(metrics)


def test_a_pasted_text_score_is_not_a_qualification() -> None:
    stream = Stream("c").start().message().scored(qualified=True, subject="pasted_text")
    metrics = compute_metrics(stream.envelopes)
    assert metrics.time_to_qualify.n == 0


def test_a_conversation_started_but_never_messaged_is_not_in_the_denominator() -> None:
    streams = engaged_streams(won=1, open_=1)
    streams.append(Stream("silent").start().close("won"))
    metrics = compute_metrics(grouped(streams))
    assert metrics.conversations == 3
    assert metrics.engaged == 2
    assert metrics.won == 1
    assert metrics.conversion_rate == 0.5


def test_streams_without_a_start_are_not_conversations() -> None:
    stray = Stream("rep-dm").scored(qualified=True, subject="pasted_text")
    metrics = compute_metrics(stray.envelopes)
    assert metrics.conversations == 0


def test_the_funnel_counts_states_ever_reached_and_current_counts_where_they_are_now() -> None:
    won = Stream("a").start().message().advance("start", "qualify")
    won.advance("qualify", "proposal").advance("proposal", "closed").close("won")
    lost_interest = Stream("b").start().message().advance("start", "qualify").abandon()
    lost_interest.advance("qualify", "abandoned")
    waiting = Stream("c").start()
    metrics = compute_metrics(interleaved([won, lost_interest, waiting]), states=STATES)
    assert list(metrics.funnel) == list(STATES)
    assert metrics.funnel == {
        "start": 3,
        "greeting": 0,
        "qualify": 2,
        "objection": 0,
        "proposal": 1,
        "handoff": 0,
        "closed": 1,
        "abandoned": 1,
    }
    assert metrics.current == {
        "start": 1,
        "greeting": 0,
        "qualify": 0,
        "objection": 0,
        "proposal": 0,
        "handoff": 0,
        "closed": 1,
        "abandoned": 1,
    }


def test_without_the_state_list_the_funnel_lists_reached_states_by_count() -> None:
    one = Stream("a").start().message().advance("start", "qualify")
    two = Stream("b").start().message().advance("start", "qualify").advance("qualify", "closed")
    metrics = compute_metrics(grouped([one, two, Stream("c").start()]))
    assert list(metrics.funnel.items()) == [("start", 3), ("qualify", 2), ("closed", 1)]
    assert metrics.current == {"start": 1, "qualify": 1, "closed": 1}


def test_the_small_sample_warning_appears_below_thirty_and_disappears_at_thirty() -> None:
    few = compute_metrics(grouped(engaged_streams(won=2, open_=27)))
    assert few.small_sample_warning is not None
    assert "Only 29 engaged conversations" in few.small_sample_warning
    assert few.small_sample_warning in render_metrics(few)
    enough = compute_metrics(grouped(engaged_streams(won=2, open_=28)))
    assert enough.small_sample_warning is None


def test_the_rendered_lines_show_the_fraction_and_both_intervals() -> None:
    metrics = compute_metrics(grouped(engaged_streams(won=3, open_=7)))
    lines = render_metrics(metrics)
    assert "Conversion 3/10 = 30.0% (Wilson 95%: 10.8%–60.3%; Jeffreys 95%: 9.3%–60.6%)" in lines
    assert "Abandonment 0/10 = 0.0%" in lines


def test_interleaved_events_give_the_same_metrics_as_grouped_ones() -> None:
    streams = engaged_streams(won=2, lost=1, abandoned=2, open_=1)
    streams[0].advance("start", "qualify").scored(qualified=True, after_ms=500)
    streams[3].advance("start", "greeting").scored(qualified=True, after_ms=7000)
    assert compute_metrics(interleaved(streams), states=STATES) == compute_metrics(
        grouped(streams), states=STATES
    )


@settings(deadline=None, max_examples=50)
@given(order=st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_same_metrics(order: object) -> None:
    streams = engaged_streams(won=2, lost=1, abandoned=1, open_=1)
    streams[1].advance("start", "qualify").scored(qualified=True).advance("qualify", "closed")
    envelopes = grouped(streams)
    expected = compute_metrics(envelopes)
    shuffled = list(envelopes)
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    assert compute_metrics(shuffled) == expected


def test_the_metrics_serialise_to_json_and_back() -> None:
    metrics = compute_metrics(grouped(engaged_streams(won=3, open_=7)), states=STATES)
    assert Metrics.model_validate_json(metrics.model_dump_json()) == metrics


# --- realistic streams from the real decide --------------------------------------------------

PROSPECT = Actor(id="P1", name="Dana Prospect", role="prospect")
REP = Actor(id="U_REP", name="Riley Rep", role="rep")
FEED = Actor(id="lead-feed", name="lead feed", role="prospect")
SWEEPER = Actor(id="sweeper", role="system")


class Driven:
    """Drives one conversation through `decide` and keeps its stored envelopes."""

    def __init__(self, policy: Policy, conversation_id: str) -> None:
        self.policy = policy
        self.state = new_conversation(conversation_id, policy)
        self.now = T0
        self.envelopes: list[EventEnvelope] = []
        self.deliveries = 0

    def send(self, inbound: Inbound) -> tuple[EventEnvelope, ...]:
        decision = decide(self.state, inbound, self.policy, self.now)
        self.state = decision.state
        self.envelopes.extend(decision.events)
        self.now += 1000
        return decision.events

    def base(self, actor: Actor) -> dict[str, object]:
        self.deliveries += 1
        return {
            "delivery_id": f"{self.state.conversation_id}-{self.deliveries}",
            "conversation_id": self.state.conversation_id,
            "actor": actor,
        }


def test_metrics_of_a_deal_won_by_accepting_a_quote_and_a_lead_abandoned_after_eight_days(
    default_policy: Policy,
) -> None:
    won = Driven(default_policy, "conv-won")
    lead = LeadDetails(
        name="Dana Prospect", message="We have a $5000 budget, I am the CTO, starting next month"
    )
    won.send(LeadArrived(lead=lead, **won.base(FEED)))  # type: ignore[arg-type]
    issued = won.send(MessagePosted(text="quote 10 pro 10%", **won.base(REP)))  # type: ignore[arg-type]
    quote = next(env.event.quote for env in issued if isinstance(env.event, QuoteIssued))
    won.send(ButtonClicked(action="accept_quote", target=quote.quote_id, **won.base(PROSPECT)))  # type: ignore[arg-type]
    assert won.state.outcome == "won"

    quiet = Driven(default_policy, "conv-quiet")
    quiet.send(MessagePosted(text="Hello", **quiet.base(PROSPECT)))  # type: ignore[arg-type]
    quiet.now += 8 * DAY
    quiet.send(TimerElapsed(**quiet.base(SWEEPER)))  # type: ignore[arg-type]
    assert quiet.state.flow_state == "abandoned"

    log = sorted([*won.envelopes, *quiet.envelopes], key=lambda env: env.at_ms)
    flow = default_policy.flow
    metrics = compute_metrics(log, states=flow.states, start=flow.start)
    assert (metrics.conversations, metrics.engaged) == (2, 2)
    assert (metrics.won, metrics.lost, metrics.abandoned, metrics.open) == (1, 0, 1, 0)
    assert metrics.conversion_rate == 0.5
    assert metrics.abandonment_rate == 0.5
    # The hot lead qualified on its first message, in the same decision that started it.
    assert metrics.time_to_qualify.n == 1
    assert metrics.time_to_qualify.p50_ms == 0
    assert metrics.funnel[flow.start] == 2
    assert metrics.funnel["closed"] == 1
    assert metrics.funnel["abandoned"] == 1
    assert metrics.current["closed"] == 1
    assert metrics.current["abandoned"] == 1
    assert sum(metrics.current.values()) == 2
    assert metrics.small_sample_warning is not None
    assert "Only 2 engaged conversations" in metrics.small_sample_warning
