"""Verifying one conversation: its hash chain holds and its decisions replay.

`salesbot verify` (on the live store or on an audit bundle) runs this per conversation:
the chain (`domain.chain.first_break`) shows any stored event changed, removed or cut off
after it was written; the replay (`domain.replay`) re-decides every stored inbound under
the policy recorded with it and shows any decision the log no longer agrees with (an
inbound edited, a policy text swapped). One problem is reported per conversation: its
first broken link; when the chain holds, its first replay difference. (A broken chain
explains any replay difference after it: the recorded decisions are what changed.)

A conversation holding an `erased` event cannot be re-decided: erasure removed what its
inbounds said (`domain.chain`, "Erasure"). Its chain is checked as any other, and each of
its recorded decisions is re-derived from the numbers it recorded (the reader's features,
every `w × x`, the quote's inputs: `domain.recorded_decisions`) under its recorded policy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import ValidationError

from domain import GENERATOR
from domain.chain import ChainHead, Finding, Link, first_break, has_erasure, head_of
from domain.errors import DomainError, PolicyError
from domain.events import EventEnvelope
from domain.model import Frozen
from domain.policy import Policy, policy_from_json
from domain.recorded_decisions import check_recorded_decisions
from domain.replay import RecordedInbound, replay_conversation

VERIFY_SCHEMA_VERSION = 1

PolicyFor = Callable[[str], Policy]


def policies_from(texts: Mapping[str, str | None], where: str) -> PolicyFor:
    """The recorded policy of each version, parsed once from its canonical text in `texts`
    (read when asked, so a caller may fill `texts` as it goes); a version whose text `where`
    lacks is a `PolicyError`, which verification reports as unreadable."""
    cache: dict[str, Policy] = {}

    def policy_for(version: str) -> Policy:
        if version not in cache:
            text = texts.get(version)
            if text is None:
                raise PolicyError(f"{where} holds no policy text for version {version[:12]}")
            cache[version] = policy_from_json(text)
        return cache[version]

    return policy_for


"""The policy stored under a version; raises `DomainError` when there is none."""


class ConversationCheck(Frozen):
    """What verifying one conversation found."""

    conversation_id: str
    events: int
    inbounds: int
    replayed: bool
    """False when the replay was skipped (the conversation holds an `erased` event)."""
    head: ChainHead | None
    finding: Finding | None
    rederived: int = 0
    """For an erased conversation: how many recorded decisions were re-derived from their
    recorded features instead."""


class VerifyReport(Frozen):
    """`salesbot verify --json`: what was verified and the first problem of each
    conversation (and of each bundle file) found wrong; `problems` 0 means every chain
    holds and every decision replays."""

    source: Literal["store", "bundle"]
    conversations: int
    events: int
    inbounds: int
    problems: int
    findings: tuple[Finding, ...]
    replay_skipped: tuple[str, ...]
    """Conversations not re-decided (they hold an `erased` event): their chain is verified,
    and their decisions are re-derived from their recorded features (`rederived`)."""
    heads: dict[str, ChainHead]
    """Each conversation's chain head (its last event's seq and link): keep them elsewhere
    to notice later a log rewritten together with its links."""
    rederived: int = 0
    """How many recorded decisions of the erased conversations were re-derived from their
    recorded features (`domain.recorded_decisions`)."""
    schema_version: int = VERIFY_SCHEMA_VERSION
    generator_version: str = GENERATOR

    @classmethod
    def of(
        cls,
        source: Literal["store", "bundle"],
        checks: Sequence[ConversationCheck],
        file_findings: Sequence[Finding] = (),
    ) -> VerifyReport:
        findings = (*file_findings, *(c.finding for c in checks if c.finding is not None))
        return cls(
            source=source,
            conversations=len(checks),
            events=sum(c.events for c in checks),
            inbounds=sum(c.inbounds for c in checks),
            problems=len(findings),
            findings=findings,
            replay_skipped=tuple(c.conversation_id for c in checks if not c.replayed),
            heads={c.conversation_id: c.head for c in checks if c.head is not None},
            rederived=sum(c.rederived for c in checks),
        )


def recorded_inbound(row: Mapping[str, Any]) -> RecordedInbound:
    """A stored inbound row (`inbound`, `received_at_ms`, `policy_version`, as the store
    and a bundle's `inbounds.jsonl` hold them) as replay takes it; `ValidationError` when
    it is not one."""
    return RecordedInbound.model_validate(
        {key: row.get(key) for key in ("inbound", "received_at_ms", "policy_version")}
    )


def verify_conversation(
    conversation_id: str,
    stored: Sequence[Link],
    inbounds: Sequence[Mapping[str, Any]],
    policy_for: PolicyFor,
    *,
    version: int | None = None,
    head: ChainHead | None = None,
) -> ConversationCheck:
    """Check one conversation's chain (against the stream `version` or a recorded `head`,
    see `first_break`) and replay its `inbounds` (stored rows, by position) under their
    recorded policies."""
    erased = has_erasure(stored)
    first = first_break(conversation_id, stored, version=version, head=head)
    rederived = 0
    if first is None and not erased:
        first = _replay(conversation_id, stored, inbounds, policy_for)
    elif first is None:
        first, rederived = _rederive(conversation_id, stored, policy_for)
    return ConversationCheck(
        conversation_id=conversation_id,
        events=len(stored),
        inbounds=len(inbounds),
        replayed=not erased,
        head=head_of(stored),
        finding=first,
        rederived=rederived,
    )


def _unreadable(
    conversation_id: str, detail: str, seq: int | None = None, position: int | None = None
) -> Finding:
    return Finding(
        problem="unreadable",
        conversation_id=conversation_id,
        seq=seq,
        position=position,
        detail=detail,
    )


def _events(conversation_id: str, stored: Sequence[Link]) -> list[EventEnvelope] | Finding:
    """The stored events as envelopes, or the first that does not read as one."""
    events: list[EventEnvelope] = []
    for event in stored:
        try:
            # Sealed personal values (`domain.personal`) are replayed as opened by the store.
            events.append(EventEnvelope.model_validate_json(event.opened or event.envelope))
        except ValidationError as exc:
            return _unreadable(
                conversation_id,
                f"the stored event does not read as an event ({first_error(exc)})",
                event.seq,
            )
    return events


def _rederive(
    conversation_id: str, stored: Sequence[Link], policy_for: PolicyFor
) -> tuple[Finding | None, int]:
    """An erased conversation's first recorded decision that its recorded features do not
    give again, and how many were re-derived."""
    events = _events(conversation_id, stored)
    if isinstance(events, Finding):
        return events, 0
    try:
        result = check_recorded_decisions(conversation_id, events, policy_for)
    except DomainError as exc:
        return _unreadable(conversation_id, f"cannot re-derive its decisions: {exc}"), 0
    if not result.differences:
        return None, result.checked
    difference = result.differences[0]
    return Finding(
        problem="replay difference",
        conversation_id=conversation_id,
        seq=difference.position,
        detail=(
            f"{difference.aspect} recorded {difference.recorded!r}, re-derived from the "
            f"recorded features {difference.replayed!r} (delivery {difference.delivery_id})"
        ),
    ), result.checked


def _replay(
    conversation_id: str,
    stored: Sequence[Link],
    inbounds: Sequence[Mapping[str, Any]],
    policy_for: PolicyFor,
) -> Finding | None:
    def unreadable(detail: str, seq: int | None = None, position: int | None = None) -> Finding:
        return _unreadable(conversation_id, detail, seq, position)

    events = _events(conversation_id, stored)
    if isinstance(events, Finding):
        return events
    recorded: list[RecordedInbound] = []
    for position, row in enumerate(inbounds, start=1):
        try:
            recorded.append(recorded_inbound(row))
        except ValidationError as exc:
            return unreadable(
                f"the stored inbound does not read as an inbound ({first_error(exc)})",
                position=position,
            )
    try:
        result = replay_conversation(conversation_id, recorded, events, policy_for)
    except DomainError as exc:
        return unreadable(f"cannot replay: {exc}")
    if not result.differences:
        return None
    difference = result.differences[0]
    seq = next((env.seq for env in events if env.delivery_id == difference.delivery_id), None)
    return Finding(
        problem="replay difference",
        conversation_id=conversation_id,
        seq=seq,
        position=difference.position,
        detail=(
            f"{difference.aspect} recorded {difference.recorded!r}, replayed "
            f"{difference.replayed!r} (delivery {difference.delivery_id})"
        ),
    )


def first_error(exc: ValidationError) -> str:
    """The first validation error, in one short phrase (where: what)."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error.get("loc", ())) or "(root)"
    return f"{where}: {error.get('msg', 'invalid')}"
