"""The `/metrics` chart as PNG bytes: matplotlib's Agg canvas, no display, no pyplot.

What is drawn is decided in `domain.metrics_chart` (`MetricsChart`); this module only draws
it. Why it looks the way it does:

- **Deterministic bytes.** The same `MetricsChart` gives byte-identical PNGs, so tests can
  compare them (a golden SHA-256) and an outbox retry sends what the first try would have.
  That takes: matplotlib pinned (constraints.txt: its rasteriser and bundled FreeType decide
  the pixels); every style setting from matplotlib's own defaults (`rcParamsDefault`, not a
  user's matplotlibrc) plus the overrides below, inside `rc_context` under a lock (rcParams
  are process-global); text in DejaVu Sans, the font matplotlib ships (found before any
  system copy of the same name); a fixed size and dpi; and no `Software` or time chunk in
  the file (`metadata={"Software": None}`; Agg writes no tIME chunk).
- **Lazy.** matplotlib takes about half a second to import: only a process that renders a
  chart pays for it (`salesbot --help` does not: tests/unit/test_cli_startup.py).
- **Off the event loop.** `render_png` is synchronous and CPU-bound (~0.2 s): callers on the
  loop run it in a worker thread (`bot.queries` uses `asyncio.to_thread`).
- **Small enough for every platform.** A reply's image is at most `IMAGE_MAX_BYTES`
  (Teams' inline images, ~150 KB as base64, are the tightest limit): a larger PNG is drawn
  again at a lower dpi, a deterministic step too.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable
from typing import Any

from domain.cards import IMAGE_MAX_BYTES, ReplyImage
from domain.metrics_chart import Bar, MetricsChart, Segment, duration_unit, scaled

WIDTH_IN = 10.0
HEIGHT_IN = 7.5
DPI = 100
"""1000 × 750 px: readable in a chat pane, ~60 KB."""
SEGMENTS_HEIGHT_IN = 3.5
"""The row by persona and by lead source, below the four panels when the chart has it."""
_MIN_DPI = 40

_STYLE: dict[str, Any] = {
    "font.family": ["DejaVu Sans"],
    "font.size": 10.0,
    "axes.titlesize": 11.0,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "svg.hashsalt": "salesbot",
}
COLORS = {
    "bar": "#1f3a5f",
    "won": "#2e7d32",
    "lost": "#c62828",
    "abandoned": "#9e9e9e",
    "open": "#1565c0",
    "reason": "#ef9a9a",
    "Wilson": "#1f3a5f",
    "Jeffreys": "#ef6c00",
    "warning": "#b71c1c",
    "hot": "#c62828",
    "warm": "#ef6c00",
    "cold": "#1565c0",
}

_LOCK = threading.Lock()
"""matplotlib's rcParams are global: one chart is drawn at a time."""


def render_png(chart: MetricsChart, *, dpi: int = DPI) -> bytes:
    """The chart as PNG bytes, byte-identical for equal charts (the module docstring)."""
    return render_figure(lambda figure: _draw(figure, chart), WIDTH_IN, height_in(chart), dpi)


