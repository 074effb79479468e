"""`salesbot verify` on the live store: an untouched store verifies clean; a stored event
edited by hand — the fairness penalty removed — which replay and audit do not notice, fails
with exit 1 naming the conversation and the event; so do a removed event and an edited
inbound. An erasure is a valid link."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest

from bot.cli import main
from tests.bot.seeded_store import (
    LEAD,
    VISITOR,
    edit_event,
    event_of,
    rows,
    seeded_store_file,
)
from tests.support.cli import run
from tests.support.schemas import assert_valid


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return seeded_store_file(tmp_path, monkeypatch)[0]


def test_an_untouched_store_verifies_clean(db: Path) -> None:
    code, out, err = run("verify")
    assert (code, err) == (0, "")
    assert out == (
        "verified the store: 2 conversations, 27 events, 4 inbounds: every chain holds, "
        "every decision replays\n"
    )
    code, out, _ = run("verify", "--json")
    report = json.loads(out)
    assert_valid("verify", report)
    assert (code, report["problems"], report["findings"]) == (0, 0, [])
    heads = rows(
        db,
        "SELECT conversation_id, seq, chain_hash FROM events e WHERE seq = "
        "(SELECT MAX(seq) FROM events WHERE conversation_id = e.conversation_id)",
    )
    assert report["heads"] == {cid: {"seq": seq, "hash": chain} for cid, seq, chain in heads}


def test_the_fairness_penalty_removed_by_hand_fails_verify_where_replay_sees_nothing(
    db: Path,
) -> None:
    seq, envelope = event_of(db, LEAD, "narrative_assessed")
    audit = envelope["event"]["audit"]
    assert (audit["raw_urgency"], audit["penalized_urgency"]) == ("0.8", "0.16")
    audit.update(
        penalized_urgency=audit["raw_urgency"], reason="no penalty", reason_code="no_penalty"
    )
    edit_event(db, LEAD, seq, envelope)

    # What the issue found: replay re-decides the inbounds and compares the decisions it
    # shows; the stored assessment is not one of them.
    assert run("replay", "--fail-on-diff")[0] == 0
    code, out, err = run("verify")
    assert (code, err) == (1, "")
    first, summary = out.splitlines()
    assert first.startswith(f"{LEAD} seq {seq}: content hash mismatch: ")
    assert summary.endswith(": 1 problem")
    report = json.loads(run("verify", "--json")[1])
    assert_valid("verify", report)
    assert [(f["conversation_id"], f["seq"], f["problem"]) for f in report["findings"]] == [
        (LEAD, seq, "content hash mismatch")
    ]


def test_a_score_edited_by_hand_is_reported_at_its_event_once(db: Path) -> None:
    seq, envelope = event_of(db, LEAD, "lead_scored")
    envelope["event"]["score"]["band"] = "cold"
    edit_event(db, LEAD, seq, envelope)
    code, out, _ = run("verify")
    assert code == 1
    assert out.splitlines()[0].startswith(f"{LEAD} seq {seq}: content hash mismatch: ")
    assert len(out.splitlines()) == 2  # one line for the conversation, then the summary


def test_an_event_deleted_from_the_middle_is_a_missing_link(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM events WHERE conversation_id = ? AND seq = 3", (LEAD,))
    code, out, _ = run("verify")
    assert code == 1
    assert out.splitlines()[0] == (
        f"{LEAD} seq 3: missing link: seq 3 is not stored; the next stored event is seq 4"
    )


def test_the_last_event_deleted_is_a_missing_link(db: Path) -> None:
    (last,) = rows(db, "SELECT MAX(seq) FROM events WHERE conversation_id = ?", (VISITOR,))[0]
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM events WHERE conversation_id = ? AND seq = ?", (VISITOR, last))
    code, out, _ = run("verify")
    assert code == 1
    assert out.splitlines()[0] == (
        f"{VISITOR} seq {last}: missing link: the stream is at seq {last} but its stored "
        f"events stop at seq {last - 1}"
    )


def test_an_inbound_edited_by_hand_is_a_replay_difference(db: Path) -> None:
    # The rep's quote command, rewritten from 10% to 30%: the stored quote no longer
    # follows from what was asked.
    (position, inbound) = rows(
        db,
        "SELECT position, inbound FROM inbounds WHERE conversation_id = ? AND delivery_id = 'q1'",
        (LEAD,),
    )[0]
    changed = json.loads(inbound)
    assert changed["args"] == "10 pro 10%"
    changed["args"] = "10 pro 30%"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE inbounds SET inbound = ? WHERE delivery_id = 'q1'", (json.dumps(changed),)
        )
    (seq,) = rows(
        db, "SELECT MIN(seq) FROM events WHERE conversation_id = ? AND delivery_id = 'q1'", (LEAD,)
    )[0]
    code, out, _ = run("verify")
    assert code == 1
    (line, _summary) = out.splitlines()
    assert line.startswith(
        f"{LEAD} seq {seq} (inbound #{position}): replay difference: reply recorded 'Here is quote"
    )


def test_an_erasure_is_a_valid_link_and_its_conversation_is_verified_by_its_chain(
    db: Path,
) -> None:
    (last,) = rows(db, "SELECT version FROM streams WHERE conversation_id = ?", (VISITOR,))[0]
    code, out, _ = run("erase", VISITOR, "--by", "dpo@example.org")
    assert code == 0, out
    code, out, _ = run("verify")
    assert code == 0, out
    assert "; 1 conversation with an erasure: " in out
    assert out.rstrip().endswith(" re-derived from recorded features")
    report = json.loads(run("verify", "--json")[1])
    assert report["replay_skipped"] == [VISITOR]
    assert report["heads"][VISITOR]["seq"] == last + 1


def test_verify_takes_the_database_from_db(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESBOT_DB", str(db.parent / "elsewhere.db"))
    assert run("verify", "--db", str(db))[0] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["verify", "--db", "missing.db"], "cannot verify missing.db (--db): there is no database"),
        (["verify", "missing.zip"], "missing.zip is not an audit bundle: there is no such file"),
        (["verify", "bundle.zip", "--db", "x.db"], "give a bundle or --db, not both"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(*argv)
    assert (code, out) == (2, "")
    assert err.startswith(f"salesbot: error: {message}")
    assert len(err.splitlines()) == 1


def test_a_missing_database_is_not_created_by_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESBOT_DB", str(tmp_path / "none.db"))
    code, _, err = run("verify")
    assert code == 2
    assert "SALESBOT_DB" in err
    assert not (tmp_path / "none.db").exists()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_large_store_shows_progress_on_a_terminal_only(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.cli_verify.PROGRESS_FROM", 2)  # two conversations count as large
    out, err = io.StringIO(), Terminal()
    assert main(["verify"], out=out, err=err) == 0
    assert err.getvalue().endswith("verifying [" + "#" * 30 + "] 2/2\n")
    assert "verifying" not in out.getvalue()
    monkeypatch.setattr("bot.cli_verify.PROGRESS_FROM", 3)
    err = Terminal()
    assert main(["verify"], out=io.StringIO(), err=err) == 0
    assert err.getvalue() == ""
