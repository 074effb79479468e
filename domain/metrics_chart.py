"""What the `/metrics` chart shows, worked out before anything is drawn.

The picture (`bot.charts` draws it) is a function of this value only, so two equal values
give the same PNG bytes, and every number on the picture can be checked here without
decoding an image. Four panels:

- the funnel: conversations started, engaged, each flow state reached (the policy's order),
  meetings requested, won — and the engaged outcomes (won, lost, abandoned, open), with the
  lost deals split by their reason when the metrics carry reasons;
- conversion (won / engaged) with its Wilson and Jeffreys 95 % intervals as error bars;
- time to qualify, p50 and p90, each with a 95 % percentile-bootstrap interval;
- the small-sample warning, printed on the picture when the metrics have one.

The bootstrap resamples the qualification times `BOOTSTRAP_RESAMPLES` times with a FIXED
seed (`BOOTSTRAP_SEED`, numpy's PCG64, numpy pinned in constraints.txt), so the same data
always gives the same interval, and the same picture. It says how much p50 and p90 would
move with another sample of the same size; with fewer than `BOOTSTRAP_MIN_N` times it is
not shown (an interval from two values means nothing).

By persona and by lead source (`segments`, a fifth row of the picture when there are any):
conversion won / engaged within each group, with its Wilson and Jeffreys 95 % intervals, as
`Metrics` defines them (the same denominators, the same interval functions). A
conversation's *persona* is the persona of the policy that started it (`Policy.persona`:
the bot's voice, which a policy change may switch, so the picture shows whether a new one
converts better); its *lead source* is the lead's `source` (lower-cased, "unknown" when a
lead gave none), or "not a lead" for a conversation a prospect began in chat.
`segment_facts` folds the log into what each conversation contributes, in one pass and in
any order (by `seq`, as `domain.analytics`); `conversion_segments` groups it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from domain import GENERATOR
from domain.analytics import Interval, Metrics, _type7, jeffreys_interval, wilson_interval
from domain.events import (
    ConversationAbandoned,
    ConversationClosed,
    ConversationReopened,
    ConversationStarted,
    EventEnvelope,
    ProspectMessageReceived,
)
from domain.model import Frozen

METRICS_CHART_SCHEMA_VERSION = 1
BOOTSTRAP_SEED = 20_240_601
"""Fixed: the interval, and so the PNG, is reproducible (issue 15, "Details that matter")."""
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_MIN_N = 5
"""Fewer qualification times than this: p50/p90 are drawn without an interval."""
SEGMENTS_SHOWN = 8
"""Groups drawn per dimension, most engaged first; the rest are added up as "other"."""
NOT_A_LEAD = "not a lead"
UNKNOWN_SOURCE = "unknown"


class Bar(Frozen):
    """One bar: a label a person reads and a count."""

    label: str
    value: int


class RateEstimate(Frozen):
    """A rate with one of its intervals (`method` names it on the picture)."""

    method: Literal["Wilson", "Jeffreys"]
    rate: float
    interval: Interval


class DurationEstimate(Frozen):
    """A percentile of the time to qualify, in ms, with its bootstrap interval if any."""

    label: Literal["p50", "p90"]
    ms: int
    interval_ms: tuple[int, int] | None = None


Dimension = Literal["persona", "lead source"]


class Segment(Frozen):
    """Conversion within one group (a persona, a lead source): won of engaged, with both
    intervals (None when nothing in the group was engaged)."""

    dimension: Dimension
    label: str
    won: int
    engaged: int
    rate: float | None = None
    wilson_95: Interval | None = None
    jeffreys_95: Interval | None = None

    @classmethod
    def of(cls, dimension: Dimension, label: str, won: int, engaged: int) -> Segment:
        return cls(
            dimension=dimension,
            label=label,
            won=won,
            engaged=engaged,
            rate=round(won / engaged, 4) if engaged else None,
            wilson_95=wilson_interval(won, engaged),
            jeffreys_95=jeffreys_interval(won, engaged),
        )


class MetricsChart(Frozen):
    """Everything the chart draws, in the order it draws it."""

    schema_version: int = METRICS_CHART_SCHEMA_VERSION
    title: str
    funnel: tuple[Bar, ...]
    outcomes: tuple[Bar, ...]
    lost_reasons: tuple[Bar, ...] = ()
    won: int
    engaged: int
    conversion: tuple[RateEstimate, ...] = ()
    time_to_qualify: tuple[DurationEstimate, ...] = ()
    qualified: int = 0
    segments: tuple[Segment, ...] = ()
    warning: str | None = None
    generator_version: str = GENERATOR

    @property
    def alt_text(self) -> str:
        """The picture in one sentence, for screen readers and platforms' alt text."""
        parts = [f"{self.won} won of {self.engaged} engaged conversations"]
        for estimate in self.conversion:
            parts.append(
                f"{estimate.method} 95% {estimate.interval.low:.0%}–{estimate.interval.high:.0%}"
            )
        for duration in self.time_to_qualify:
            parts.append(f"time to qualify {duration.label} {duration.ms / 60_000:.1f} min")
        for dimension in ("persona", "lead source"):
            groups = [s for s in self.segments if s.dimension == dimension]
            if groups:
                parts.append(
                    f"by {dimension}: "
                    + ", ".join(f"{s.label} {s.won} of {s.engaged}" for s in groups)
                )
        return "Sales metrics chart: " + "; ".join(parts) + "."


