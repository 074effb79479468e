"""What the fairness penalty changes: stored leads decided with and without it.

`salesbot fairness` gathers one `LeadSample` per stored lead (its band, whether it
qualified, the narrative features its urgency was computed from, its credit score, source
and company size) and asks, under the policy's knobs or others: which leads are *pursued
now* (`domain.pursuit`) with the penalty and which would be without it. Urgency is linear in
the recorded features, so recomputing it under other knobs is exact — the same arithmetic
`domain.narrative` does, not an estimate.

The report gives, per band, per lead source and per company-size segment: the leads the
penalty moved out of *pursued now* and the mean change in urgency; the ratio of *pursued
now* rates between the credit groups below and at or above `c0` (the four-fifths rule of
adverse-impact analysis flags a ratio below 0.8); and a sweep over `c0` and λ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

from pydantic import ConfigDict, Field

from domain import GENERATOR
from domain.events import ConversationStarted, EventEnvelope, LeadScored, NarrativeAssessed
from domain.inbound import LeadDetails
from domain.model import Frozen
from domain.narrative import FairnessConfig, penalized_urgency
from domain.scoring import Band, exact_product, exact_sum

FAIRNESS_REPORT_SCHEMA_VERSION = 1
FOUR_FIFTHS = Decimal("0.8")
"""Below this ratio of selection rates a group is flagged (the four-fifths rule)."""

SIZE_SEGMENTS: tuple[tuple[int, str], ...] = (
    (1000, "1000+"),
    (200, "200-999"),
    (50, "50-199"),
    (0, "1-49"),
)
"""Company-size segments, largest first: a lead falls in the first whose floor it reaches."""

_PLACES = Decimal("0.0001")


class LeadSample(Frozen):
    """What the report needs of one stored lead: nothing it does not need (no name, no
    text), because the report is about groups."""

    conversation_id: str
    band: Band
    qualified: bool
    features: dict[str, int]
    """The narrative features its urgency was computed from, as recorded."""
    credit: int | None
    source: str = ""
    company_size: int | None = None


class Knobs(Frozen):
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, serialize_by_alias=True
    )

    c0: int
    lambda_: Decimal = Field(alias="lambda")
    min_urgency: Decimal


class GroupFigures(Frozen):
    """One group of leads: how many, how many pursued now with and without the penalty,
    how many the penalty moved out, and the mean urgency change (≤ 0, 4 places)."""

    group: str
    leads: int
    pursued_without_penalty: int
    pursued_with_penalty: int
    moved_out: int
    mean_urgency_change: Decimal


class CreditGroups(Frozen):
    """*Pursued now* rates of the leads below `c0` and at or above it (unknown credit is in
    neither), and their ratio; `flagged` when the ratio is below 0.8. None where a group is
    empty or the higher group's rate is 0."""

    below: int
    at_or_above: int
    unknown: int
    rate_below: Decimal | None
    rate_at_or_above: Decimal | None
    ratio: Decimal | None
    ratio_without_penalty: Decimal | None
    flagged: bool


class SweepRow(Frozen):
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, serialize_by_alias=True
    )

    c0: int
    lambda_: Decimal = Field(alias="lambda")
    pursued_with_penalty: int
    moved_out: int
    ratio: Decimal | None
    flagged: bool


class FairnessReport(Frozen):
    """`salesbot fairness --json`."""

    schema_version: Literal[1] = 1
    generator_version: str = GENERATOR
    policy_version: str
    knobs: Knobs
    leads: int
    overall: GroupFigures
    by_band: tuple[GroupFigures, ...]
    by_source: tuple[GroupFigures, ...]
    by_company_size: tuple[GroupFigures, ...]
    credit_groups: CreditGroups
    sweep: tuple[SweepRow, ...] = ()


def lead_sample(conversation_id: str, envelopes: Iterable[EventEnvelope]) -> LeadSample | None:
    """A stored lead's sample, from its events: the lead's details, its latest score and
    narrative assessment. None for a conversation that is not a lead or was never scored."""
    lead: LeadDetails | None = None
    band: Band | None = None
    qualified = False
    features: dict[str, int] | None = None
    credit: int | None = None
    for envelope in envelopes:
        match envelope.event:
            case ConversationStarted() if envelope.event.lead is not None:
                lead = envelope.event.lead
            case LeadScored() if envelope.event.subject == "conversation":
                band, qualified = envelope.event.score.band, envelope.event.qualified
            case NarrativeAssessed():
                features, credit = envelope.event.audit.features, envelope.event.audit.credit
    if lead is None or band is None or features is None:
        return None
    return LeadSample(
        conversation_id=conversation_id,
        band=band,
        qualified=qualified,
        features=features,
        credit=credit,
        source=lead.source,
        company_size=lead.company_size,
    )


