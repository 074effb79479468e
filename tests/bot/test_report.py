"""`salesbot report` on the seeded store (tests/bot/seeded_store.py): its numbers against
figures worked out by hand from that store, the window, the command line's errors, escaping
of prospects' text, the page being self-contained and byte-identical run after run, and the
report without Graphviz."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot import report
from bot.cli import main
from bot.clock import parse_iso_ms
from bot.policy_loader import load_policy
from bot.report_html import SECTIONS
from bot.runtime import Runtime
from domain import GENERATOR
from domain.inbound import LeadArrived, LeadDetails, MessagePosted
from storage.sqlite import SqliteStore
from tests.bot.seeded_store import LEAD, PROSPECT, VISITOR, OneChannel, seeded_store_file
from tests.support.cli import run
from tests.support.schemas import assert_valid

LEAD_AT = 1_790_000_001_000
"""When the seeded lead arrived (its second message is a second later, the quote a third)."""
VISITOR_AT = 1_790_000_004_000


def iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path, _quote = seeded_store_file(tmp_path, monkeypatch)
    return path


def report_json(out: Path, *window: str) -> dict[str, Any]:
    code, stdout, stderr = run("report", "--out", str(out), "--json", *window)
    assert (code, stderr) == (0, "")
    found: dict[str, Any] = json.loads(stdout)
    return found


def test_the_report_data_of_the_seeded_store_matches_the_figures_by_hand(
    store: Path, tmp_path: Path
) -> None:
    data = report_json(tmp_path / "out")
    assert_valid("report", data)
    policy = load_policy("default")
    assert (data["schema_version"], data["generator_version"]) == (1, GENERATOR)
    assert (data["store"], data["policy_name"], data["policy_version"]) == (
        str(store),
        "default",
        policy.version,
    )
    assert (data["conversations"], data["leads"]) == (2, 1)  # the lead and the visitor
    assert data["as_of_ms"] == VISITOR_AT
    # Latest scores: the lead is hot after "I am the CTO", the visitor cold.
    assert [(b["band"], b["leads"], b["share"]) for b in data["bands"]] == [
        ("hot", 1, 0.5),
        ("warm", 0, 0.0),
        ("cold", 1, 0.5),
    ]
    # Scores 5.080504 and −1.286663: bins of width 1 from −2 to 6.
    bins = data["score_bins"]
    assert (bins[0]["low"], bins[-1]["high"], len(bins)) == ("-2", "6", 8)
    assert (bins[0]["cold"], bins[-1]["hot"]) == (1, 1)
    # lex:budget weighs 0.809732 and both latest scores have it ("budget is $5000", "no
    # budget"); lex:browsing (−1.583012) only the visitor's.
    top = data["contributions"]["positive"][0]
    assert (top["feature"], Decimal(top["total"]), top["leads"]) == (
        "lex:budget",
        Decimal("1.619464"),
        2,
    )
    bottom = data["contributions"]["negative"][0]
    assert (bottom["feature"], Decimal(bottom["total"])) == ("lex:browsing", Decimal("-1.583012"))
    # The visitor's "no budget" is read as a price objection, not escalated.
    assert [
        (o["objection"], o["messages"], o["escalated"], o["escalation_rate"])
        for o in data["objections"]
    ] == [("price", 1, 0, 0.0)]
    assert data["tickets"] == []
    # The lead's narrative: urgency 0.8, credit 580 < c0 600 → 0.8 − 0.8 × 0.8 = 0.16.
    points = [
        (
            p["key"],
            p["conversation_id"],
            p["company"],
            p["resonance"],
            p["raw_urgency"],
            p["penalized_urgency"],
            p["reason_code"],
        )
        for p in data["narrative"]
    ]
    assert points == [
        ("c1", LEAD, "Acme", "0.1", "0.8", "0.16", "credit_below_threshold"),
        ("c2", VISITOR, "", "0", "0", "0", "credit_unknown"),
    ]
    # Hot with urgency 0.8 ≥ 0.5 would be pursued now; with 0.16 it is not.
    fairness = data["fairness"]
    hot = fairness["by_band"][0]
    assert (hot["group"], hot["leads"], hot["pursued_without_penalty"]) == ("hot", 1, 1)
    assert (hot["pursued_with_penalty"], hot["moved_out"], hot["mean_urgency_change"]) == (
        0,
        1,
        "-0.6400",
    )
    assert (fairness["credit_groups"]["below"], fairness["credit_groups"]["flagged"]) == (1, False)
    # The flow: both started; the lead was greeted, then moved to proposal by "I am the
    # CTO" and stayed there on its quote; the visitor went straight to objection.
    taken = {
        (e["source"], e["to"], e["label"]): e["conversations"]
        for e in data["flow"]["edges"]
        if e["taken"]
    }
    assert data["flow"]["started"] == 2
    assert taken == {
        ("start", "greeting", "prospect_message"): 1,
        ("start", "objection", "prospect_message [is_objection]"): 1,
        ("greeting", "proposal", "prospect_message [is_buying]"): 1,
        ("proposal", "proposal", "quote_issued"): 1,
    }
    # Conversion by persona (the default policy's "salespro") and by lead source.
    assert [
        (s["dimension"], s["label"], s["won"], s["engaged"]) for s in data["chart"]["segments"]
    ] == [
        ("persona", "salespro", 0, 2),
        ("lead source", "not a lead", 0, 1),
        ("lead source", "unknown", 0, 1),
    ]


def test_the_window_keeps_conversations_started_in_it_and_their_events_before_its_end(
    store: Path, tmp_path: Path
) -> None:
    late = report_json(tmp_path / "a", "--since", iso(LEAD_AT + 500))
    assert (late["conversations"], late["leads"], late["since_ms"]) == (1, 0, LEAD_AT + 500)
    # Until half a second after the lead arrived: only its first message counts, so its
    # latest score is the first one (warm), and it had not moved past greeting.
    early = report_json(tmp_path / "b", "--until", iso(LEAD_AT + 500))
    assert (early["conversations"], early["until_ms"]) == (1, LEAD_AT + 500)
    assert [b["leads"] for b in early["bands"]] == [0, 1, 0]
    assert {(e["source"], e["to"]) for e in early["flow"]["edges"] if e["taken"]} == {
        ("start", "greeting")
    }
    html = (tmp_path / "b" / "report.html").read_text(encoding="utf-8")
    assert "conversations started from the beginning until 2026-09-21T14:13:21.500000Z" in html


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--since", "last tuesday"],
            "salesbot: error: --since 'last tuesday' is not an ISO 8601 date or time "
            "(e.g. 2026-11-01 or 2026-11-01T09:00:00Z)\n",
        ),
        (
            ["--until", "2026-13-45"],
            "salesbot: error: --until '2026-13-45' is not an ISO 8601 date or time "
            "(e.g. 2026-11-01 or 2026-11-01T09:00:00Z)\n",
        ),
        (
            ["--since", "2026-11-02", "--until", "2026-11-01"],
            "salesbot: error: --until '2026-11-01' must be later than --since '2026-11-02'\n",
        ),
    ],
)
def test_a_bad_window_is_one_line_exit_2_and_nothing_written(
    store: Path, tmp_path: Path, argv: list[str], message: str
) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = run("report", "--out", str(out), *argv)
    assert (code, stdout, stderr) == (2, "", message)
    assert not out.exists()


def test_no_store_or_an_out_that_is_a_file_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESBOT_DB", str(tmp_path / "missing.db"))
    code, _, stderr = run("report", "--out", str(tmp_path / "out"))
    assert (code, stderr) == (
        2,
        f"salesbot: error: no store at {tmp_path / 'missing.db'} (set SALESBOT_DB)\n",
    )
    assert not (tmp_path / "missing.db").exists()  # not created by asking
    (tmp_path / "file").write_text("x")
    code, _, stderr = run("report", "--out", str(tmp_path / "file"))
    assert (code, stderr) == (
        2,
        f"salesbot: error: --out '{tmp_path / 'file'}' is a file, not a directory\n",
    )


def test_the_page_is_self_contained_and_the_same_bytes_every_run(
    store: Path, tmp_path: Path
) -> None:
    code, stdout, stderr = run("report", "--out", str(tmp_path / "one"))
    assert (code, stderr) == (0, "")
    assert (
        stdout
        == f"wrote {tmp_path / 'one' / 'report.html'} (2 conversations, 1 leads; policy default)\n"
    )
    assert run("report", "--out", str(tmp_path / "two"))[0] == 0
    first = (tmp_path / "one" / "report.html").read_bytes()
    assert first == (tmp_path / "two" / "report.html").read_bytes()
    # Written atomically: the page and nothing else (no temporary file left), for its owner.
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["report.html"]
    assert (tmp_path / "one" / "report.html").stat().st_mode & 0o077 == 0
    html = first.decode("utf-8")
    # Every image is a data: URI with alt text; nothing refers outside the page.
    images = re.findall(r"<img ([^>]*)>", html)
    assert len(images) == 7  # metrics, scores, drivers, objections, narrative, fairness, flow
    for attributes in images:
        assert re.search(r'src="data:image/(png|svg\+xml);base64,[A-Za-z0-9+/=]+"', attributes)
        assert re.search(r'alt="[^"]{20,}"', attributes)
    assert not re.search(r"(src|href)=\"(?!data:|#)", html)
    assert "<script" not in html
    assert "<link" not in html
    assert "@import" not in html
    for section, _title in SECTIONS:
        assert f'<section id="{section}">' in html
    header = html.split("</header>")[0]
    for value in (str(store), load_policy("default").version, GENERATOR, "Report schema"):
        assert value in header


async def seed_hostile(path: Path) -> None:
    """A lead whose company, source and message carry markup."""
    ticks = itertools.count()
    async with await SqliteStore.open(path) as store:
        runtime = Runtime(
            store,
            load_policy("default"),
            OneChannel(),
            clock=lambda: 1_790_000_000_000 + 1000 * next(ticks),
        )
        await runtime.start()
        lead = LeadDetails(
            name="<b>Mallory</b>",
            company="<script>alert(1)</script> & Co",
            source='<img src=x onerror="alert(2)">',
            message="We need this urgently, budget is $5000",
            credit_score=580,
        )
        await runtime.handle(
            LeadArrived(delivery_id="l1", conversation_id="lead-x", actor=PROSPECT, lead=lead)
        )
        await runtime.handle(
            MessagePosted(
                delivery_id="m1", conversation_id="lead-x", actor=PROSPECT, text="I am the CTO"
            )
        )
        await runtime.settled()


def test_prospect_text_is_escaped_everywhere_on_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "hostile.db"
    monkeypatch.setenv("SALESBOT_DB", str(path))
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)
    asyncio.run(seed_hostile(path))
    code, _, stderr = run("report", "--out", str(tmp_path / "out"))
    assert (code, stderr) == (0, "")
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html  # the company, in the table
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in html  # the lead source
    # The page's own policy forbids scripts even if something slipped through.
    assert "default-src 'none'" in html


def test_without_graphviz_the_report_is_written_and_says_why_in_one_line(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    code, stdout, stderr = run("report", "--out", str(tmp_path / "out"))
    assert code == 0
    assert stdout.startswith("wrote ")
    assert stderr == (
        "salesbot: warning: the flow diagram needs Graphviz's `dot` (Debian: apt-get install "
        "graphviz; `make test` installs it); the rest of the report was written\n"
    )
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    flow = html.split('<section id="flow">')[1]
    assert "the flow diagram needs Graphviz" in flow
    assert "<img" not in flow
    assert "prospect_message [is_buying]" in flow  # the traffic table is still there
    assert html.count("<img ") == 6


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_progress_bar_on_a_terminal_for_a_large_store_only(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    err = Terminal()
    assert main(["report", "--out", str(tmp_path / "a")], out=io.StringIO(), err=err) == 0
    assert err.getvalue() == ""  # 2 conversations: below the threshold
    monkeypatch.setattr(report, "PROGRESS_MIN", 2)
    err = Terminal()
    assert main(["report", "--out", str(tmp_path / "b")], out=io.StringIO(), err=err) == 0
    assert "reading conversations" in err.getvalue()
    assert "/2 [" in err.getvalue()  # tqdm's count of the store's conversations
    quiet = io.StringIO()  # not a terminal: no bar however large
    assert main(["report", "--out", str(tmp_path / "c")], out=io.StringIO(), err=quiet) == 0
    assert quiet.getvalue() == ""


def test_the_iso_window_bounds_are_utc_when_no_offset_is_given() -> None:
    assert parse_iso_ms("2026-11-01") == parse_iso_ms("2026-11-01T00:00:00Z")
