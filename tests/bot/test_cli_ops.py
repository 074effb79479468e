"""`salesbot replay` and `salesbot audit` against a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

import pytest

from domain import GENERATOR
from storage.sqlite import SqliteStore
from tests.bot.seeded_store import seed, seeded_store_file
from tests.support.cli import run

BUYER = "We have a $5000 budget and want to start next month"


def _seed(path: Path) -> str:
    """Two conversations through the real runtime; returns the quote id issued."""
    return asyncio.run(seed(path, BUYER))


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    return seeded_store_file(tmp_path, monkeypatch, BUYER)[1]


def test_replay_under_the_recorded_policies_finds_no_differences(seeded: str) -> None:
    code, out, _ = run("replay", "--json", "--fail-on-diff")
    assert code == 0
    assert json.loads(out) == {
        "conversations": 2,
        "inbounds": 4,
        "differences": 0,
        "diffs": [],
        "erased": [],
        "rederived": 0,
        "schema_version": 1,
        "generator_version": GENERATOR,
    }


def test_replay_with_a_stricter_policy_lists_what_would_change(seeded: str, tmp_path: Path) -> None:
    stricter = tmp_path / "stricter.toml"
    stricter.write_text(
        'extends = "default"\nunderstanding = false\n[scoring.bands]\nhot = 0.95\nwarm = 0.5\n',
        encoding="utf-8",
    )
    code, out, _ = run("replay", "--policy", str(stricter), "--json", "--fail-on-diff")
    assert code == 1
    report = json.loads(out)
    assert report["differences"] > 0
    aspects = {d["aspect"] for d in report["diffs"] if d["conversation_id"] == "lead-1"}
    assert {"score", "state"} <= aspects


def test_audit_explains_a_conversation_to_the_feature(seeded: str) -> None:
    code, out, _ = run("audit", "lead-1", "--detail")
    assert code == 0
    assert re.search(r"lex:budget: [0-9.]+ × 1 = [0-9.]+", out)
    assert "penalized (credit 580 < 600)" in out
    assert "subtotal = 10 × 199.00" in out


def test_audit_finds_a_quote_by_its_id(seeded: str) -> None:
    code, out, _ = run("audit", seeded, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["kind"] == "quote"
    assert report["conversation_id"] == "lead-1"


def test_audit_of_an_unknown_id_is_a_clear_error(seeded: str) -> None:
    code, out, err = run("audit", "nope-42")
    assert code == 2
    assert out == ""
    assert "No conversation, lead or quote with id 'nope-42'" in err


def test_a_corrupt_database_file_is_refused_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "broken.db"
    path.write_bytes(b"this is not a database" * 100)
    monkeypatch.setenv("SALESBOT_DB", str(path))
    code, _, err = run("replay")
    assert code == 2
    assert "broken.db" in err
    assert "Traceback" not in err


def test_metrics_counts_engaged_conversations_and_warns_about_the_small_sample(seeded: str) -> None:
    code, out, _ = run("metrics", "--json")
    assert code == 0
    metrics = json.loads(out)
    assert metrics["conversations"] == 2
    assert metrics["engaged"] == 2
    assert metrics["won"] == 0
    assert metrics["conversion_rate"] == 0.0
    assert metrics["funnel"]["proposal"] == 1
    assert "treat the rates as rough" in metrics["small_sample_warning"]
    code, text, _ = run("metrics")
    assert "Conversion 0/2 = 0.0%" in text


def test_metrics_count_one_installation_s_conversations(seeded: str) -> None:
    """The seeded conversations are the first installation's: asked by name they are the
    same two; another installation has none of them."""
    code, out, _ = run("metrics", "--json", "--installation", "first")
    assert code == 0
    assert json.loads(out)["conversations"] == 2
    code, out, _ = run("metrics", "--json", "--installation", "slack:T0404")
    assert code == 0
    assert (json.loads(out)["conversations"], json.loads(out)["engaged"]) == (0, 0)


def test_a_database_from_a_newer_salesbot_is_refused_and_left_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    path = tmp_path / "future.db"
    _seed(path)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    before = path.read_bytes()
    monkeypatch.setenv("SALESBOT_DB", str(path))
    code, out, err = run("metrics")
    assert code == 2
    assert out == ""
    assert "newer" in err
    assert "99" in err
    assert path.read_bytes() == before


def test_an_audit_from_the_command_line_is_itself_recorded(seeded: str) -> None:
    from domain.events import AuditRequested

    async def audits() -> list[AuditRequested]:
        store = await SqliteStore.open(Path(os.environ["SALESBOT_DB"]))
        try:
            return [
                e.event for e in await store.load("lead-1") if isinstance(e.event, AuditRequested)
            ]
        finally:
            await store.close()

    assert asyncio.run(audits()) == []
    assert run("audit", "lead-1")[0] == 0
    (recorded,) = asyncio.run(audits())
    assert recorded.by.startswith("cli:")
    assert recorded.target == "lead-1"
    code, _, _ = run("replay", "--fail-on-diff")
    assert code == 0  # the access is an ordinary, replayable decision
