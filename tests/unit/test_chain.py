"""The hash chain's rule and its verification, on plain values: where a change shows, what a
missing event looks like, and why an erasure is a valid link."""

from __future__ import annotations

import hashlib
import json

import pytest

from domain.chain import (
    GENESIS,
    ChainHead,
    Finding,
    Link,
    first_break,
    has_erasure,
    head_of,
    link,
    links,
)
from domain.errors import PolicyError
from domain.events import AuditRequested, Erased, Event, EventEnvelope
from domain.policy import Policy
from domain.verification import verify_conversation


def envelope(seq: int, kind: str = "bot_replied", **fields: object) -> str:
    return json.dumps(
        {"conversation_id": "c-1", "seq": seq, "event": {"type": kind, **fields}},
        separators=(",", ":"),
    )


def stream(*texts: str) -> list[Link]:
    return [
        Link(seq=seq, envelope=text, chain_hash=chained)
        for seq, (text, chained) in enumerate(zip(texts, links(texts), strict=True), start=1)
    ]


def no_policy(version: str) -> Policy:
    raise PolicyError(f"no policy {version}")


def test_a_link_is_the_sha256_of_the_previous_links_bytes_and_the_stored_json() -> None:
    text = envelope(1)
    assert GENESIS == "00" * 32
    assert link(GENESIS, text) == hashlib.sha256(bytes(32) + text.encode()).hexdigest()
    second = envelope(2, text="Grüße")  # UTF-8 bytes, not an ASCII escape
    assert links([text, second]) == [
        link(GENESIS, text),
        hashlib.sha256(bytes.fromhex(link(GENESIS, text)) + second.encode("utf-8")).hexdigest(),
    ]


def test_an_intact_stream_has_no_break_and_its_head_is_its_last_link() -> None:
    stored = stream(envelope(1), envelope(2), envelope(3))
    assert first_break("c-1", stored, version=3) is None
    head = head_of(stored)
    assert head == ChainHead(seq=3, hash=links([envelope(1), envelope(2), envelope(3)])[-1])
    assert first_break("c-1", stored, head=head) is None


def test_an_event_changed_after_it_was_written_breaks_the_chain_at_that_event() -> None:
    stored = stream(envelope(1), envelope(2, penalty="0.16"), envelope(3))
    edited = [*stored]
    edited[1] = stored[1].model_copy(update={"envelope": envelope(2, penalty="0.8")})
    found = first_break("c-1", edited, version=3)
    assert found is not None
    assert (found.problem, found.seq) == ("content hash mismatch", 2)
    assert found.line().startswith("c-1 seq 2: content hash mismatch: ")


def test_a_link_changed_to_cover_an_edit_breaks_the_chain_at_the_next_event() -> None:
    stored = stream(envelope(1), envelope(2), envelope(3))
    forged_text = envelope(2, penalty="0")
    forged = stored[1].model_copy(
        update={
            "envelope": forged_text,
            "chain_hash": link(stored[0].chain_hash or "", forged_text),
        }
    )
    found = first_break("c-1", [stored[0], forged, stored[2]], version=3)
    assert found is not None
    assert (found.problem, found.seq) == ("content hash mismatch", 3)


def test_an_event_removed_from_the_middle_is_a_missing_link() -> None:
    stored = stream(envelope(1), envelope(2), envelope(3))
    found = first_break("c-1", [stored[0], stored[2]], version=3)
    assert found is not None
    assert (found.problem, found.seq) == ("missing link", 2)
    assert "the next stored event is seq 3" in found.detail


def test_events_cut_off_at_the_end_are_a_missing_link_against_the_version_or_head() -> None:
    stored = stream(envelope(1), envelope(2), envelope(3))
    head = head_of(stored)
    by_version = first_break("c-1", stored[:2], version=3)
    by_head = first_break("c-1", stored[:2], head=head)
    for found in (by_version, by_head):
        assert found is not None
        assert (found.problem, found.seq) == ("missing link", 3)