def size_segment(company_size: int | None) -> str:
    if company_size is None:
        return "unknown"
    return next(name for floor, name in SIZE_SEGMENTS if company_size >= floor)


@dataclass(frozen=True, slots=True)
class _Decided:
    sample: LeadSample
    raw: Decimal
    penalised: Decimal
    with_penalty: bool
    without_penalty: bool


def _decide(
    samples: Sequence[LeadSample], weights: dict[str, Decimal], knobs: Knobs
) -> list[_Decided]:
    zero = Decimal(0)
    fairness = FairnessConfig(c0=knobs.c0, lambda_=knobs.lambda_)
    decided = []
    for sample in samples:
        raw = exact_sum(
            exact_product(weights.get(name, zero), value) for name, value in sample.features.items()
        )
        penalised = penalized_urgency(raw, sample.credit, fairness)
        decided.append(
            _Decided(
                sample=sample,
                raw=raw,
                penalised=penalised,
                with_penalty=sample.qualified and penalised >= knobs.min_urgency,
                without_penalty=sample.qualified and raw >= knobs.min_urgency,
            )
        )
    return decided


def _figures(group: str, decided: Sequence[_Decided]) -> GroupFigures:
    change = exact_sum(d.penalised - d.raw for d in decided)
    mean = (change / len(decided) if decided else Decimal(0)).quantize(_PLACES, ROUND_HALF_EVEN)
    return GroupFigures(
        group=group,
        leads=len(decided),
        pursued_without_penalty=sum(d.without_penalty for d in decided),
        pursued_with_penalty=sum(d.with_penalty for d in decided),
        moved_out=sum(d.without_penalty and not d.with_penalty for d in decided),
        mean_urgency_change=mean if mean else abs(mean),  # never "-0.0000"
    )


def _grouped(
    decided: Sequence[_Decided], key: Callable[[LeadSample], str], order: Iterable[str] = ()
) -> tuple[GroupFigures, ...]:
    groups: dict[str, list[_Decided]] = {name: [] for name in order}
    for d in decided:
        groups.setdefault(key(d.sample), []).append(d)
    return tuple(_figures(name, members) for name, members in groups.items() if members)


def _rate(pursued: int, leads: int) -> Decimal | None:
    return (Decimal(pursued) / leads).quantize(_PLACES, ROUND_HALF_EVEN) if leads else None


def _ratio(below: int, below_leads: int, above: int, above_leads: int) -> Decimal | None:
    if not below_leads or not above_leads or not above:
        return None
    exact = (Decimal(below) * above_leads) / (Decimal(above) * below_leads)
    return exact.quantize(_PLACES, ROUND_HALF_EVEN)


def _credit_groups(decided: Sequence[_Decided], c0: int) -> CreditGroups:
    below = [d for d in decided if d.sample.credit is not None and d.sample.credit < c0]
    above = [d for d in decided if d.sample.credit is not None and d.sample.credit >= c0]
    with_below, with_above = sum(d.with_penalty for d in below), sum(d.with_penalty for d in above)
    ratio = _ratio(with_below, len(below), with_above, len(above))
    return CreditGroups(
        below=len(below),
        at_or_above=len(above),
        unknown=len(decided) - len(below) - len(above),
        rate_below=_rate(with_below, len(below)),
        rate_at_or_above=_rate(with_above, len(above)),
        ratio=ratio,
        ratio_without_penalty=_ratio(
            sum(d.without_penalty for d in below),
            len(below),
            sum(d.without_penalty for d in above),
            len(above),
        ),
        flagged=ratio is not None and ratio < FOUR_FIFTHS,
    )


SWEEP_LAMBDAS = tuple(Decimal(x) for x in ("0", "0.25", "0.5", "0.75", "1"))
SWEEP_C0_STEPS = (-100, -50, 0, 50, 100)


