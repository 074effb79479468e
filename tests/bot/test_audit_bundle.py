"""`salesbot audit ID --bundle FILE`: one conversation's record as a zip an auditor can
check without the store — events as stored, raw inbounds, policy texts, schemas and a
manifest of hashes — that `salesbot verify FILE` accepts untouched and refuses edited."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from bot.audit_bundle import build_bundle
from bot.schemas import export_texts
from storage.sqlite import SqliteStore
from tests.bot.seeded_store import LEAD, VISITOR, rows, seeded_store_file
from tests.support.cli import run
from tests.support.schemas import assert_valid


@pytest.fixture
def store_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return seeded_store_file(tmp_path, monkeypatch)[0]


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rezip(source: Path, target: Path, change: dict[str, bytes | None]) -> None:
    """The bundle with some members replaced (or removed: None), as anyone could."""
    files = members(source)
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in files.items():
            replaced = change.get(name, data)
            if replaced is not None:
                archive.writestr(name, replaced)


def test_a_bundle_holds_the_conversation_as_stored_and_verifies_clean(
    store_file: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "lead.zip"
    stored = rows(
        store_file,
        "SELECT envelope, chain_hash FROM events WHERE conversation_id = ? ORDER BY seq",
        (LEAD,),
    )
    code, out, err = run("audit", LEAD, "--bundle", str(bundle))
    assert (code, err) == (0, "")
    assert out.startswith(f"wrote {bundle}: conversation {LEAD}, {len(stored)} events (chain head")
    assert out.rstrip().endswith(f"Check it with: salesbot verify {bundle}")

    files = members(bundle)
    manifest = json.loads(files["manifest.json"])
    assert_valid("audit_bundle", manifest)
    assert manifest["conversation_id"] == LEAD
    # Events byte for byte as stored, with their links and the head.
    assert files["events.jsonl"].decode().splitlines() == [text for text, _ in stored]
    assert manifest["chain"]["links"] == [chain for _, chain in stored]
    assert manifest["chain"]["head"] == {"seq": len(stored), "hash": stored[-1][1]}
    # Raw inbounds, in order, and the policy texts named by their own hash.
    inbounds = [json.loads(line) for line in files["inbounds.jsonl"].decode().splitlines()]
    assert [row["delivery_id"] for row in inbounds] == ["l1", "m1", "q1"]
    assert inbounds[2]["inbound"]["args"] == "10 pro 10%"
    policies = [name for name in files if name.startswith("policies/")]
    assert policies
    for name in policies:
        assert name == f"policies/{hashlib.sha256(files[name]).hexdigest()}.json"
    # This release's schemas, and a hash for every file but the manifest.
    for name, text in export_texts().items():
        assert files[f"schemas/{name}"] == text.encode()
    assert set(manifest["files"]) == set(files) - {"manifest.json"}
    for name, digest in manifest["files"].items():
        assert hashlib.sha256(files[name]).hexdigest() == digest

    code, out, _ = run("verify", str(bundle))
    assert code == 0
    assert out == (
        f"verified bundle {bundle}: 1 conversation, {len(stored)} events, 3 inbounds: every "
        "chain holds, every decision replays\n"
    )
    report = json.loads(run("verify", str(bundle), "--json")[1])
    assert_valid("verify", report)
    assert report["source"] == "bundle"
    assert report["heads"] == {LEAD: manifest["chain"]["head"]}


def test_an_event_edited_inside_the_bundle_fails_verify_at_that_event(
    store_file: Path, tmp_path: Path
) -> None:
    bundle, edited = tmp_path / "lead.zip", tmp_path / "edited.zip"
    assert run("audit", LEAD, "--bundle", str(bundle))[0] == 0
    lines = members(bundle)["events.jsonl"].decode().splitlines()
    seq = next(i for i, line in enumerate(lines, 1) if '"narrative_assessed"' in line)
    lines[seq - 1] = lines[seq - 1].replace(
        '"penalized_urgency":"0.16"', '"penalized_urgency":"0.8"'
    )
    rezip(bundle, edited, {"events.jsonl": ("\n".join(lines) + "\n").encode()})

    code, out, _ = run("verify", str(edited))
    assert code == 1
    file_line, chain_line, summary = out.splitlines()
    assert file_line.startswith("events.jsonl: content hash mismatch: SHA-256 ")
    assert chain_line.startswith(f"{LEAD} seq {seq}: content hash mismatch: ")
    assert summary.endswith(": 2 problems")


def _policy_with_a_space(files: dict[str, bytes]) -> tuple[str, bytes | None]:
    name = next(n for n in files if n.startswith("policies/"))
    return name, files[name] + b" "


def _quote_asked_at_30_percent(files: dict[str, bytes]) -> tuple[str, bytes | None]:
    return "inbounds.jsonl", files["inbounds.jsonl"].replace(b"10 pro 10%", b"10 pro 30%")


def _schema_removed(files: dict[str, bytes]) -> tuple[str, bytes | None]:
    return "schemas/event.schema.json", None


@pytest.mark.parametrize(
    ("change", "problem", "also"),
    [
        (_policy_with_a_space, "content hash mismatch", "the policy text does not hash"),
        (_quote_asked_at_30_percent, "content hash mismatch", f"{LEAD} seq "),
        (_schema_removed, "missing file", None),
    ],
)
def test_any_other_file_changed_or_removed_inside_the_bundle_fails_verify(
    store_file: Path, tmp_path: Path, change: Any, problem: str, also: str | None
) -> None:
    bundle, edited = tmp_path / "lead.zip", tmp_path / "edited.zip"
    assert run("audit", LEAD, "--bundle", str(bundle))[0] == 0
    name, replacement = change(members(bundle))
    rezip(bundle, edited, {name: replacement})
    code, out, _ = run("verify", str(edited))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"{name}: {problem}")
    if also is not None:
        assert any(also in line for line in lines[1:-1]), out


def test_two_bundles_of_the_same_conversation_are_byte_identical(
    store_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each `--bundle` is itself recorded (an audit of the conversation) after the bundle is
    # written, so the same stored conversation means two copies of the store.
    copy = tmp_path / "copy.db"
    shutil.copy(store_file, copy)
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    assert run("audit", LEAD, "--bundle", str(first))[0] == 0
    monkeypatch.setenv("SALESBOT_DB", str(copy))
    assert run("audit", LEAD, "--bundle", str(second))[0] == 0
    assert first.read_bytes() == second.read_bytes()

    async def twice() -> tuple[bytes, bytes]:
        async with await SqliteStore.open(copy) as store:
            return (await build_bundle(store, VISITOR))[0], (await build_bundle(store, VISITOR))[0]

    one, two = asyncio.run(twice())
    assert one == two
    with zipfile.ZipFile(io.BytesIO(one)) as archive:
        infos = archive.infolist()
    assert [info.filename for info in infos] == sorted(info.filename for info in infos)
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_a_bundle_is_an_audit_on_record_and_holds_the_record_as_it_was(
    store_file: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "lead.zip"
    before = rows(store_file, "SELECT COUNT(*) FROM events WHERE conversation_id = ?", (LEAD,))
    assert run("audit", LEAD, "--bundle", str(bundle))[0] == 0
    audits = rows(
        store_file,
        "SELECT seq FROM events WHERE conversation_id = ? AND type = 'audit_requested'",
        (LEAD,),
    )
    assert len(audits) == 1
    assert audits[0][0] > before[0][0]
    assert json.loads(members(bundle)["manifest.json"])["events"] == before[0][0]
    # The store itself, with the audit recorded, still verifies.
    assert run("verify")[0] == 0


def test_a_bundle_of_a_quote_is_the_bundle_of_its_conversation(
    store_file: Path, tmp_path: Path
) -> None:
    quote_id = json.loads(
        rows(store_file, "SELECT envelope FROM events WHERE type = 'quote_issued'")[0][0]
    )["event"]["quote"]["quote_id"]
    code, out, _ = run("audit", quote_id, "--bundle", str(tmp_path / "q.zip"), "--json")
    assert code == 0
    manifest = json.loads(out)
    assert_valid("audit_bundle", manifest)
    assert manifest["conversation_id"] == LEAD


def test_a_bundle_that_cannot_be_written_is_exit_2_and_nothing_is_recorded(
    store_file: Path, tmp_path: Path
) -> None:
    before = rows(store_file, "SELECT COUNT(*) FROM events")
    code, out, err = run("audit", LEAD, "--bundle", str(tmp_path / "no-such-dir" / "b.zip"))
    assert (code, out) == (2, "")
    assert err.startswith("salesbot: error: cannot write the bundle to ")
    assert len(err.splitlines()) == 1
    assert rows(store_file, "SELECT COUNT(*) FROM events") == before


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not a zip", "it is not a readable zip file"),
        ({"events.jsonl": b""}, "it holds no manifest.json"),
        ({"manifest.json": b"{"}, "its manifest.json is not JSON"),
        ({"manifest.json": b'{"schema_version": 2}'}, "it was written by a newer salesbot"),
        ({"manifest.json": b'{"schema_version": 1}'}, "its manifest.json is not an audit bundle"),
    ],
)
def test_a_file_that_is_not_a_bundle_is_exit_2_in_one_line(
    tmp_path: Path, content: bytes | dict[str, bytes], reason: str
) -> None:
    path = tmp_path / "thing.zip"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in content.items():
                archive.writestr(name, data)
    code, out, err = run("verify", str(path))
    assert (code, out) == (2, "")
    assert err.startswith(f"salesbot: error: {path} is not an audit bundle: {reason}")
    assert len(err.splitlines()) == 1


def test_an_erased_conversations_bundle_verifies_its_decisions_from_their_numbers(
    store_file: Path, tmp_path: Path
) -> None:
    # The auditor holds no key and no words: the bundle's decisions are re-derived from the
    # numbers they recorded, under the bundled policies.
    assert run("erase", LEAD)[0] == 0
    bundle = tmp_path / "erased.zip"
    assert run("audit", LEAD, "--bundle", str(bundle))[0] == 0
    assert b"I am the CTO" not in bundle.read_bytes()
    code, out, _ = run("verify", str(bundle))
    assert code == 0, out
    report = json.loads(run("verify", str(bundle), "--json")[1])
    assert report["replay_skipped"] == [LEAD]
    assert report["rederived"] >= 7
    assert out.rstrip().endswith(
        f"every decision replays; 1 conversation with an erasure: {report['rederived']} "
        "decisions re-derived from recorded features"
    )
