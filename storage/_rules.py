"""Rules every store applies the same way, so the implementations cannot drift apart:
what a valid append is, how JSON is written, and how ticket events become ticket rows."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.events import (
    EventEnvelope,
    HandedBack,
    TicketClaimed,
    TicketOpened,
    TicketReopened,
    TicketResolved,
)
from storage.ports import STATE_KEY_MAX_CHARS, STATE_VALUE_MAX_BYTES, Commit, TicketRow


def check_events(
    conversation_id: str, expected_version: int, events: Sequence[EventEnvelope]
) -> None:
    """Refuse events of another conversation or with a gap: the `(conversation_id, seq)`
    UNIQUE constraint catches a repeat, but only this catches a hole."""
    if expected_version < 0:
        raise ValueError(f"expected_version must be 0 or more, not {expected_version}.")
    for offset, envelope in enumerate(events, start=1):
        if envelope.conversation_id != conversation_id:
            raise ValueError(
                f"An event of conversation {envelope.conversation_id!r} cannot be appended "
                f"to conversation {conversation_id!r}."
            )
        if envelope.seq != expected_version + offset:
            raise ValueError(
                f"Event seq {envelope.seq} in conversation {conversation_id!r} should be "
                f"{expected_version + offset}: sequence numbers continue the stream without gaps."
            )


def dumps(value: Any) -> str:
    """Compact JSON; NaN and infinities are refused because they are not JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def json_copy(value: dict[str, Any]) -> dict[str, Any]:
    """What a JSON column would give back: a deep copy that shares nothing with the
    caller, and a `TypeError`/`ValueError` now for anything that is not JSON."""
    copied: dict[str, Any] = json.loads(dumps(value))
    return copied


@dataclass(frozen=True, slots=True)
class OpenTicket:
    row: TicketRow


@dataclass(frozen=True, slots=True)
class ClaimTicket:
    key: str
    by: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class ResolveTicket:
    key: str
    by: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class ReopenTicket:
    """A resolved ticket live again: claimed by `holder`, or open when None."""

    key: str
    holder: str | None
    at_ms: int


TicketChange = OpenTicket | ClaimTicket | ResolveTicket | ReopenTicket


def ticket_changes(commit: Commit) -> list[TicketChange]:
    """Ticket rows to write for a commit's ticket events (opened → inserted unless the key
    exists; claimed → claimed if still open; resolved or handed back → resolved; reopened →
    claimed by its holder, or open, if resolved). A change is timed by the event's
    own envelope when the commit carries it, else by when the inbound was received."""
    changes: list[TicketChange] = []
    for event in commit.ticket_events:
        at_ms = next(
            (env.at_ms for env in commit.events if env.event == event), commit.received_at_ms
        )
        match event:
            case TicketOpened():
                row = TicketRow(
                    key=event.ticket_key,
                    conversation_id=commit.conversation_id,
                    kind=event.kind,
                    reason=event.reason,
                    quote_id=event.quote_id,
                    opened_at_ms=at_ms,
                    updated_at_ms=at_ms,
                )
                changes.append(OpenTicket(row))
            case TicketClaimed():
                changes.append(ClaimTicket(event.ticket_key, event.by, at_ms))
            case TicketResolved():
                changes.append(ResolveTicket(event.ticket_key, event.by, at_ms))
            case TicketReopened():
                changes.append(ReopenTicket(event.ticket_key, event.holder, at_ms))
            case HandedBack() if event.ticket_key is not None:
                changes.append(ResolveTicket(event.ticket_key, event.by, at_ms))
            case HandedBack():
                pass  # handed back with no ticket held: no row to change
    return changes


def check_limit(limit: int) -> None:
    """Refuse a read limit that asks for nothing, the same way in every store."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"limit must be a whole number of 1 or more, not {limit!r}.")


def check_state_key(key: str) -> None:
    """Refuse a key no store can hold, the same way in every store."""
    if not isinstance(key, str) or not 1 <= len(key) <= STATE_KEY_MAX_CHARS:
        shown = f"{len(key)} characters" if isinstance(key, str) else type(key).__name__
        raise ValueError(
            f"An adapter state key must be 1 to {STATE_KEY_MAX_CHARS} characters, not {shown}."
        )
    key.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError, a ValueError


def state_json(key: str, value: Mapping[str, Any]) -> str:
    """The JSON text a store keeps for `put_state(key, value)`, after every check, so the
    stores refuse the same values with the same error."""
    check_state_key(key)
    if not isinstance(value, Mapping):
        raise ValueError(
            f"Adapter state {key!r} must be a JSON object, not {type(value).__name__}."
        )
    try:
        text = dumps(dict(value))
        size = len(text.encode("utf-8"))  # a lone surrogate cannot be stored as UTF-8
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"Adapter state {key!r} is not JSON: {exc}") from exc
    if size > STATE_VALUE_MAX_BYTES:
        raise ValueError(
            f"Adapter state {key!r} is {size} bytes of JSON; the limit is "
            f"{STATE_VALUE_MAX_BYTES} bytes."
        )
    return text