def fairness_report(
    samples: Sequence[LeadSample],
    *,
    policy_version: str,
    urgency_weights: dict[str, Decimal],
    fairness: FairnessConfig,
    min_urgency: Decimal,
    sweep: bool = False,
) -> FairnessReport:
    """The report for `samples` under `fairness` (c0, λ) and `min_urgency`; with `sweep`,
    also every combination of c0 around the given one (±50, ±100) and λ in 0…1."""
    knobs = Knobs(c0=fairness.c0, lambda_=fairness.lambda_, min_urgency=min_urgency)
    decided = _decide(samples, urgency_weights, knobs)
    rows: list[SweepRow] = []
    if sweep:
        lambdas = sorted({*SWEEP_LAMBDAS, fairness.lambda_})
        for step in SWEEP_C0_STEPS:
            c0 = max(0, fairness.c0 + step)
            for lam in lambdas:
                other = Knobs(c0=c0, lambda_=lam, min_urgency=min_urgency)
                result = _decide(samples, urgency_weights, other)
                groups = _credit_groups(result, c0)
                rows.append(
                    SweepRow(
                        c0=c0,
                        lambda_=lam,
                        pursued_with_penalty=sum(d.with_penalty for d in result),
                        moved_out=sum(d.without_penalty and not d.with_penalty for d in result),
                        ratio=groups.ratio,
                        flagged=groups.flagged,
                    )
                )
    return FairnessReport(
        policy_version=policy_version,
        knobs=knobs,
        leads=len(samples),
        overall=_figures("all leads", decided),
        by_band=_grouped(decided, lambda s: s.band, order=("hot", "warm", "cold")),
        by_source=_grouped(decided, lambda s: s.source.strip().lower() or "unknown"),
        by_company_size=_grouped(
            decided,
            lambda s: size_segment(s.company_size),
            order=(*(name for _, name in reversed(SIZE_SEGMENTS)), "unknown"),
        ),
        credit_groups=_credit_groups(decided, fairness.c0),
        sweep=tuple(rows),
    )


def _percent(rate: Decimal | None) -> str:
    return "n/a" if rate is None else f"{(rate * 100).quantize(Decimal('0.1'))}%"


def render_fairness(report: FairnessReport) -> list[str]:
    """The report as text, for a sales-ops reader."""
    knobs = report.knobs
    lines = [
        f"Fairness: {report.leads} stored leads, c0 {knobs.c0}, λ {knobs.lambda_}, "
        f"pursued now at urgency ≥ {knobs.min_urgency} (policy {report.policy_version[:12]})",
    ]
    if not report.leads:
        lines.append("No stored leads: nothing to compare.")
        return lines
    overall = report.overall
    lines.append(
        f"Pursued now: {overall.pursued_without_penalty} without the penalty, "
        f"{overall.pursued_with_penalty} with it; the penalty moved {overall.moved_out} "
        f"out (mean urgency change {overall.mean_urgency_change})."
    )
    header = "  {:<16} {:>6} {:>9} {:>9} {:>6} {:>10}".format(
        "group", "leads", "without", "with", "moved", "Δ urgency"
    )
    for title, groups in (
        ("By band", report.by_band),
        ("By lead source", report.by_source),
        ("By company size", report.by_company_size),
    ):
        lines += ["", title, header]
        lines += [
            f"  {g.group[:16]:<16} {g.leads:>6} {g.pursued_without_penalty:>9} "
            f"{g.pursued_with_penalty:>9} {g.moved_out:>6} {g.mean_urgency_change!s:>10}"
            for g in groups
        ]
    credit = report.credit_groups
    lines += [
        "",
        f"Credit groups: {credit.below} below {knobs.c0}, {credit.at_or_above} at or above, "
        f"{credit.unknown} unknown (never penalised).",
        f"Pursued-now rate below {knobs.c0}: {_percent(credit.rate_below)}; at or above: "
        f"{_percent(credit.rate_at_or_above)}; ratio {credit.ratio if credit.ratio is not None else 'n/a'}"
        f" (without the penalty: "
        f"{credit.ratio_without_penalty if credit.ratio_without_penalty is not None else 'n/a'})"
        + (" — FLAGGED: below 0.8 (the four-fifths rule)" if credit.flagged else ""),
    ]
    if report.sweep:
        lines += [
            "",
            "Sweep",
            "  {:>5} {:>6} {:>9} {:>6} {:>8}".format("c0", "λ", "pursued", "moved", "ratio"),
        ]
        lines += [
            f"  {row.c0:>5} {row.lambda_!s:>6} {row.pursued_with_penalty:>9} "
            f"{row.moved_out:>6} {row.ratio if row.ratio is not None else 'n/a':>8}"
            + ("  flagged" if row.flagged else "")
            for row in report.sweep
        ]
    return lines