def render_figure(
    draw: Callable[[Any], None], width_in: float, height_in: float, dpi: int = DPI
) -> bytes:
    """PNG bytes of whatever `draw(figure)` draws, under the deterministic settings of the
    module docstring (the report's other pictures are drawn through this too)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Typed Any: rc_context's stubs take literal keys only; these are rcParamsDefault's own.
    style: Any = {
        k: v for k, v in matplotlib.rcParamsDefault.items() if not k.startswith("backend")
    }
    style.update(_STYLE)
    with _LOCK, matplotlib.rc_context(rc=style):
        figure = Figure(figsize=(width_in, height_in), dpi=dpi)
        FigureCanvasAgg(figure)
        draw(figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def height_in(chart: MetricsChart) -> float:
    """The picture's height: the four panels, and the segments' row when there is one."""
    return HEIGHT_IN + (SEGMENTS_HEIGHT_IN if chart.segments else 0.0)


def chart_image(chart: MetricsChart) -> ReplyImage:
    """The chart as a reply's image, at most `IMAGE_MAX_BYTES` (drawn again at a lower dpi
    while larger), named by its content (`salesbot-metrics-<sha-256 prefix>.png`): equal
    charts are one file wherever they are saved."""
    dpi = DPI
    png = render_png(chart, dpi=dpi)
    while len(png) > IMAGE_MAX_BYTES and dpi > _MIN_DPI:
        dpi = max(_MIN_DPI, dpi * 4 // 5)
        png = render_png(chart, dpi=dpi)
    return ReplyImage.of_png(
        png,
        filename=f"salesbot-metrics-{hashlib.sha256(png).hexdigest()[:12]}.png",
        alt=chart.alt_text,
        width=round(WIDTH_IN * dpi),
        height=round(height_in(chart) * dpi),
    )


def _draw(figure: Any, chart: MetricsChart) -> None:
    if chart.segments:
        # The same four panels in the top 7.5 inches, the segments' row below them.
        grid = figure.add_gridspec(
            3,
            2,
            left=0.17,
            right=0.97,
            top=0.93,
            bottom=0.14,
            hspace=0.55,
            wspace=0.45,
            height_ratios=(1.0, 1.0, 1.0),
        )
        for column, dimension in enumerate(("persona", "lead source")):
            _segments(
                figure.add_subplot(grid[2, column]),
                dimension,
                tuple(s for s in chart.segments if s.dimension == dimension),
            )
    else:
        grid = figure.add_gridspec(
            2, 2, left=0.17, right=0.97, top=0.9, bottom=0.12, hspace=0.45, wspace=0.45
        )
    figure.suptitle(chart.title, fontsize=14, fontweight="bold")
    _funnel(figure.add_subplot(grid[0, 0]), chart.funnel)
    _outcomes(figure.add_subplot(grid[0, 1]), chart)
    _conversion(figure.add_subplot(grid[1, 0]), chart)
    _time_to_qualify(figure.add_subplot(grid[1, 1]), chart)
    if chart.warning:
        figure.text(
            0.5,
            0.025,
            "⚠ " + chart.warning,
            ha="center",
            va="bottom",
            color=COLORS["warning"],
            fontsize=11,
            fontweight="bold",
            bbox={"boxstyle": "round", "facecolor": "#ffebee", "edgecolor": COLORS["warning"]},
        )


def _barh(axes: Any, bars: tuple[Bar, ...], colors: list[str]) -> None:
    positions = list(range(len(bars)))
    values = [bar.value for bar in bars]
    axes.barh(positions, values, color=colors)
    axes.set_yticks(positions, [bar.label for bar in bars])
    axes.invert_yaxis()
    top = max(values, default=0)
    axes.set_xlim(0, max(1, top) * 1.18)
    for position, value in zip(positions, values, strict=True):
        axes.text(value + max(1, top) * 0.02, position, str(value), va="center", fontsize=9)
    axes.xaxis.get_major_locator().set_params(integer=True)


def _funnel(axes: Any, bars: tuple[Bar, ...]) -> None:
    axes.set_title("Funnel (conversations)")
    colors = [COLORS["won"] if bar.label == "won" else COLORS["bar"] for bar in bars]
    _barh(axes, bars, colors)


def _outcomes(axes: Any, chart: MetricsChart) -> None:
    """Engaged outcomes, then one bar per lost reason (indented under "lost")."""
    axes.set_title("Engaged outcomes" + (" and why deals were lost" if chart.lost_reasons else ""))
    bars = list(chart.outcomes) + [
        Bar(label=f"lost: {reason.label}", value=reason.value) for reason in chart.lost_reasons
    ]
    colors = [COLORS.get(bar.label, COLORS["reason"]) for bar in bars]
    _barh(axes, tuple(bars), colors)


def _conversion(axes: Any, chart: MetricsChart) -> None:
    axes.set_title(f"Conversion: {chart.won} won of {chart.engaged} engaged")
    axes.set_ylim(0, 1)
    axes.set_ylabel("won / engaged")
    axes.yaxis.set_major_formatter("{x:.0%}")
    if not chart.conversion:
        axes.set_xticks([])
        axes.text(0.5, 0.5, "no engaged conversations yet", ha="center", transform=axes.transAxes)
        return
    positions = list(range(len(chart.conversion)))
    for position, estimate in zip(positions, chart.conversion, strict=True):
        low, high = estimate.interval.low, estimate.interval.high
        axes.errorbar(
            [position],
            [estimate.rate],
            yerr=[[max(0.0, estimate.rate - low)], [max(0.0, high - estimate.rate)]],
            fmt="o",
            capsize=8,
            markersize=8,
            color=COLORS[estimate.method],
        )
        axes.text(position + 0.08, high, f"{low:.0%}–{high:.0%}", va="bottom", fontsize=9)
    axes.set_xticks(positions, [f"{e.method} 95%" for e in chart.conversion])
    axes.set_xlim(-0.6, len(positions) - 0.4)
    rate = chart.conversion[0].rate
    axes.axhline(rate, color="#bbbbbb", linewidth=0.8, linestyle="--", zorder=0)


def _time_to_qualify(axes: Any, chart: MetricsChart) -> None:
    axes.set_title(f"Time to qualify (n={chart.qualified})")
    if not chart.time_to_qualify:
        axes.set_xticks([])
        axes.set_yticks([])
        axes.text(0.5, 0.5, "no qualified conversations yet", ha="center", transform=axes.transAxes)
        return
    top = max(max(d.ms, *(d.interval_ms or (0, 0))) for d in chart.time_to_qualify)
    unit, size = duration_unit(top)
    positions = list(range(len(chart.time_to_qualify)))
    heights = [scaled(d.ms, size) for d in chart.time_to_qualify]
    axes.bar(positions, heights, color=COLORS["bar"], width=0.5)
    for position, duration, height in zip(positions, chart.time_to_qualify, heights, strict=True):
        if duration.interval_ms is not None:
            low, high = (scaled(v, size) for v in duration.interval_ms)
            axes.errorbar(
                [position],
                [height],
                yerr=[[max(0.0, height - low)], [max(0.0, high - height)]],
                fmt="none",
                capsize=8,
                color=COLORS["Jeffreys"],
            )
        axes.text(position + 0.28, height, f"{height:.1f}", va="center", fontsize=9)
    labels = [
        d.label + ("\n(bootstrap 95%)" if d.interval_ms is not None else "")
        for d in chart.time_to_qualify
    ]
    axes.set_xticks(positions, labels)
    axes.set_ylabel(unit)
    axes.set_ylim(0, scaled(top, size) * 1.15 or 1)


def _segments(axes: Any, dimension: str, segments: tuple[Segment, ...]) -> None:
    """Conversion per group: the rate with its Wilson (above) and Jeffreys (below) 95 %
    intervals, one row per group labelled with its won of engaged."""
    axes.set_title(f"Conversion by {dimension}")
    axes.set_xlim(0, 1)
    axes.xaxis.set_major_formatter("{x:.0%}")
    axes.set_xlabel("won / engaged")
    if not segments:
        axes.set_yticks([])
        axes.text(0.5, 0.5, "no engaged conversations yet", ha="center", transform=axes.transAxes)
        return
    positions = list(range(len(segments)))
    for position, segment in zip(positions, segments, strict=True):
        if segment.rate is None:
            continue
        for offset, method, interval in (
            (-0.15, "Wilson", segment.wilson_95),
            (0.15, "Jeffreys", segment.jeffreys_95),
        ):
            if interval is None:
                continue
            axes.errorbar(
                [segment.rate],
                [position + offset],
                xerr=[
                    [max(0.0, segment.rate - interval.low)],
                    [max(0.0, interval.high - segment.rate)],
                ],
                fmt="o",
                capsize=4,
                markersize=5,
                color=COLORS[method],
                label=f"{method} 95%" if position == 0 else None,
            )
    axes.set_yticks(
        positions, [f"{_short(s.label)} ({s.won}/{s.engaged})" for s in segments], fontsize=9
    )
    axes.set_ylim(len(segments) - 0.5, -0.5)
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=2, fontsize=8, frameon=False)


def _short(label: str, limit: int = 18) -> str:
    """A group's name as a tick label: long names (a lead source is free text) cut short."""
    return label if len(label) <= limit else label[: limit - 1] + "…"
