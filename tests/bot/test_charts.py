"""The /metrics chart as a PNG: the same data gives the same bytes (run after run, and the
golden hash below on any machine with the pinned matplotlib), it is drawn in a worker thread
so the event loop never waits for it, it follows the metrics card to the requester, and
`salesbot chat` saves it and prints where."""

from __future__ import annotations

import hashlib
import io
import re
import struct
import threading
from pathlib import Path

import pytest

from bot import charts
from bot.chart_files import ChartFolder
from bot.cli import main
from bot.policy_loader import load_policy
from bot.queries import CHART_TEXT, answer_query
from domain.analytics import metrics_from_counts
from domain.cards import IMAGE_MAX_BYTES, ReplyImage
from domain.decision import Query
from domain.metrics_chart import MetricsChart, metrics_chart
from storage.memory import MemoryStore
from tests.storage.scripted import SalesDay

MINUTE = 60_000
TIMES = [MINUTE * m for m in (3, 5, 8, 13, 21, 34, 55)]
GOLDEN_SHA256 = "d03098ad8edd3af2c9ef19f2f3702e953e6cae20675fdc89170658080bcd9440"
"""SHA-256 of `render_png(fixed_chart())` under the pinned matplotlib (constraints.txt).
A deliberate change to the drawing, or a matplotlib upgrade, updates it: look at the new
picture first (`python -m tests.bot.test_charts out.png` writes it)."""


def fixed_chart(**lost_reasons: int) -> MetricsChart:
    m = metrics_from_counts(
        conversations=12,
        engaged=10,
        won=3,
        lost=2,
        abandoned=1,
        still_open=4,
        qualification_ms=TIMES,
        funnel={"greeting": 12, "qualify": 9, "proposal": 5, "closed": 5},
        current={"greeting": 1, "qualify": 4, "proposal": 2, "closed": 5},
        meetings_requested=4,
    )
    if lost_reasons:
        m = m.model_copy(update={"lost_reasons": lost_reasons})
    return metrics_chart(m, TIMES)


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk comes first
    return width, height


def chunk_types(png: bytes) -> list[bytes]:
    types, at = [], 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        types.append(png[at + 4 : at + 8])
        at += 12 + length
    return types


def test_the_same_data_renders_to_the_same_bytes_and_the_golden_hash() -> None:
    first = charts.render_png(fixed_chart())
    second = charts.render_png(fixed_chart())
    assert first == second
    assert hashlib.sha256(first).hexdigest() == GOLDEN_SHA256
    assert png_size(first) == (1000, 750)
    # No time, software or text chunk that could differ between runs or machines.
    assert set(chunk_types(first)) <= {b"IHDR", b"pHYs", b"IDAT", b"IEND"}


def test_different_data_renders_a_different_picture() -> None:
    assert charts.render_png(fixed_chart()) != charts.render_png(fixed_chart(price=2))


def test_text_is_set_in_the_dejavu_sans_matplotlib_ships_not_a_system_copy() -> None:
    import matplotlib
    from matplotlib import font_manager

    found = Path(font_manager.findfont(font_manager.FontProperties(family=["DejaVu Sans"])))
    assert found.is_relative_to(Path(matplotlib.get_data_path()))


def test_the_picture_shows_the_warning_and_lost_reasons_when_there_are_some() -> None:
    """Drawn text is checked through the figure, not the pixels: every label is an artist."""
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    figure = Figure()
    charts._draw(figure, fixed_chart(price=1, timing=1))
    texts = [t.get_text() for t in figure.findobj(Text) if isinstance(t, Text)]
    labels = [t.get_text() for ax in figure.axes for t in ax.get_yticklabels()]
    assert any("Only 10 engaged conversations" in text for text in texts)
    assert {"lost: price", "lost: timing", "meeting requested", "won"} <= set(labels)


def test_a_reply_image_is_named_by_its_content_and_fits_every_platform() -> None:
    image = charts.chart_image(fixed_chart())
    assert image.png == charts.render_png(fixed_chart())
    assert image.filename == f"salesbot-metrics-{image.sha256[:12]}.png"
    assert len(image.png) <= IMAGE_MAX_BYTES
    assert (image.width, image.height) == (1000, 750)
    assert image.alt.startswith("Sales metrics chart: 3 won of 10 engaged")


def test_a_picture_too_large_is_drawn_again_at_a_lower_resolution(monkeypatch) -> None:
    drawn: list[int] = []
    real = charts.render_png

    def render(chart: MetricsChart, *, dpi: int = charts.DPI) -> bytes:
        drawn.append(dpi)
        png = real(chart, dpi=dpi)
        return png + b"\0" * 200_000 if dpi == charts.DPI else png

    monkeypatch.setattr(charts, "render_png", render)
    image = charts.chart_image(fixed_chart())
    assert drawn == [100, 80]
    assert png_size(image.png) == (800, 600) == (image.width, image.height)


