"""`salesbot audit` as an auditor runs it: the summary first, the decisions in plain words,
`--detail` for the engineering, `--json` numbers valid against the exported schema — on
this release's store and on every earlier release's."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from domain import GENERATOR
from tests.bot.seeded_store import seeded_store_file
from tests.support.cli import run
from tests.support.schemas import assert_valid, schema

STORES = sorted((Path(__file__).parents[1] / "fixtures" / "stores").glob("release-*.db"))
CFO = "I'm the CFO, $40k is approved and we want to sign before the end of the quarter."


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    return seeded_store_file(tmp_path, monkeypatch, CFO)[1]


def test_the_audit_opens_with_the_summary_and_lists_decisions_in_plain_words(store: str) -> None:
    code, out, _ = run("audit", "lead-1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Audit of conversation lead-1"
    assert [line.split(":", 1)[0] for line in lines[1:7]] == [
        "Who",
        "Owner",  # the default policy's `[routing]` gave the lead an owner
        "When",
        "Outcome",
        "State",
        "Score",
    ]
    assert lines[1] == "Who: Pat Lee (Acme), on Lead feed"
    # The recorded policy's calibration gives the hot probability of the current score.
    assert lines[6].startswith(
        "Score: 8.99 — hot, qualified (probability hot 0.99): authority +1.23"
    )
    assert f"  {store}: 10 × Pro seat (annual, per user), 10% off, total 1,791.00 USD" in out
    assert sum(line.startswith("Decisions (") for line in lines) == 1
    assert "lead_scored" not in out
    assert "U_pen" not in out
    assert "lex:" not in out


def test_detail_adds_the_engineering_section(store: str) -> None:
    code, out, _ = run("audit", "lead-1", "--detail")
    assert code == 0
    plain, detail = out.split("Engineering detail (event types, formulas, policy hashes):\n")
    assert "lead_scored" not in plain
    assert "lead_scored: Lead scored 8.99412 → hot, qualified" in detail
    assert "U_pen = max(0, U − λ·C_U)" in detail


def test_the_json_audit_holds_numbers_and_validates_against_its_schema(store: str) -> None:
    code, out, _ = run("audit", "lead-1", "--json")
    assert code == 0
    report: dict[str, Any] = json.loads(out)
    assert_valid("audit", report)
    assert report["schema_version"] == schema("audit")["x-schema-version"] == 2
    assert report["generator_version"] == GENERATOR
    assert "generator" not in report
    summary = report["summary"]
    assert summary["first_message_ms"] == 1_790_000_001_000
    score = summary["score"]
    assert isinstance(score["score"], float)
    assert isinstance(score["hot_probability"], float)
    assert [r["contribution"] for r in score["reasons"]] == [1.2321, 1.128964, 1.052798]
    assert sum(r["contribution"] for r in score["reasons"]) + score["rest"] == pytest.approx(
        score["score"], abs=1e-9
    )
    (quote,) = summary["quotes"]
    assert (quote["quote_id"], quote["total_cents"], quote["discount_cents"]) == (
        store,
        179100,
        19900,
    )
    scored = next(e for e in report["entries"] if e["type"] == "lead_scored")
    assert isinstance(scored["at_ms"], int)
    assert "at" not in scored
    assert scored["event"]["score"]["contributions"]["lex:authority"] == 1.2321
    assert scored["plain"].startswith("Scored 9.06 — hot, qualified (probability hot 0.99)")


def test_a_quote_s_audit_names_its_conversation_and_validates(store: str) -> None:
    code, out, _ = run("audit", store)
    assert code == 0
    assert out.splitlines()[:2] == [f"Audit of quote {store}", "Conversation: lead-1"]
    code, out, _ = run("audit", store, "--json")
    assert_valid("audit", json.loads(out))


@pytest.mark.parametrize("fixture", STORES, ids=[path.stem for path in STORES])
def test_every_conversation_of_an_earlier_release_is_still_audited(
    fixture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "store.db"
    shutil.copy(fixture, db)
    monkeypatch.setenv("SALESBOT_DB", str(db))
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)
    with sqlite3.connect(db) as conn:
        ids = [row[0] for row in conn.execute("SELECT DISTINCT conversation_id FROM events")]
    assert ids
    scored = 0
    for conversation_id in ids:
        code, out, err = run("audit", conversation_id)
        assert (code, err) == (0, ""), conversation_id
        assert out.splitlines()[1].startswith("Who: ")
        code, out, err = run("audit", conversation_id, "--json")
        report = json.loads(out)
        assert_valid("audit", report)
        if report["summary"]["score"] is not None:
            scored += 1
            score = report["summary"]["score"]
            total = sum(r["contribution"] for r in score["reasons"]) + score["rest"]
            assert total == pytest.approx(score["score"], abs=1e-9)
    assert scored > 0
