"""Erasing a prospect's personal data (issue 15, item 6): `salesbot erase ID` deletes the
conversation's key and records an `erased` event; the audit, `/audit`, replay and verify
then read "[erased]" where the prospect's words were, the chain still holds and verify exits
0; the words are gone from the database file; the policy's retention erases idle
conversations through the sweeper and leaves recent ones; a previous release's store is
erased as far as its chain allows."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from bot.policy_loader import load_policy
from bot.runtime import Runtime
from domain.chain import first_break
from domain.events import ConversationStarted, Erased
from domain.inbound import LeadArrived, LeadDetails, MessagePosted
from storage import sealing
from storage.memory import MemoryStore
from storage.sqlite import SqliteStore
from tests.bot.seeded_store import (
    LEAD,
    PROSPECT,
    VISITOR,
    OneChannel,
    rows,
    seeded_store_file,
)
from tests.support.cli import run

STORES = sorted((Path(__file__).parents[1] / "fixtures" / "stores").glob("release-*.db"))
DAY_MS = 86_400_000


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return seeded_store_file(tmp_path, monkeypatch)[0]


def file_bytes(path: Path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_the_prospects_words_are_never_stored_in_clear_in_the_log(db: Path) -> None:
    # Sealed from the start in the event log and the stored inbounds: the lead's name,
    # company and message, their later message. (The outbox keeps the replies as sent until
    # an erasure redacts them.)
    stored = " ".join(
        text
        for (text,) in rows(
            db, "SELECT envelope FROM events UNION ALL SELECT inbound FROM inbounds"
        )
    )
    for words in ("Pat Lee", "Acme", "I am the CTO", "Just browsing"):
        assert words not in stored
    # …while the store reads them back for the bot, the audit and replay.
    code, out, _ = run("audit", LEAD)
    assert code == 0
    assert "Pat Lee" in out
    assert "I am the CTO" in out


def test_an_erased_conversation_reads_erased_everywhere_and_still_verifies(db: Path) -> None:
    code, out, err = run("erase", LEAD, "--by", "dpo@example.org")
    assert code == 0, err
    assert out.startswith(f"{LEAD}: erased (request, by dpo@example.org) at seq ")
    # The audit: the words read [erased]; the numbers stay.
    code, audit, _ = run("audit", LEAD)
    assert code == 0
    assert "Pat Lee" not in audit
    assert "I am the CTO" not in audit
    assert "Acme" not in audit
    assert "[erased]" in audit
    assert "Personal data erased at the prospect's request by dpo@example.org" in audit
    assert "USD" in audit  # the quote's amounts stay
    # Replay: the erased conversation is not re-decided (its words are gone) but each of
    # its decisions is re-derived from the numbers it recorded; the other one is replayed.
    report = json.loads(run("replay", "--json")[1])
    assert report["erased"] == [LEAD]
    assert report["differences"] == 0, report["diffs"]
    # The lead's two readings and scores, three narratives, the pursuit and the quote.
    assert report["rederived"] >= 7
    code, replay, _ = run("replay", "--fail-on-diff")
    assert code == 0
    assert (
        f"{LEAD}: [erased]: {report['rederived']} recorded decisions re-derived from their "
        "recorded features, 0 differences"
    ) in replay
    assert replay.rstrip().endswith(
        "replayed 1 conversations, 1 inbounds against the recorded policies: 0 differences"
    )
    # Verify: every chain holds (the erasure is an ordinary link), and so do the decisions.
    code, verified, _ = run("verify")
    assert code == 0, verified
    assert verified.rstrip().endswith(
        f"; 1 conversation with an erasure: {report['rederived']} decisions re-derived from "
        "recorded features"
    )
    assert json.loads(run("verify", "--json")[1])["rederived"] == report["rederived"]


def test_a_what_if_reaches_erased_conversations_through_their_recorded_features(
    db: Path, tmp_path: Path
) -> None:
    # The lead's credit (580) is below c0: its urgency was halved by the penalty. Erased,
    # the credit score is gone, but the outcome of the check is recorded, so a candidate
    # policy without the penalty still shows what it would change for this lead.
    assert run("erase", LEAD)[0] == 0
    off = tmp_path / "off.toml"
    off.write_text('extends = "default"\n[fairness]\nlambda = 0\n', encoding="utf-8")
    code, out, _ = run("replay", "--policy", str(off), "--json", "--fail-on-diff")
    assert code == 1
    report = json.loads(out)
    mine = [d for d in report["diffs"] if d["conversation_id"] == LEAD]
    assert mine
    first = mine[0]
    assert first["aspect"] == "score"
    assert "after the fairness penalty" in first["recorded"]
    recorded_urgency = first["recorded"].split("urgency ")[1].split(" →")[0]
    # Without the penalty, urgency after the "penalty" is the raw urgency itself.
    assert first["replayed"].endswith(
        f"urgency {recorded_urgency} → {recorded_urgency} after the fairness penalty"
    )
    assert not first["recorded"].endswith(f"→ {recorded_urgency} after the fairness penalty")


def test_the_key_is_gone_and_the_ciphertext_cannot_be_read_back(db: Path) -> None:
    assert rows(
        db, "SELECT COUNT(*) FROM conversation_keys WHERE conversation_id = ?", (LEAD,)
    ) == [(1,)]
    before = rows(
        db,
        "SELECT seq, envelope, chain_hash FROM events WHERE conversation_id = ? ORDER BY seq",
        (LEAD,),
    )
    assert run("erase", LEAD)[0] == 0
    assert rows(
        db, "SELECT COUNT(*) FROM conversation_keys WHERE conversation_id = ?", (LEAD,)
    ) == [(0,)]
    after = rows(
        db,
        "SELECT seq, envelope, chain_hash FROM events WHERE conversation_id = ? ORDER BY seq",
        (LEAD,),
    )
    assert after[: len(before)] == before  # not one stored byte rewritten
    sealed = [text for _, text, _ in after if '"sealed":' in text]
    assert sealed
    for text in sealed:
        # Without its key the stored event opens as [erased]; with any other key, not at all.
        opened = sealing.open_event(text, {}).model_dump_json()
        assert "[erased]" in opened
        assert "[sealed]" not in opened
        key_id = int(json.loads(text)["sealed"][1:].split(":")[0])
        with pytest.raises(Exception, match="does not open"):
            sealing.open_event(text, {key_id: sealing.new_key()})
    data = file_bytes(db)
    for words in (b"Pat Lee", b"I am the CTO", b"Acme"):
        assert words not in data  # nor in the outbox, nor left in free pages or the log


def test_the_chat_audit_reads_erased_too(db: Path) -> None:
    assert run("erase", LEAD)[0] == 0
    # /audit reads what the store gives: the same report as the command line.
    from bot.queries import load_audit
    from domain.audit import render_audit

    async def audit() -> str:
        async with await SqliteStore.open(db) as store:
            return "\n".join(render_audit(await load_audit(store, LEAD)))

    text = asyncio.run(audit())
    assert "Pat Lee" not in text
    assert "[erased]" in text


def test_erasing_twice_records_one_erasure(db: Path) -> None:
    assert run("erase", LEAD)[0] == 0
    code, out, _ = run("erase", LEAD)
    assert (code, out) == (0, f"{LEAD}: already erased; nothing more to erase\n")
    assert rows(db, "SELECT COUNT(*) FROM events WHERE type = 'erased'") == [(1,)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["erase", "nobody"], "No conversation, lead or quote with id 'nobody'."),
        (["erase", LEAD, "--reason", "whim"], "--reason must be request or retention"),
        (["erase", LEAD, "--by", ""], "--by must be 1 to 200 printable characters"),
    ],
)
def test_bad_input_to_erase_is_one_line_and_exit_2(db: Path, argv: list[str], message: str) -> None:
    code, out, err = run(*argv)
    assert (code, out) == (2, "")
    assert err.startswith(f"salesbot: error: {message}")
    assert len(err.splitlines()) == 1
    assert rows(db, "SELECT COUNT(*) FROM events WHERE type = 'erased'") == [(0,)]


def test_a_prospect_who_writes_after_the_erasure_is_sealed_under_a_new_key(db: Path) -> None:
    assert run("erase", VISITOR)[0] == 0

    async def write_again() -> list[str]:
        async with await SqliteStore.open(db) as store:
            runtime = Runtime(
                store, load_policy("default"), OneChannel(), clock=lambda: 1_790_100_000_000
            )
            await runtime.handle(
                MessagePosted(
                    delivery_id="m3", conversation_id=VISITOR, actor=PROSPECT, text="Back again"
                )
            )
            await runtime.settled()
            stored = await store.stored_events(VISITOR)
            assert first_break(VISITOR, stored, version=await store.version(VISITOR)) is None
            return [
                env.event.text
                for env in await store.load(VISITOR)
                if env.event.type == "prospect_message_received"
            ]

    assert asyncio.run(write_again()) == ["[erased]", "Back again"]


async def _leads(store: MemoryStore | SqliteStore, now: list[int]) -> Runtime:
    runtime = Runtime(store, load_policy("default"), OneChannel(), clock=lambda: now[0])
    await runtime.start()
    for cid, name in (("old", "Olga Old"), ("recent", "Rita Recent")):
        await runtime.handle(
            LeadArrived(
                delivery_id=f"{cid}-lead",
                conversation_id=cid,
                actor=PROSPECT,
                lead=LeadDetails(name=name, message="We need a CRM, budget $5000"),
            )
        )
        now[0] += 400 * DAY_MS  # the recent lead arrives 400 days after the old one
    return runtime


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_retention_erases_idle_conversations_through_the_sweeper_and_leaves_recent_ones(
    kind: str, tmp_path: Path
) -> None:
    now = [1_790_000_000_000]
    store = MemoryStore() if kind == "memory" else await SqliteStore.open(tmp_path / "s.db")
    async with store:
        runtime = await _leads(store, now)
        assert load_policy("default").retention is not None
        # 800 days after the old lead, 400 after the recent one: only the old one is past 730.
        assert await runtime.sweep_retention() == 1
        old = await store.load("old")
        erased, started = old[-1].event, old[0].event
        assert isinstance(erased, Erased)
        assert isinstance(started, ConversationStarted)
        assert started.lead is not None
        assert (erased.reason, erased.by) == ("retention", "salesbot")
        assert erased.idle_ms is not None
        assert erased.idle_ms > 730 * DAY_MS
        assert started.lead.name == "[erased]"
        recent = (await store.load("recent"))[0].event
        assert isinstance(recent, ConversationStarted)
        assert recent.lead is not None
        assert recent.lead.name == "Rita Recent"
        assert await runtime.sweep_retention() == 0  # erased once, not again
        chain = await store.stored_events("old")
        assert first_break("old", chain, version=await store.version("old")) is None


async def test_a_policy_without_retention_erases_nothing_by_time() -> None:
    now = [1_790_000_000_000]
    store = MemoryStore()
    runtime = await _leads(store, now)
    seeded = Runtime(
        store, load_policy("seed"), OneChannel(), clock=lambda: now[0] + 10_000 * DAY_MS
    )
    assert load_policy("seed").retention is None
    assert await seeded.sweep_retention() == 0
    assert (await store.load("old"))[-1].event.type != "erased"
    del runtime


@pytest.mark.parametrize("fixture", STORES, ids=[path.stem for path in STORES])
def test_a_previous_release_store_is_erased_as_far_as_its_chain_allows(
    fixture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "store.db"
    shutil.copy(fixture, db)
    monkeypatch.setenv("SALESBOT_DB", str(db))
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)
    (target,) = rows(
        db,
        "SELECT conversation_id FROM events WHERE type = 'prospect_message_received' "
        "ORDER BY position LIMIT 1",
    )[0]
    code, out, _ = run("erase", target, "--json")
    assert code == 0
    result = json.loads(out)
    # Stored in clear before sealing existed: the chain hashes those bytes, so they stay
    # (and are counted); the copies outside the chain (inbounds, outbox) are redacted.
    assert result["legacy_events"] > 0
    texts = [
        json.loads(t)
        for (t,) in rows(db, "SELECT inbound FROM inbounds WHERE conversation_id = ?", (target,))
    ]
    assert all(t.get("text") in (None, "[erased]") for t in texts)
    code, verified, _ = run("verify")
    assert code == 0, verified
    code, replay, _ = run("replay", "--fail-on-diff")
    assert code == 0, replay
    assert f"{target}: [erased]" in replay
