"""The hash chain of a conversation's events: what makes a stored event edited by hand visible.

Every event is linked to the one before it in its conversation (its stream):

    link(0)   = GENESIS                       (64 zeros: 32 zero bytes, hex)
    link(n)   = SHA-256(bytes(link(n-1)) || the event's JSON as stored, UTF-8)

`bytes(link)` is the 32 raw bytes of the previous link (not its hex text); the result is
stored as 64 lowercase hex characters next to the event. The hashed bytes are the event's
JSON exactly as the log keeps it, never a re-serialisation: an event written by an earlier
release keeps the bytes it was stored with, and so its link. The store computes each link
when it appends the event, in the same transaction; a store migrated from before links
existed has them computed once, in stream order, by the migration.

Verifying a stream recomputes every link from GENESIS and compares it with the stored one.
The first event whose recomputed link differs from its stored link is where the chain
breaks: its bytes (or its link) were changed after it was written. A sequence number
missing in the middle, a stream whose recorded version is beyond its last stored event, a
link that is absent, or a chain head (kept elsewhere, e.g. in an audit bundle's manifest)
that the events no longer reach are *missing links*.

The chain shows changes; it cannot stop someone who rewrites an event *and* every link
after it. Against that, keep a chain head somewhere the store's writers cannot reach — the
manifest of an audit bundle sent to an auditor, or `salesbot verify --json`'s heads — and
compare later.

Erasure (`erased`). Personal data is to be erased by deleting the key it was encrypted
with, never by rewriting a stored event, and the erasure is recorded as an event of type
`erased` appended to the stream. By design that event is an ordinary link: it is hashed as
stored like any other, whatever its fields are, and this module never reads an event's
type to link or verify it. What an erasure changes is replay: the erased inbounds can no
longer be re-decided, so a stream holding an `erased` event (`has_erasure`) has its replay
reported as skipped, and its decisions are re-derived from the numbers they recorded
instead (`domain.recorded_decisions`, `domain.verification`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Literal

from domain.model import Frozen

GENESIS = "0" * 64
"""The link before a stream's first event."""
ERASED_EVENT_TYPE = "erased"
"""The type of the event an erasure appends: a valid link (see the module docstring)."""
CHAIN_RULE = (
    "link(0) = 64 zeros; link(n) = sha256(bytes.fromhex(link(n-1)) + event_json_as_stored"
    ".encode('utf-8')).hexdigest(), per conversation, in seq order"
)
"""The rule in one line, for manifests and for anyone re-implementing the check."""

Problem = Literal[
    "content hash mismatch", "missing link", "replay difference", "unreadable", "missing file"
]


def link(previous: str, envelope_json: str) -> str:
    """The link of an event whose stored JSON is `envelope_json`, after `previous`."""
    digest = hashlib.sha256(bytes.fromhex(previous))
    digest.update(envelope_json.encode("utf-8"))
    return digest.hexdigest()


def links(envelopes: Iterable[str], previous: str = GENESIS) -> list[str]:
    """The links of consecutive stored events, continuing from `previous`."""
    found = []
    for envelope in envelopes:
        previous = link(previous, envelope)
        found.append(previous)
    return found


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Link(Frozen):
    """One stored event as the chain sees it: its sequence number, its JSON exactly as
    stored, and the link stored with it (None when the store holds none)."""

    seq: int
    envelope: str
    chain_hash: str | None
    opened: str | None = None
    """The event's JSON with its sealed personal values put back (`domain.personal`), for
    replay; None when nothing of it is sealed (or its key is gone). Never hashed."""


class ChainHead(Frozen):
    """Where a stream's chain ends: the last event's sequence number and link."""

    seq: int
    hash: str


