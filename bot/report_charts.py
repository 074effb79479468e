"""The report's pictures as PNG bytes, each with its alt text: drawn from `ReportData` only.

The `/metrics` chart is `bot.charts.render_png` itself (the same picture as in chat); the
others are drawn here through `bot.charts.render_figure`, under the same deterministic
settings (pinned matplotlib, its own DejaVu Sans, no timestamp or software chunk), so the
report for the same store is the same bytes run after run. A section with nothing to draw
has no picture (None): the page says so in words instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot import charts
from bot.charts import COLORS, render_figure
from domain.metrics_chart import duration_unit, scaled
from domain.report_data import BANDS, Contributions, NarrativePoint, ReportData, TicketReason

WIDTH_IN = 10.0
LABEL_LIMIT = 28
"""Characters of a label drawn on a picture (the tables below each picture hold them whole)."""


@dataclass(frozen=True, slots=True)
class Picture:
    """A PNG and what it shows in words (the `<img>`'s alt text)."""

    png: bytes
    alt: str


def short(label: str, limit: int = LABEL_LIMIT) -> str:
    """A label cut to `limit` characters for a picture (prospect text can be long)."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


def metrics_picture(data: ReportData) -> Picture:
    return Picture(charts.render_png(data.chart), data.chart.alt_text)


def scores_picture(data: ReportData) -> Picture | None:
    if not data.score_bins:
        return None

    def draw(figure: Any) -> None:
        left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": (1, 2.2)})
        figure.subplots_adjust(left=0.08, right=0.98, top=0.85, bottom=0.2, wspace=0.3)
        figure.suptitle("Lead scores", fontsize=13, fontweight="bold")
        counts = [b.leads for b in data.bands]
        left.bar(range(len(counts)), counts, color=[COLORS[b.band] for b in data.bands])
        left.set_xticks(range(len(counts)), [b.band for b in data.bands])
        left.set_title("Leads by band (latest score)")
        left.yaxis.get_major_locator().set_params(integer=True)
        for i, n in enumerate(counts):
            left.text(i, n, str(n), ha="center", va="bottom", fontsize=9)
        left.set_ylim(0, max(1, *counts) * 1.18)
        bins = data.score_bins
        positions = list(range(len(bins)))
        bottom = [0] * len(bins)
        for band in BANDS:
            heights = [getattr(b, band) for b in bins]
            right.bar(positions, heights, bottom=bottom, color=COLORS[band], label=band, width=0.9)
            bottom = [a + b for a, b in zip(bottom, heights, strict=True)]
        right.set_xticks(
            positions, [f"{b.low}–{b.high}" for b in bins], rotation=35, ha="right", fontsize=8
        )
        right.set_title("Score distribution by band")
        right.set_xlabel("score")
        right.yaxis.get_major_locator().set_params(integer=True)
        right.legend(frameon=False, fontsize=9)

    alt = "Lead scores: " + ", ".join(f"{b.leads} {b.band}" for b in data.bands)
    alt += f"; histogram of {sum(b.leads for b in data.bands)} latest scores in "
    alt += (
        f"{len(data.score_bins)} bins from {data.score_bins[0].low} to {data.score_bins[-1].high}."
    )
    return Picture(render_figure(draw, WIDTH_IN, 3.8), alt)


def contributions_picture(data: ReportData) -> Picture | None:
    found: Contributions = data.contributions
    rows = list(found.positive) + list(reversed(found.negative))
    if not rows:
        return None

    def draw(figure: Any) -> None:
        axes = figure.add_axes((0.36, 0.1, 0.6, 0.8))
        axes.set_title("What drives scores: Σ w×x per feature over the leads")
        positions = list(range(len(rows)))
        values = [float(r.total) for r in rows]
        axes.barh(
            positions,
            values,
            color=[COLORS["won"] if v > 0 else COLORS["lost"] for v in values],
        )
        axes.set_yticks(positions, [short(f"{r.words} ({r.feature})", 44) for r in rows])
        axes.invert_yaxis()
        axes.axvline(0, color="#555555", linewidth=0.8)
        axes.set_xlabel("total contribution to the score")

    alt = f"What drives scores over {found.leads} leads: up "
    alt += ", ".join(f"{r.words} {r.total:+}" for r in found.positive[:3]) or "nothing"
    alt += "; down " + (
        ", ".join(f"{r.words} {r.total:+}" for r in found.negative[:3]) or "nothing"
    )
    alt += "."
    return Picture(render_figure(draw, WIDTH_IN, 1.2 + 0.32 * len(rows)), alt)


def objections_picture(data: ReportData) -> Picture | None:
    rows = data.objections
    if not rows:
        return None

    def draw(figure: Any) -> None:
        axes = figure.add_axes((0.3, 0.15, 0.62, 0.72))
        axes.set_title("Objections: messages and escalations to a person")
        positions = list(range(len(rows)))
        axes.barh(positions, [r.messages for r in rows], color=COLORS["bar"], label="messages")
        axes.barh(positions, [r.escalated for r in rows], color=COLORS["lost"], label="escalated")
        top = max(r.messages for r in rows)
        for p, r in zip(positions, rows, strict=True):
            rate = f"{r.escalation_rate:.0%}" if r.escalation_rate is not None else "–"
            axes.text(
                r.messages + top * 0.02,
                p,
                f"{r.escalated}/{r.messages} ({rate})",
                va="center",
                fontsize=9,
            )
        axes.set_yticks(positions, [short(r.objection) for r in rows])
        axes.invert_yaxis()
        axes.set_xlim(0, top * 1.35)
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.legend(frameon=False, fontsize=9, loc="lower right")

    alt = "Objections: " + "; ".join(
        f"{r.objection} {r.messages} messages, {r.escalated} escalated" for r in rows
    )
    return Picture(render_figure(draw, WIDTH_IN, 1.4 + 0.4 * len(rows)), alt + ".")


def tickets_picture(data: ReportData) -> Picture | None:
    rows: tuple[TicketReason, ...] = tuple(r for r in data.tickets if r.claim_p50_ms is not None)
    if not rows:
        return None
    top = max(r.claim_p90_ms or 0 for r in rows)
    unit, size = duration_unit(top)

    def draw(figure: Any) -> None:
        axes = figure.add_axes((0.34, 0.15, 0.6, 0.72))
        axes.set_title("Tickets: time to claim by reason (p50, p90)")
        positions = list(range(len(rows)))
        p50 = [scaled(r.claim_p50_ms or 0, size) for r in rows]
        p90 = [scaled(r.claim_p90_ms or 0, size) for r in rows]
        axes.barh([p - 0.2 for p in positions], p50, height=0.4, color=COLORS["bar"], label="p50")
        axes.barh(
            [p + 0.2 for p in positions], p90, height=0.4, color=COLORS["Jeffreys"], label="p90"
        )
        axes.set_yticks(positions, [short(f"{r.words} (n={r.claimed})", 40) for r in rows])
        axes.invert_yaxis()
        axes.set_xlabel(unit)
        axes.legend(frameon=False, fontsize=9, loc="lower right")

    alt = "Time to claim a ticket: " + "; ".join(
        f"{r.words} p50 {scaled(r.claim_p50_ms or 0, size):.1f} {unit}, "
        f"p90 {scaled(r.claim_p90_ms or 0, size):.1f} {unit}"
        for r in rows
    )
    return Picture(render_figure(draw, WIDTH_IN, 1.4 + 0.5 * len(rows)), alt + ".")


def point_label(point: NarrativePoint, labelled: int) -> str:
    """The notebook's label (`c1`…), the company, and the penalty's reason code."""
    text = point.key
    if labelled <= 30 and point.company:
        text += " " + short(point.company, 18)
    if point.penalized:
        text += f" [{point.reason_code}]"
    return text


def narrative_picture(data: ReportData) -> Picture | None:
    """The notebook's §12: resonance (x) against penalised urgency (y), each point labelled,
    an arrow from the raw urgency down to the penalised one where the penalty applied."""
    points = data.narrative
    if not points:
        return None

    def draw(figure: Any) -> None:
        axes = figure.add_axes((0.1, 0.12, 0.86, 0.78))
        xs = [float(p.resonance) for p in points]
        ys = [float(p.penalized_urgency) for p in points]
        axes.scatter(xs, ys, s=60, color=COLORS["bar"], zorder=3, label="penalized urgency")
        penalised = [p for p in points if p.penalized]
        if penalised:
            axes.scatter(
                [float(p.resonance) for p in penalised],
                [float(p.raw_urgency) for p in penalised],
                s=60,
                facecolors="none",
                edgecolors=COLORS["lost"],
                zorder=3,
                label="raw urgency (before the penalty)",
            )
            for p in penalised:
                axes.annotate(
                    "",
                    xy=(float(p.resonance), float(p.penalized_urgency)),
                    xytext=(float(p.resonance), float(p.raw_urgency)),
                    arrowprops={"arrowstyle": "->", "color": COLORS["lost"], "lw": 1.2},
                    zorder=2,
                )
        # Points at the same place share one label ("c2, c3, c4"), not a smudge of three.
        places: dict[tuple[float, float], list[str]] = {}
        for p, x, y in zip(points, xs, ys, strict=True):
            places.setdefault((x, y), []).append(point_label(p, len(points)))
        for (x, y), labels in places.items():
            axes.text(x + 0.01, y + 0.01, ", ".join(labels), fontsize=8)
        axes.set_xlabel("Resonance")
        axes.set_ylabel("Penalized urgency")
        axes.set_title("Narrative resonance vs penalized urgency")
        axes.set_ylim(-0.05, 1.05)
        axes.set_xlim(-0.05, max(1.05, max(xs) + 0.1))
        axes.legend(frameon=False, fontsize=9, loc="upper left")

    moved = sum(p.penalized for p in points)
    alt = (
        f"Narrative scatter of {len(points)} conversations, resonance against penalized "
        f"urgency; the fairness penalty lowered urgency for {moved} of them: "
        + "; ".join(
            f"{p.key} resonance {p.resonance}, urgency {p.raw_urgency} → {p.penalized_urgency}"
            for p in points[:20]
        )
    )
    return Picture(render_figure(draw, WIDTH_IN, 6.0), alt + ".")


def fairness_picture(data: ReportData) -> Picture | None:
    report = data.fairness
    if report is None or report.leads == 0:
        return None
    groups = [*report.by_band, *report.by_source, *report.by_company_size]

    def draw(figure: Any) -> None:
        axes = figure.add_axes((0.3, 0.12, 0.66, 0.78))
        axes.set_title("Leads pursued now, without and with the fairness penalty")
        positions = list(range(len(groups)))
        axes.barh(
            [p - 0.2 for p in positions],
            [g.pursued_without_penalty for g in groups],
            height=0.4,
            color=COLORS["abandoned"],
            label="without the penalty",
        )
        axes.barh(
            [p + 0.2 for p in positions],
            [g.pursued_with_penalty for g in groups],
            height=0.4,
            color=COLORS["bar"],
            label="with the penalty",
        )
        kinds = (
            ["band"] * len(report.by_band)
            + ["source"] * len(report.by_source)
            + ["size"] * len(report.by_company_size)
        )
        axes.set_yticks(
            positions,
            [
                f"{k}: {short(g.group, 20)} (n={g.leads})"
                for k, g in zip(kinds, groups, strict=True)
            ],
        )
        axes.invert_yaxis()
        top = max(max(g.pursued_without_penalty, g.pursued_with_penalty) for g in groups)
        axes.set_xlim(0, max(1, top) * 1.15)
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.legend(frameon=False, fontsize=9, loc="lower right")

    credit = report.credit_groups
    ratio = "no ratio" if credit.ratio is None else f"ratio {credit.ratio}"
    alt = (
        f"Fairness: of {report.leads} leads, {report.overall.pursued_with_penalty} pursued now "
        f"with the penalty and {report.overall.pursued_without_penalty} without; "
        f"{report.overall.moved_out} moved out; pursued-now {ratio} between credit groups"
        + (" (flagged: below four fifths)" if credit.flagged else "")
    )
    return Picture(render_figure(draw, WIDTH_IN, 1.4 + 0.34 * len(groups)), alt + ".")
