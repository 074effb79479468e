"""`salesbot verify` on the live store: an untouched store verifies clean; a stored event
edited by hand — the fairness penalty removed — which replay and audit do not notice, fails
with exit 1 naming the conversation and the event; so do a removed event and an edited
inbound. An erasure is a valid link."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import threading
from pathlib import Path

import pytest

from bot.cli import main
from bot.cli_verify import verify_store
from domain.chain import has_erasure, policy_version_of
from domain.verification import VerifyReport, policies_from, verify_conversation
from storage.sqlite import SqliteStore
from tests.bot.seeded_store import (
    LEAD,
    VISITOR,
    add_conversations,
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


@pytest.fixture
def damaged(db: Path) -> Path:
    """The seeded store with five more conversations of three prospect messages (c0…c4),
    then damaged in every way verify reports, spread over the conversations: an event
    deleted from the middle of c1 (a missing link), one of c3's events edited (a content
    hash mismatch), the lead's quote command rewritten (a replay difference), and the
    visitor and c4 erased (verified by their chains, decisions re-derived)."""

    add_conversations(db, 5, 3)
    for erased in (VISITOR, "c4"):
        assert run("erase", erased, "--by", "dpo@example.org")[0] == 0
    seq, envelope = event_of(db, "c3", "lead_scored")
    envelope["event"]["score"]["band"] = "hot"
    edit_event(db, "c3", seq, envelope)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM events WHERE conversation_id = 'c1' AND seq = 3")
        (inbound,) = conn.execute(
            "SELECT inbound FROM inbounds WHERE delivery_id = 'q1'"
        ).fetchone()
        conn.execute(
            "UPDATE inbounds SET inbound = ? WHERE delivery_id = 'q1'",
            (inbound.replace("10 pro 10%", "10 pro 30%"),),
        )
    return db


async def _verified_one_at_a_time(path: Path) -> VerifyReport:
    """What verify reported before it read the store in batches: per conversation, its
    version, then its inbounds, then its stored events (three reads each)."""
    texts: dict[str, str | None] = {}
    policy_for = policies_from(texts, "the store")
    checks = []
    async with await SqliteStore.open(path) as store:
        for conversation_id in await store.conversation_ids():
            version = await store.version(conversation_id)
            inbounds = await store.inbounds(conversation_id)
            stored = await store.stored_events(conversation_id)
            needs = {row.policy_version for row in inbounds}
            if has_erasure(stored):
                needs |= {policy_version_of(link.envelope) or "" for link in stored} - {""}
            for needed in needs - texts.keys():
                texts[needed] = await store.get_policy(needed)
            checks.append(
                verify_conversation(
                    conversation_id,
                    stored,
                    [row.model_dump() for row in inbounds],
                    policy_for,
                    version=version,
                )
            )
    return VerifyReport.of("store", checks)


async def _verified_in_batches(path: Path, batch: int) -> VerifyReport:
    async with await SqliteStore.open(path) as store:
        return await verify_store(store, batch=batch)


def test_verify_reads_in_batches_and_reports_what_one_conversation_at_a_time_did(
    damaged: Path,
) -> None:
    expected = asyncio.run(_verified_one_at_a_time(damaged))
    for batch in (1, 2, 200):
        assert asyncio.run(_verified_in_batches(damaged, batch)) == expected
    code, out, err = run("verify")
    assert (code, err) == (1, "")
    lines = out.splitlines()
    assert lines == [finding.line() for finding in expected.findings] + [lines[-1]]
    assert [line.split(": ")[1] for line in lines[:-1]] == [
        "replay difference",
        "missing link",
        "content hash mismatch",
    ]
    assert lines[0].startswith(f"{LEAD} seq ")
    assert lines[1] == "c1 seq 3: missing link: seq 3 is not stored; the next stored event is seq 4"
    assert lines[2].startswith("c3 seq ")
    assert lines[-1] == (
        f"verified the store: 7 conversations, {expected.events} events, "
        f"{expected.inbounds} inbounds: 3 problems; 2 conversations with an erasure: "
        f"{expected.rederived} decisions re-derived from recorded features"
    )
    code, out, _ = run("verify", "--json")
    assert code == 1
    assert out == expected.model_dump_json(indent=2) + "\n"
    assert expected.replay_skipped == (VISITOR, "c4")


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_verify_in_worker_processes_reports_byte_for_byte_what_one_process_does(
    damaged: Path, monkeypatch: pytest.MonkeyPatch, start: str
) -> None:
    # One thread lets the workers be forked; more make them spawned (`bot.cli_replay`).
    monkeypatch.setattr(threading, "active_count", lambda: 1 if start == "fork" else 2)
    for options in (["--json"], []) if start == "fork" else ([],):
        serial = run("verify", *options)
        assert serial[0] == 1
        for jobs in ("2", "3") if start == "fork" else ("2",):
            assert run("verify", *options, "--jobs", jobs) == serial


def test_a_parallel_verify_shows_progress_up_to_every_conversation(
    damaged: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.cli_verify.PROGRESS_FROM", 2)
    out, err = io.StringIO(), Terminal()
    assert main(["verify", "--jobs", "2"], out=out, err=err) == 1
    assert err.getvalue().endswith("verifying [" + "#" * 30 + "] 7/7\n")