def metrics_chart(
    metrics: Metrics,
    qualification_ms: Sequence[int] = (),
    segments: Sequence[Segment] = (),
) -> MetricsChart:
    """The chart of `metrics`. `qualification_ms` are the times behind its p50/p90 (the
    projection keeps them); without them the percentiles are drawn without intervals.
    `segments` (`conversion_segments`) add the row by persona and by lead source."""
    m = metrics
    funnel = [Bar(label="started", value=m.conversations), Bar(label="engaged", value=m.engaged)]
    funnel += [Bar(label=f"reached {state}", value=count) for state, count in m.funnel.items()]
    funnel += [
        Bar(label="meeting requested", value=m.meetings_requested),
        Bar(label="won", value=m.won),
    ]
    outcomes = (
        Bar(label="won", value=m.won),
        Bar(label="lost", value=m.lost),
        Bar(label="abandoned", value=m.abandoned),
        Bar(label="open", value=m.open),
    )
    conversion: list[RateEstimate] = []
    if m.conversion_rate is not None:
        for method, interval in (("Wilson", m.wilson_95), ("Jeffreys", m.jeffreys_95)):
            if interval is not None:
                conversion.append(
                    RateEstimate(method=method, rate=m.conversion_rate, interval=interval)  # type: ignore[arg-type]
                )
    return MetricsChart(
        title="Sales metrics",
        funnel=tuple(funnel),
        outcomes=outcomes,
        lost_reasons=lost_reason_bars(m),
        won=m.won,
        engaged=m.engaged,
        conversion=tuple(conversion),
        time_to_qualify=_durations(m, qualification_ms),
        qualified=m.time_to_qualify.n,
        segments=tuple(segments),
        warning=m.small_sample_warning,
    )


def lost_reason_bars(metrics: Metrics) -> tuple[Bar, ...]:
    """Lost deals by the reason a rep recorded, most first (ties by name)."""
    counts = {reason: n for reason, n in metrics.lost_reasons.items() if n > 0}
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(Bar(label=label.replace("_", " "), value=value) for label, value in ordered)


def _durations(metrics: Metrics, qualification_ms: Sequence[int]) -> tuple[DurationEstimate, ...]:
    ttq = metrics.time_to_qualify
    if ttq.p50_ms is None or ttq.p90_ms is None:
        return ()
    intervals = bootstrap_percentiles(qualification_ms, (Fraction(1, 2), Fraction(9, 10)))
    return (
        DurationEstimate(label="p50", ms=ttq.p50_ms, interval_ms=intervals[0]),
        DurationEstimate(label="p90", ms=ttq.p90_ms, interval_ms=intervals[1]),
    )