class Finding(Frozen):
    """The first thing found wrong in one conversation (or one file of a bundle)."""

    problem: Problem
    conversation_id: str | None = None
    seq: int | None = None
    """The event where the chain breaks; for a replay difference, the first event the
    differing inbound recorded (None when it recorded none)."""
    position: int | None = None
    """For a replay difference: the inbound's position in the conversation (1, 2, …)."""
    file: str | None = None
    """For a bundle: the file concerned."""
    detail: str

    def line(self) -> str:
        """One line for a person: where, then what broke."""
        if self.conversation_id is None:
            where = self.file or "bundle"
        elif self.seq is not None:
            where = f"{self.conversation_id} seq {self.seq}"
        else:
            where = self.conversation_id
        if self.position is not None:
            where += f" (inbound #{self.position})"
        return f"{where}: {self.problem}: {self.detail}"


def first_break(
    conversation_id: str,
    stored: Sequence[Link],
    *,
    version: int | None = None,
    head: ChainHead | None = None,
) -> Finding | None:
    """The first broken link of one stream, or None when every link holds.

    `stored` is the stream's events in sequence order. `version` is the sequence number the
    stream is known to have reached (a store's stream version): events missing after the
    last stored one are a missing link. `head`, when given, is a chain head recorded
    elsewhere (a bundle's manifest): the stored events must reach it exactly.
    """

    def broken(problem: Problem, seq: int, detail: str) -> Finding:
        return Finding(problem=problem, conversation_id=conversation_id, seq=seq, detail=detail)

    previous = GENESIS
    for expected, event in enumerate(stored, start=1):
        if event.seq != expected:
            return broken(
                "missing link",
                expected,
                f"seq {expected} is not stored; the next stored event is seq {event.seq}",
            )
        if event.chain_hash is None:
            return broken("missing link", expected, "the event has no stored link")
        computed = link(previous, event.envelope)
        if computed != event.chain_hash:
            return broken(
                "content hash mismatch",
                expected,
                f"the event as stored links to {computed[:16]}…, its recorded link is "
                f"{event.chain_hash[:16]}… (changed after it was written)",
            )
        previous = computed
    last = len(stored)
    if version is not None and version > last:
        return broken(
            "missing link",
            last + 1,
            f"the stream is at seq {version} but its stored events stop at seq {last}",
        )
    if head is not None:
        if head.seq > last:
            return broken(
                "missing link",
                last + 1,
                f"the recorded chain head is seq {head.seq} but the events stop at seq {last}",
            )
        if head.seq < last or head.hash != previous:
            return broken(
                "missing link",
                head.seq,
                f"the recorded chain head (seq {head.seq}, {head.hash[:16]}…) is not where the "
                f"events end (seq {last}, {previous[:16]}…)",
            )
    return None


def head_of(stored: Sequence[Link]) -> ChainHead | None:
    """The stream's chain head as stored (None for an empty stream or a missing link)."""
    if not stored or stored[-1].chain_hash is None:
        return None
    return ChainHead(seq=stored[-1].seq, hash=stored[-1].chain_hash)


def event_type(envelope_json: str) -> str | None:
    """The `event.type` of a stored event, read without validating the event (so a type
    this release does not know, such as a future `erased`, is still read); None when the
    JSON has none."""
    try:
        data = json.loads(envelope_json)
    except ValueError:
        return None
    event = data.get("event") if isinstance(data, dict) else None
    kind = event.get("type") if isinstance(event, dict) else None
    return kind if isinstance(kind, str) else None


def policy_version_of(envelope_json: str) -> str | None:
    """The `policy_version` a stored event was decided under, read without validating the
    event; None when the JSON has none."""
    try:
        data = json.loads(envelope_json)
    except ValueError:
        return None
    found = data.get("policy_version") if isinstance(data, dict) else None
    return found if isinstance(found, str) else None


def has_erasure(stored: Iterable[Link]) -> bool:
    """True when the stream holds an `erased` event (its decisions are then re-derived from
    their recorded features instead of replayed: `domain.verification`)."""
    return any(
        _may_name(ERASED_EVENT_TYPE, event.envelope)
        and event_type(event.envelope) == ERASED_EVENT_TYPE
        for event in stored
    )


def _may_name(word: str, text: str) -> bool:
    """False only when no string of the JSON `text` can be `word` (ASCII letters): it is not
    written in it, and no `\\u` escape could spell it. Parsing every event of every stream
    to find the few erasures cost verify about a tenth of its time; this look is exact."""
    return word in text or "\\u" in text