async def test_metrics_answer_their_card_then_the_chart_drawn_off_the_event_loop(
    monkeypatch,
) -> None:
    store = MemoryStore()
    policy = load_policy("default")
    day = SalesDay(store, policy)
    await day.start()
    await day.run(conversations=4)
    threads: list[int] = []
    real = charts.chart_image

    def recording(chart: MetricsChart) -> ReplyImage:
        threads.append(threading.get_ident())
        return real(chart)

    monkeypatch.setattr(charts, "chart_image", recording)
    query = Query(kind="metrics", requested_by="U_REP")

    card, chart = await answer_query(query, store, policy)

    assert card.card is not None
    assert card.card.title == "Sales metrics"  # the card is unchanged and comes first
    assert card.image is None
    assert chart.audience == card.audience == "requester"
    assert chart.text == CHART_TEXT
    assert chart.image is not None
    # The day's conversations add the row by persona and by lead source (1000 × 1100 at
    # full size; drawn again smaller when that is over the platforms' image limit).
    assert png_size(chart.image.png) == (chart.image.width, chart.image.height)
    assert chart.image.width * 1100 == chart.image.height * 1000
    assert len(chart.image.png) <= IMAGE_MAX_BYTES
    assert "by persona: salespro" in chart.image.alt
    assert "by lead source:" in chart.image.alt
    # Drawn in a worker thread: the loop (this coroutine's thread) was free meanwhile.
    assert len(threads) == 1
    assert threads[0] != threading.get_ident()


async def test_a_chart_that_cannot_be_drawn_leaves_the_card_to_answer_alone(
    monkeypatch, caplog
) -> None:
    def broken(chart: MetricsChart) -> ReplyImage:
        raise RuntimeError("no fonts today")

    monkeypatch.setattr(charts, "chart_image", broken)
    replies = await answer_query(
        Query(kind="metrics", requested_by="U_REP"), MemoryStore(), load_policy("default")
    )
    assert [r.card.title if r.card else None for r in replies] == ["Sales metrics"]
    assert "the metrics chart could not be drawn" in caplog.text


def test_salesbot_chat_saves_the_chart_and_prints_its_path_on_the_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)
    monkeypatch.setenv("SALESBOT_DB", str(tmp_path / "chat.db"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    out, err = io.StringIO(), io.StringIO()
    code = main(["chat", "--memory"], out=out, err=err, stdin=["/as rep\n", "/metrics\n"])
    assert code == 0, err.getvalue()
    lines = out.getvalue().splitlines()
    [line] = [line for line in lines if line.startswith(f"bot → you> {CHART_TEXT}: ")]
    path = Path(line.removeprefix(f"bot → you> {CHART_TEXT}: "))
    assert re.fullmatch(r"salesbot-charts-[^/]+", path.parent.name)
    assert path.parent.parent == tmp_path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.name == f"salesbot-metrics-{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}.png"
    # The card came first, as before.
    assert lines.index(line) > next(i for i, text in enumerate(lines) if "┌ Sales metrics" in text)


def test_a_chart_folder_is_private_to_its_user(tmp_path: Path) -> None:
    folder = ChartFolder(tmp_path)
    path = folder.save(charts.chart_image(fixed_chart()))
    assert folder.directory == path.parent
    assert path.parent.stat().st_mode & 0o077 == 0


if __name__ == "__main__":
    import sys

    Path(sys.argv[1]).write_bytes(charts.render_png(fixed_chart()))
    print(hashlib.sha256(charts.render_png(fixed_chart())).hexdigest())


def test_the_row_by_persona_and_lead_source_is_drawn_the_same_every_time() -> None:
    from domain.metrics_chart import Segment

    segments = (
        Segment.of("persona", "salespro", 3, 8),
        Segment.of("lead source", "web", 2, 5),
        Segment.of("lead source", "a very long partner referral source name", 1, 5),
    )
    chart = fixed_chart().model_copy(update={"segments": segments})
    first = charts.render_png(chart)
    assert first == charts.render_png(chart)
    assert png_size(first) == (1000, 1100)  # the four panels, then the segments' row
    assert first != charts.render_png(fixed_chart())
    other = chart.model_copy(
        update={"segments": (*segments[:2], Segment.of("lead source", "web", 3, 5))}
    )
    assert charts.render_png(other) != first