def bootstrap_percentiles(
    values_ms: Sequence[int],
    quantiles: Sequence[Fraction],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[tuple[int, int] | None, ...]:
    """95 % percentile-bootstrap intervals of each quantile (type 7, as `percentiles`).

    Each resample draws len(values) indices with replacement from numpy's PCG64 seeded with
    `seed`; the interval is the 2.5th and 97.5th percentile (type 7) of the resampled
    statistic, rounded half up to whole ms. Deterministic for the same values in any order.
    """
    ordered = sorted(values_ms)
    n = len(ordered)
    if n < BOOTSTRAP_MIN_N:
        return tuple(None for _ in quantiles)
    import numpy as np  # here, not at import: the metrics text never needs it

    generator = np.random.Generator(np.random.PCG64(seed))
    data = np.asarray(ordered, dtype=np.int64)
    statistics: list[list[int]] = [[] for _ in quantiles]
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // n)
    done = 0
    while done < resamples:
        rows = min(rows_per_chunk, resamples - done)
        draws = np.sort(data[generator.integers(0, n, size=(rows, n))], axis=1)
        for found, q in zip(statistics, quantiles, strict=True):
            found.extend(_type7_rows(draws, q))
        done += rows
    intervals: list[tuple[int, int] | None] = []
    for found in statistics:
        found.sort()
        intervals.append((_type7(found, Fraction(1, 40)), _type7(found, Fraction(39, 40))))
    return tuple(intervals)


_CHUNK_ELEMENTS = 1 << 20
"""Resampled values held at once (8 MB of int64), whatever the number of times."""


def _type7_rows(sorted_rows: Any, q: Fraction) -> list[int]:
    """`_type7` of every row of an ascending 2-D array, in exact arithmetic: only the two
    order statistics around the quantile's position are read from each row."""
    n = int(sorted_rows.shape[1])
    h = (n - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    fraction = h - lo
    lows = sorted_rows[:, lo].tolist()
    highs = sorted_rows[:, hi].tolist()
    return [
        math.floor(a + fraction * (b - a) + Fraction(1, 2))
        for a, b in zip(lows, highs, strict=True)
    ]


def duration_unit(ms: int) -> tuple[str, int]:
    """The unit a duration axis reads best in: its name and its size in ms."""
    for name, size in (("days", 86_400_000), ("hours", 3_600_000), ("minutes", 60_000)):
        if ms >= 2 * size:
            return name, size
    return "seconds", 1000


def scaled(ms: int, size: int) -> float:
    """`ms` in units of `size` ms, for an axis (display only)."""
    return ms / size if size else math.nan


@dataclass(frozen=True, slots=True)
class SegmentFacts:
    """What one conversation contributes to the segments: the policy version that started
    it (its persona is that policy's), its lead source label, engaged or not, won or not."""

    policy_version: str
    source: str
    engaged: bool
    won: bool


@dataclass(slots=True)
class _Fold:
    started_seq: int | None = None
    policy_version: str = ""
    source: str = NOT_A_LEAD
    messages: int = 0
    ending_seq: int = 0
    won: bool = False


def source_label(event: ConversationStarted) -> str:
    """The lead source a conversation is grouped under (the module docstring)."""
    if event.lead is None:
        return NOT_A_LEAD
    return event.lead.source.strip().lower() or UNKNOWN_SOURCE


SOURCE_KEY = "source:"
POLICY_KEY = "policy:"
"""Prefixes of the keys `segments_from_counts` reads: `source:<label>`, `policy:<version>`."""


def segment_facts(events: Iterable[EventEnvelope]) -> dict[str, SegmentFacts]:
    """Conversation id → its `SegmentFacts`, for conversations with a `ConversationStarted`
    (other streams, a rep's `/lead` or `/metrics`, are not conversations). One pass; the
    outcome is the latest (by seq) close, abandonment or reopening, as `domain.analytics`."""
    folds: dict[str, _Fold] = {}
    for envelope in events:
        fold = folds.setdefault(envelope.conversation_id, _Fold())
        event = envelope.event
        if isinstance(event, ConversationStarted):
            if fold.started_seq is None or envelope.seq < fold.started_seq:
                fold.started_seq = envelope.seq
                fold.policy_version = envelope.policy_version
                fold.source = source_label(event)
        elif isinstance(event, ProspectMessageReceived):
            fold.messages += 1
        elif (
            isinstance(event, ConversationClosed | ConversationAbandoned | ConversationReopened)
            and envelope.seq > fold.ending_seq
        ):
            fold.ending_seq = envelope.seq
            fold.won = isinstance(event, ConversationClosed) and event.outcome == "won"
    return {
        conversation_id: SegmentFacts(
            policy_version=fold.policy_version,
            source=fold.source,
            engaged=fold.messages > 0,
            won=fold.messages > 0 and fold.won,
        )
        for conversation_id, fold in folds.items()
        if fold.started_seq is not None
    }


def conversion_segments(
    facts: Mapping[str, SegmentFacts] | Iterable[SegmentFacts],
    persona_of: Callable[[str], str],
) -> tuple[Segment, ...]:
    """Conversion by persona (`persona_of(policy_version)`), then by lead source, over the
    engaged conversations (`segments_from_counts`)."""
    rows = list(facts.values()) if isinstance(facts, Mapping) else list(facts)
    engaged: Counter[str] = Counter()
    won: Counter[str] = Counter()
    for fact in rows:
        if fact.engaged:
            for key in (POLICY_KEY + fact.policy_version, SOURCE_KEY + fact.source):
                engaged[key] += 1
                won[key] += fact.won
    return segments_from_counts(engaged, won, persona_of)


def segments_from_counts(
    engaged: Mapping[str, int], won: Mapping[str, int], persona_of: Callable[[str], str]
) -> tuple[Segment, ...]:
    """The segments from counts of engaged and won conversations keyed `policy:<version>`
    and `source:<label>` (what the projections keep, `storage.projections`): policy
    versions are added up by the persona they speak with; each dimension's groups most
    engaged first (ties by name), the groups past `SEGMENTS_SHOWN` added up as "other"."""
    found: list[Segment] = []
    for dimension, prefix in (("persona", POLICY_KEY), ("lead source", SOURCE_KEY)):
        totals: Counter[str] = Counter()
        wins: Counter[str] = Counter()
        for key, n in engaged.items():
            if key.startswith(prefix) and n > 0:
                rest = key.removeprefix(prefix)
                label = persona_of(rest) if prefix == POLICY_KEY else rest
                totals[label] += n
                wins[label] += won.get(key, 0)
        ordered = sorted(totals, key=lambda name: (-totals[name], name))
        shown, others = ordered[:SEGMENTS_SHOWN], ordered[SEGMENTS_SHOWN:]
        found += [Segment.of(dimension, n, wins[n], totals[n]) for n in shown]  # type: ignore[arg-type]
        if others:
            found.append(
                Segment.of(
                    dimension,  # type: ignore[arg-type]
                    f"other ({len(others)})",
                    sum(wins[n] for n in others),
                    sum(totals[n] for n in others),
                )
            )
    return tuple(found)
