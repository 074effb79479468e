"""Metrics over the event log: conversion with honest intervals, time to qualify, the funnel.

Everything is read from stored envelopes only, so `salesbot metrics` and `/metrics` say the
same thing as replay and audit. One pass, constant work per event and order-independent:
each conversation keeps a small accumulator and "first"/"latest" are decided by `seq`, not by
arrival, so the log may arrive interleaved across conversations (or in any order at all).

Definitions (what a reader needs to recompute every number):

- a *conversation* is a stream with a `ConversationStarted`; other streams (a rep's private
  `/lead`, `/audit` or `/metrics`) are not conversations and are ignored;
- *engaged* conversations have at least one `ProspectMessageReceived`. They are the
  denominator of every rate, and `won + lost + abandoned + open == engaged`: the outcome
  counts partition the engaged conversations, so "3 won of 10 engaged" is literally k/n.
  The outcome is the one the *latest* `ConversationClosed` or `ConversationAbandoned` says,
  unless a later `ConversationReopened` made it open again (a prospect who left wrote again);
- *time to qualify* runs from `ConversationStarted.at_ms` to the first
  `LeadScored(subject="conversation", qualified=True)`; pasted-text scores (`/lead`) describe
  someone else's words and are ignored;
- the *funnel* counts conversations that ever reached a state (the start state counts every
  conversation); *current* counts where they are now;
- *quotes* count, over started conversations, the quotes issued (`QuoteIssued`: each is a
  quote id), the new versions made under the same id after an approved discount
  (`QuoteRevised`: `Q-… v2`), and the quotes a newer one superseded (`QuoteSuperseded`).
  Under a policy without `[quotes]` an approved discount is a second quote id instead;
- *meetings requested* counts started conversations with a `MeetingRequested` (the prospect
  asked for a meeting or demo and got a booking link).

Rates are floats rounded to four places: they come out of scipy's quantile functions and are
statistics for display, not amounts anyone is charged (money stays in integer cents).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Literal

from pydantic import Field

from domain import GENERATOR
from domain.events import (
    ConversationAbandoned,
    ConversationClosed,
    ConversationReopened,
    ConversationStarted,
    DealMarked,
    EventEnvelope,
    FlowAdvanced,
    LeadScored,
    MeetingRequested,
    ProspectMessageReceived,
    QuoteAccepted,
    QuoteIssued,
    QuoteRevised,
    QuoteSuperseded,
    TicketResolved,
)
from domain.handoff_config import lost_words
from domain.model import Frozen

METRICS_SCHEMA_VERSION = 1
SMALL_SAMPLE = 30
"""Below this many engaged conversations the rates come with a warning: at n = 30 a 30%
conversion still has a Wilson interval about ±16 points wide."""

_PLACES = 4


class Interval(Frozen):
    low: float
    high: float


class Percentiles(Frozen):
    """Linear-interpolated percentiles (Hyndman–Fan type 7, numpy's default), whole ms."""

    n: int
    p50_ms: int | None
    p90_ms: int | None


class QuoteCounts(Frozen):
    """Quotes in started conversations (the module docstring's definition)."""

    issued: int = 0
    revised: int = 0
    superseded: int = 0


class Metrics(Frozen):
    """What `salesbot metrics --json` prints (and `/metrics` shows in words): the report
    data, with its schema and generator versions."""

    schema_version: int = METRICS_SCHEMA_VERSION
    conversations: int
    engaged: int
    won: int
    lost: int
    abandoned: int
    open: int
    conversion_rate: float | None
    wilson_95: Interval | None
    jeffreys_95: Interval | None
    time_to_qualify: Percentiles
    abandonment_rate: float | None
    funnel: dict[str, int]
    current: dict[str, int]
    small_sample_warning: str | None
    quotes: QuoteCounts = QuoteCounts()
    meetings_requested: int = 0
    """Started conversations in which the prospect asked for a meeting (`MeetingRequested`):
    the funnel stage between qualified and won."""
    lost_reasons: dict[str, int] = Field(default_factory=dict)
    """Engaged conversations lost, by the reason a rep recorded (`lost … REASON`, *Lost*,
    *Resolve → Lost*: the policy's `[handoff] lost_reasons`), sorted by name; a deal lost
    without a recorded reason is in `lost` only."""
    accepted_on_behalf: int = 0
    """Started conversations in which a rep accepted a quote on the prospect's behalf
    (`[quotes] accept_on_behalf`): counted in `won`, shown apart."""
    generator_version: str = GENERATOR


_Ending = Literal["won", "lost", "abandoned"]


@dataclass(slots=True)
class _Stream:
    """What one conversation contributes; "first"/"latest" are tracked by seq."""

    started_at_ms: int | None = None
    prospect_messages: int = 0
    qualified_seq: int | None = None
    qualified_at_ms: int | None = None
    ending_seq: int = 0
    ending: _Ending | None = None
    first_flow_seq: int | None = None
    first_from_state: str | None = None
    last_flow_seq: int = 0
    current_state: str | None = None
    reached: set[str] = field(default_factory=set)
    quotes_issued: int = 0
    quotes_revised: int = 0
    quotes_superseded: int = 0
    meeting_requested: bool = False
    lost_reason_seq: int = 0
    lost_reason: str | None = None
    on_behalf: bool = False


def _accumulate(stream: _Stream, envelope: EventEnvelope) -> None:
    event = envelope.event
    seq = envelope.seq
    match event:
        case ConversationStarted():
            stream.started_at_ms = envelope.at_ms
        case ProspectMessageReceived():
            stream.prospect_messages += 1
        case LeadScored(subject="conversation", qualified=True):
            if stream.qualified_seq is None or seq < stream.qualified_seq:
                stream.qualified_seq = seq
                stream.qualified_at_ms = envelope.at_ms
        case FlowAdvanced():
            stream.reached.add(event.to_state)
            if stream.first_flow_seq is None or seq < stream.first_flow_seq:
                stream.first_flow_seq = seq
                stream.first_from_state = event.from_state
            if seq > stream.last_flow_seq:
                stream.last_flow_seq = seq
                stream.current_state = event.to_state
        case QuoteIssued():
            stream.quotes_issued += 1
        case QuoteRevised():
            stream.quotes_revised += 1
        case QuoteSuperseded():
            stream.quotes_superseded += 1
        case MeetingRequested():
            stream.meeting_requested = True
        case DealMarked(outcome="lost") | TicketResolved(outcome="lost") if event.reason:
            if seq > stream.lost_reason_seq:
                stream.lost_reason_seq = seq
                stream.lost_reason = event.reason
        case QuoteAccepted(on_behalf=True):
            stream.on_behalf = True
        case ConversationClosed() | ConversationAbandoned() | ConversationReopened():
            if seq > stream.ending_seq:
                stream.ending_seq = seq
                stream.ending = (
                    event.outcome
                    if isinstance(event, ConversationClosed)
                    else "abandoned"
                    if isinstance(event, ConversationAbandoned)
                    else None
                )
        case _:
            pass


def compute_metrics(
    events: Iterable[EventEnvelope], *, states: Sequence[str] = (), start: str | None = None
) -> Metrics:
    """The metrics of every conversation in `events`, in one pass over the log.

    `states` (the policy's `flow.states`) fixes the key order of `funnel` and `current` and
    lists unreached states with 0. `start` (the policy's `flow.start`) names the state of a
    conversation that never advanced; without it that state is the `from_state` other
    conversations started from, then `states[0]`, then "start".
    """
    streams: dict[str, _Stream] = {}
    for envelope in events:
        stream = streams.get(envelope.conversation_id)
        if stream is None:
            stream = streams[envelope.conversation_id] = _Stream()
        _accumulate(stream, envelope)

    conversations = [s for s in streams.values() if s.started_at_ms is not None]
    engaged = [s for s in conversations if s.prospect_messages > 0]
    endings = Counter(s.ending for s in engaged)
    n = len(engaged)
    won = endings["won"]
    abandoned = endings["abandoned"]

    durations = [
        s.qualified_at_ms - s.started_at_ms
        for s in conversations
        if s.qualified_at_ms is not None and s.started_at_ms is not None
    ]
    funnel, current = _funnel(conversations, states, start)
    return metrics_from_counts(
        conversations=len(conversations),
        engaged=n,
        won=won,
        lost=endings["lost"],
        abandoned=abandoned,
        still_open=endings[None],
        qualification_ms=durations,
        funnel=funnel,
        current=current,
        quotes=QuoteCounts(
            issued=sum(s.quotes_issued for s in conversations),
            revised=sum(s.quotes_revised for s in conversations),
            superseded=sum(s.quotes_superseded for s in conversations),
        ),
        meetings_requested=sum(1 for s in conversations if s.meeting_requested),
        lost_reasons=Counter(
            s.lost_reason for s in engaged if s.ending == "lost" and s.lost_reason is not None
        ),
        accepted_on_behalf=sum(1 for s in conversations if s.on_behalf),
    )


def metrics_from_counts(
    *,
    conversations: int,
    engaged: int,
    won: int,
    lost: int,
    abandoned: int,
    still_open: int,
    qualification_ms: Sequence[int],
    funnel: dict[str, int],
    current: dict[str, int],
    quotes: QuoteCounts | None = None,
    meetings_requested: int = 0,
    lost_reasons: Mapping[str, int] | None = None,
    accepted_on_behalf: int = 0,
    time_to_qualify: Percentiles | None = None,
) -> Metrics:
    """The metrics of counts already taken: the rates, intervals, percentiles and warning
    are worked out here only, whether the counts come from folding the log or from the
    store's projections of it. `time_to_qualify`, when given, is `percentiles_at` of the
    times as a store keeps them counted, and `qualification_ms` is then not read."""
    return Metrics(
        conversations=conversations,
        engaged=engaged,
        won=won,
        lost=lost,
        abandoned=abandoned,
        open=still_open,
        conversion_rate=_rate(won, engaged),
        wilson_95=wilson_interval(won, engaged),
        jeffreys_95=jeffreys_interval(won, engaged),
        time_to_qualify=(
            percentiles(qualification_ms) if time_to_qualify is None else time_to_qualify
        ),
        abandonment_rate=_rate(abandoned, engaged),
        funnel=funnel,
        current=current,
        small_sample_warning=_small_sample_warning(engaged),
        quotes=quotes or QuoteCounts(),
        meetings_requested=meetings_requested,
        lost_reasons={name: n for name, n in sorted((lost_reasons or {}).items()) if n},
        accepted_on_behalf=accepted_on_behalf,
    )


def _rate(k: int, n: int) -> float | None:
    return round(k / n, _PLACES) if n else None


def _unit(value: float) -> float:
    """Rounded and clamped to [0, 1]; `+ 0.0` turns a rounded -0.0 into 0.0."""
    return min(1.0, max(0.0, round(value, _PLACES))) + 0.0


def wilson_interval(k: int, n: int) -> Interval | None:
    """Wilson score interval at 95%: well-behaved near 0 and 1, unlike the Wald interval."""
    if n == 0:
        return None
    from scipy.stats import norm  # here, not at import: SciPy takes most of a second to load

    z = float(norm.ppf(0.975))
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Interval(low=_unit(centre - half), high=_unit(centre + half))


def jeffreys_interval(k: int, n: int) -> Interval | None:
    """Equal-tailed Jeffreys interval: the 2.5% and 97.5% quantiles of Beta(k+½, n−k+½).

    By the usual convention (Brown, Cai & DasGupta 2001) the lower end is 0 when k = 0 and
    the upper end is 1 when k = n, so the interval always contains the observed rate.
    """
    if n == 0:
        return None
    from scipy.stats import beta  # here, not at import: SciPy takes most of a second to load

    a, b = k + 0.5, n - k + 0.5
    low = 0.0 if k == 0 else float(beta.ppf(0.025, a, b))
    high = 1.0 if k == n else float(beta.ppf(0.975, a, b))
    return Interval(low=_unit(low), high=_unit(high))


PERCENTILE_POINTS: tuple[Fraction, Fraction] = (Fraction(1, 2), Fraction(9, 10))
"""The quantiles `Percentiles` reports (p50, p90)."""


def percentiles(values_ms: Sequence[int]) -> Percentiles:
    """p50 and p90 by linear interpolation between order statistics (Hyndman–Fan type 7).

    Exact rational arithmetic, then rounded half up to whole milliseconds.
    """
    ordered = sorted(values_ms)
    return percentiles_at(len(ordered), ordered.__getitem__)


def percentile_ranks(n: int) -> tuple[int, ...]:
    """The 0-based ranks of the order statistics `percentiles` reads from `n` ascending
    values (two per quantile, fewer when they coincide): a store that keeps the values
    counted rather than listed fetches only these (`storage.projections`)."""
    if n == 0:
        return ()
    ranks: set[int] = set()
    for p in PERCENTILE_POINTS:
        ranks.update(_type7_ranks(n, p)[:2])
    return tuple(sorted(ranks))


def percentiles_at(n: int, at: Callable[[int], int]) -> Percentiles:
    """`percentiles` of `n` values of which `at(rank)` is the one of that 0-based rank in
    ascending order; only the ranks `percentile_ranks(n)` names are asked for."""
    if n == 0:
        return Percentiles(n=0, p50_ms=None, p90_ms=None)
    p50, p90 = PERCENTILE_POINTS
    return Percentiles(n=n, p50_ms=_type7_at(n, at, p50), p90_ms=_type7_at(n, at, p90))


def _type7_ranks(n: int, p: Fraction) -> tuple[int, int, Fraction]:
    h = (n - 1) * p
    lo = math.floor(h)
    return lo, min(lo + 1, n - 1), h - lo


def _type7(ordered: Sequence[int], p: Fraction) -> int:
    return _type7_at(len(ordered), ordered.__getitem__, p)


def _type7_at(n: int, at: Callable[[int], int], p: Fraction) -> int:
    lo, hi, fraction = _type7_ranks(n, p)
    low = at(lo)
    value = low + fraction * (at(hi) - low)
    return math.floor(value + Fraction(1, 2))


def _funnel(
    conversations: Sequence[_Stream], states: Sequence[str], start: str | None
) -> tuple[dict[str, int], dict[str, int]]:
    if start is None:
        firsts = Counter(s.first_from_state for s in conversations if s.first_from_state)
        # The most common first state, ties broken by name, so the result is order-free.
        seen = min(firsts, key=lambda name: (-firsts[name], name)) if firsts else None
        start = seen or (states[0] if states else "start")
    reached: Counter[str] = Counter()
    now: Counter[str] = Counter()
    for stream in conversations:
        origin = stream.first_from_state or start
        reached.update({origin, *stream.reached})
        now[stream.current_state or origin] += 1
    extra = sorted(set(reached) - set(states), key=lambda name: (-reached[name], name))
    order = [*dict.fromkeys(states), *extra]
    return {name: reached[name] for name in order}, {name: now[name] for name in order}


def _small_sample_warning(engaged: int) -> str | None:
    if engaged >= SMALL_SAMPLE:
        return None
    if engaged == 0:
        return "No engaged conversations yet, so there are no rates to report."
    noun = "conversation" if engaged == 1 else "conversations"
    return f"Only {engaged} engaged {noun}: treat the rates as rough (fewer than {SMALL_SAMPLE})."


def _percent(value: float) -> str:
    return f"{value:.1%}"


_SCALES = (("days", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000))


def _duration(ms: int) -> str:
    """A duration at a readable scale, with one decimal (Decimal: no binary rounding)."""
    unit, size = next(((u, s) for u, s in _SCALES if abs(ms) >= s), _SCALES[-1])
    amount = (Decimal(ms) / size).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{amount} {unit}"


def render_metrics(metrics: Metrics) -> tuple[str, ...]:
    """Plain lines for chat or a terminal, each readable on its own."""
    m = metrics
    lines = [
        f"Conversations: {m.conversations} started, {m.engaged} engaged "
        "(at least one prospect message).",
        f"Engaged outcomes: {m.won} won, {m.lost} lost, {m.abandoned} abandoned, {m.open} open.",
    ]
    if m.conversion_rate is None or m.wilson_95 is None or m.jeffreys_95 is None:
        lines.append("Conversion: no engaged conversations yet.")
    else:
        w, j = m.wilson_95, m.jeffreys_95
        lines.append(
            f"Conversion {m.won}/{m.engaged} = {_percent(m.conversion_rate)} "
            f"(Wilson 95%: {_percent(w.low)}–{_percent(w.high)}; "
            f"Jeffreys 95%: {_percent(j.low)}–{_percent(j.high)})"
        )
    if m.abandonment_rate is not None:
        lines.append(f"Abandonment {m.abandoned}/{m.engaged} = {_percent(m.abandonment_rate)}")
    ttq = m.time_to_qualify
    if ttq.p50_ms is None or ttq.p90_ms is None:
        lines.append("Time to qualify: no qualified conversations yet.")
    else:
        lines.append(
            f"Time to qualify (n={ttq.n}): p50 {_duration(ttq.p50_ms)}, p90 {_duration(ttq.p90_ms)}"
        )
    if m.funnel:
        lines.append("Reached: " + ", ".join(f"{k} {v}" for k, v in m.funnel.items()))
        lines.append("Now in: " + ", ".join(f"{k} {v}" for k, v in m.current.items()))
    if m.meetings_requested:
        lines.append(
            f"Meetings requested: {m.meetings_requested} of {m.conversations} conversations."
        )
    if m.lost_reasons:
        why = ", ".join(f"{lost_words(name)} {n}" for name, n in m.lost_reasons.items())
        lines.append(f"Lost, by the reason recorded: {why}.")
    if m.accepted_on_behalf:
        lines.append(
            f"Won on a quote a rep accepted on the prospect's behalf: {m.accepted_on_behalf}."
        )
    if m.quotes.issued:
        q = m.quotes
        lines.append(
            f"Quotes: {q.issued} issued; {q.revised} approved as a new version under the same "
            f"id (Q-… v2); {q.superseded} superseded by a newer quote."
        )
    if m.small_sample_warning is not None:
        lines.append(m.small_sample_warning)
    return tuple(lines)