def test_a_recorded_head_the_events_do_not_end_at_is_a_missing_link() -> None:
    stored = stream(envelope(1), envelope(2))
    found = first_break("c-1", stored, head=ChainHead(seq=2, hash="ab" * 32))
    assert found is not None
    assert (found.problem, found.seq) == ("missing link", 2)
    longer = first_break("c-1", stored, head=ChainHead(seq=1, hash=stored[0].chain_hash or ""))
    assert longer is not None
    assert longer.problem == "missing link"


def test_an_event_without_a_stored_link_is_a_missing_link() -> None:
    stored = stream(envelope(1), envelope(2))
    found = first_break("c-1", [stored[0], stored[1].model_copy(update={"chain_hash": None})])
    assert found is not None
    assert (found.problem, found.seq) == ("missing link", 2)
    assert head_of([stored[0], stored[1].model_copy(update={"chain_hash": None})]) is None


def recorded(seq: int, event: Event) -> str:
    return EventEnvelope(
        conversation_id="c-1", seq=seq, at_ms=seq, policy_version="v", delivery_id="d", event=event
    ).model_dump_json()


def test_an_erased_event_is_a_valid_link_and_its_stream_is_not_replayed() -> None:
    # An `erased` event appended to a stream is hashed as stored like any other, and the
    # stream's inbounds (whose text it erased) are not replayed: its decisions are
    # re-derived from what they recorded instead (none here, so no policy is asked for).
    looked = AuditRequested(target="c-1", by="R")
    erased = recorded(3, Erased(by="dpo", reason="request"))
    stored = stream(recorded(1, looked), recorded(2, looked), erased)
    assert has_erasure(stored)
    assert not has_erasure(stored[:2])
    # However its JSON spells it: an escaped type is still the type.
    escaped = erased.replace('"erased"', '"\\u0065rased"')
    assert escaped != erased
    assert json.loads(escaped) == json.loads(erased)
    assert has_erasure([*stored[:2], stored[2].model_copy(update={"envelope": escaped})])
    assert not has_erasure(stream(envelope(1, text="[erased] erased", by="erased")))
    assert first_break("c-1", stored, version=3) is None

    inbound = {"inbound": {"erased": True}, "received_at_ms": 1, "policy_version": "v"}
    check = verify_conversation("c-1", stored, [inbound], no_policy, version=3)
    assert check.finding is None
    assert not check.replayed
    assert check.head == head_of(stored)
    # A change before the erasure still shows.
    edited = [stored[0].model_copy(update={"envelope": envelope(1, text="x")}), *stored[1:]]
    assert check.rederived == 0
    found = verify_conversation("c-1", edited, [inbound], no_policy, version=3).finding
    assert found is not None
    assert (found.problem, found.seq) == ("content hash mismatch", 1)


def test_events_this_release_cannot_read_are_reported_not_raised() -> None:
    stored = stream(envelope(1, "from_the_future"))
    check = verify_conversation("c-1", stored, [], no_policy, version=1)
    assert check.finding is not None
    assert (check.finding.problem, check.finding.seq) == ("unreadable", 1)


@pytest.mark.parametrize(
    ("finding", "line"),
    [
        (
            Finding(problem="missing link", conversation_id="c-1", seq=4, detail="gone"),
            "c-1 seq 4: missing link: gone",
        ),
        (
            Finding(
                problem="replay difference",
                conversation_id="c-1",
                seq=7,
                position=2,
                detail="reply recorded 'a', replayed 'b'",
            ),
            "c-1 seq 7 (inbound #2): replay difference: reply recorded 'a', replayed 'b'",
        ),
        (
            Finding(problem="missing file", file="inbounds.jsonl", detail="listed"),
            "inbounds.jsonl: missing file: listed",
        ),
    ],
)
def test_a_finding_reads_as_one_line_saying_where_and_what_broke(
    finding: Finding, line: str
) -> None:
    assert finding.line() == line
