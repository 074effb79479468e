"""`salesbot schema export DIR`: the JSON Schemas integrators validate with, committed in
`docs/schemas/` and always what the command writes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # no stubs installed

from bot.cli import main
from bot.schemas import ARTIFACTS, INDEX, export_texts
from domain.events import EVENT_SCHEMA_VERSION
from tests.support.schemas import SCHEMAS, assert_valid, problems

REGENERATE = ".venv/bin/salesbot schema export docs/schemas"
ISSUE_ARTIFACTS = {
    "lead",
    "quote",
    "offer",
    "audit",
    "ticket",
    "event",
    "outbox_payload",
    "understand",
    "metrics",
    "report",
}
"""The issue's list: the lead, quote, offer, audit record, ticket, event, outbox payload,
`understand` output and report data (`salesbot report --json`; the metrics too)."""


def export(target: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["schema", "export", str(target)], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_the_committed_schemas_are_exactly_what_the_command_writes(tmp_path: Path) -> None:
    code, out, err = export(tmp_path / "schemas")

    assert (code, err) == (0, "")
    assert (
        out
        == f"wrote {len(ARTIFACTS)} schemas and index.json to {tmp_path / 'schemas'} (JSON Schema draft 2020-12)\n"
    )
    written = {path.name: path.read_bytes() for path in (tmp_path / "schemas").iterdir()}
    committed = {path.name: path.read_bytes() for path in SCHEMAS.iterdir()}
    stale = sorted(name for name in written if committed.get(name) != written[name])
    extra = sorted(set(committed) - set(written))
    assert not stale, f"docs/schemas is out of date ({', '.join(stale)}): run `{REGENERATE}`"
    assert not extra, f"docs/schemas has files no artifact writes ({', '.join(extra)}): delete them"


def test_the_export_is_byte_identical_from_one_run_to_the_next(tmp_path: Path) -> None:
    export(tmp_path / "one")
    export(tmp_path / "two")

    for name in export_texts():
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
        assert (tmp_path / "one" / name).read_bytes().endswith(b"}\n")


def test_every_artifact_of_the_issue_has_a_schema() -> None:
    assert {artifact.name for artifact in ARTIFACTS} >= ISSUE_ARTIFACTS


@pytest.mark.parametrize("artifact", ARTIFACTS, ids=lambda a: a.name)
def test_each_schema_is_draft_2020_12_with_its_id_title_and_version(artifact) -> None:
    document = json.loads((SCHEMAS / artifact.file).read_text(encoding="utf-8"))

    Draft202012Validator.check_schema(document)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$id"] == f"urn:salesbot:schema:{artifact.name}:{artifact.schema_version}"
    assert document["title"] == artifact.title
    assert document["x-schema-version"] == artifact.schema_version
    assert "salesbot/" not in json.dumps(document), "a schema must not change with each release"


def test_the_index_names_every_schema_with_its_id_and_version() -> None:
    index = json.loads((SCHEMAS / INDEX).read_text(encoding="utf-8"))

    assert set(index["artifacts"]) == {artifact.name for artifact in ARTIFACTS}
    for artifact in ARTIFACTS:
        entry = index["artifacts"][artifact.name]
        assert (SCHEMAS / entry["file"]).is_file()
        assert entry["$id"] == json.loads((SCHEMAS / entry["file"]).read_text())["$id"]
        assert entry["schema_version"] == artifact.schema_version


def test_a_directory_that_is_a_file_is_one_line_on_stderr_and_exit_2(tmp_path: Path) -> None:
    occupied = tmp_path / "schemas"
    occupied.write_text("not a directory")

    code, out, err = export(occupied)

    assert (code, out) == (2, "")
    assert (
        err == f"salesbot: error: cannot write the schemas to {occupied}: it is not a directory\n"
    )


def test_a_missing_directory_is_created(tmp_path: Path) -> None:
    code, _, _ = export(tmp_path / "a" / "b")

    assert code == 0
    assert (tmp_path / "a" / "b" / INDEX).is_file()


ACCEPTED = {"schema_version": 1, "type": "quote_accepted", "quote_id": "Q-0123456789", "by": "U1"}
STORED_EVENT: dict[str, object] = {
    "schema_version": EVENT_SCHEMA_VERSION,
    "generator": "salesbot/0.1.0",
    "conversation_id": "c-1",
    "seq": 1,
    "at_ms": 1_790_000_000_000,
    "policy_version": "0" * 64,
    "delivery_id": "d-1",
    "event": ACCEPTED,
}


def test_a_stored_event_validates_and_one_edited_by_hand_does_not() -> None:
    assert_valid("event", STORED_EVENT)

    assert problems("event", {**STORED_EVENT, "seq": 0}) == ["seq: 0 is less than the minimum of 1"]
    unknown = {**STORED_EVENT, "event": {"type": "quote_forgiven", "quote_id": "Q-0123456789"}}
    assert problems("event", unknown)
    extra = {**STORED_EVENT, "event": {**ACCEPTED, "discount": "0.5"}}
    assert problems("event", extra)
    assert problems("offer", STORED_EVENT), "an acceptance is not an offer"


def test_an_outbox_payload_without_its_reply_or_with_a_text_version_is_refused() -> None:
    payload = {
        "reply": {"audience": "conversation", "text": "Hello"},
        "target": {"channel": "C1"},
        "requester": "U1",
        "schema_version": 1,
        "generator_version": "salesbot/0.1.0",
        "adapter": "slack",
        "adapter_version": 1,
    }
    assert_valid("outbox_payload", payload)

    assert problems("outbox_payload", {k: v for k, v in payload.items() if k != "reply"})
    assert problems("outbox_payload", {**payload, "adapter_version": "1"})


def test_an_understand_line_with_an_objection_the_reader_does_not_know_is_refused() -> None:
    line = {
        "id": 1,
        "language": "en",
        "band": "warm",
        "score": 0.5,
        "signals": {"budget": True, "timeline": False, "authority": False, "need": False},
        "objection": "price",
        "needs_human": False,
        "reasons": [],
        "intents": ["question"],
        "entities": {"money": [], "dates": [], "team_size": None, "competitor": None},
        "policy_version": "0" * 64,
        "schema_version": 1,
        "generator_version": "salesbot/0.1.0",
    }
    assert_valid("understand", line)

    assert problems("understand", {**line, "objection": "weather"})
    assert problems("understand", {**line, "signals": {"mood": True}})
