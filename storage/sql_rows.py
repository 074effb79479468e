"""Rows as both SQL stores (`storage.sqlite`, `storage.postgres`) write and read them: the
column lists and the conversions between the ports' values and table rows, so the two
backends cannot drift apart in what a row means. Pure: no connection, no SQL dialect."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from domain import GENERATOR
from domain.chain import Link
from domain.events import EventEnvelope
from storage import sealing
from storage._rules import dumps
from storage.errors import StorageError
from storage.ports import (
    PENDING_ANSWER_SCHEMA_VERSION,
    MetricsProjection,
    OutboxItem,
    PendingAnswer,
    RebuildSummary,
    StoredInbound,
    TicketRow,
)
from storage.projections import (
    PROJECTION_SCHEMA_VERSION,
    QUOTES,
    CounterKey,
    Projection,
    StreamFacts,
    contribution,
    count_table,
)
from storage.projections import Ending as _Ending

OUTBOX_COLUMNS = (
    "key, conversation_id, channel, payload, created_at_ms, available_at_ms, attempts, "
    "status, last_error, remote_id, lease_until_ms, sent_at_ms, lease_owner"
)


TICKET_COLUMNS = (
    "key, conversation_id, kind, reason, status, claimed_by, resolved_by, quote_id, "
    "opened_at_ms, updated_at_ms, schema_version, generator"
)


def outbox_row(item: OutboxItem) -> tuple[object, ...]:
    """An item as the values of `OUTBOX_COLUMNS`, its payload as compact JSON text."""
    return (
        item.key,
        item.conversation_id,
        item.channel,
        dumps(item.payload),
        item.created_at_ms,
        item.available_at_ms,
        item.attempts,
        item.status,
        item.last_error,
        item.remote_id,
        item.lease_until_ms,
        item.sent_at_ms,
        item.lease_owner,
    )


def outbox_item(row: Sequence[Any]) -> OutboxItem:
    """The item a row of `OUTBOX_COLUMNS` holds (a fresh copy of its payload)."""
    (key, conversation_id, channel, payload, created, available, attempts, status, error,
     remote_id, lease_until, sent_at, lease_owner) = row  # fmt: skip
    return OutboxItem(
        key=key,
        conversation_id=conversation_id,
        channel=channel,
        payload=json.loads(payload),
        created_at_ms=created,
        available_at_ms=available,
        attempts=attempts,
        status=status,
        last_error=error,
        remote_id=remote_id,
        lease_until_ms=lease_until,
        sent_at_ms=sent_at,
        lease_owner=lease_owner,
    )


def ticket_row(row: Sequence[Any]) -> TicketRow:
    """The ticket a row of `TICKET_COLUMNS` holds."""
    names = [name.strip() for name in TICKET_COLUMNS.split(",")]
    values = dict(zip(names, row, strict=True))
    values["generator_version"] = values.pop("generator")
    return TicketRow.model_validate(values)


def event_rows(events: Iterable[EventEnvelope]) -> list[tuple[object, ...]]:
    """Each event as (conversation, seq, at, policy, type, delivery, envelope JSON): the
    JSON is the text stored and linked in the chain unless sealing replaces it."""
    return [
        (
            env.conversation_id,
            env.seq,
            env.at_ms,
            env.policy_version,
            env.event.type,
            env.delivery_id,
            env.model_dump_json(),
        )
        for env in events
    ]


def answer_row(answer: PendingAnswer) -> tuple[object, ...]:
    """A pending answer as its table row, stamped with its schema version and generator."""
    return (
        answer.key,
        answer.conversation_id,
        answer.delivery_id,
        dumps(answer.payload),
        answer.created_at_ms,
        PENDING_ANSWER_SCHEMA_VERSION,
        GENERATOR,
    )


def stored_inbound(row: Sequence[Any]) -> StoredInbound:
    """A stored inbound from its row and its conversation's keys (a JSON object of key id
    to hex, or NULL), with what is sealed opened (or `[erased]` when the key is gone)."""
    (
        conversation_id,
        position,
        delivery_id,
        received_at_ms,
        policy_version,
        inbound,
        generator,
        key_json,
    ) = row
    keys = {int(k): bytes.fromhex(v) for k, v in json.loads(key_json or "{}").items()}
    return StoredInbound(
        conversation_id=conversation_id,
        position=position,
        delivery_id=delivery_id,
        received_at_ms=received_at_ms,
        policy_version=policy_version,
        inbound=sealing.open_inbound(json.loads(inbound), keys, conversation_id),
        generator_version=generator,
    )


def fact_values(facts: StreamFacts) -> tuple[object, ...]:
    """A conversation's projection facts as the projection table's fact columns."""
    return (
        facts.started_at_ms,
        facts.prospect_messages,
        facts.qualified_at_ms,
        facts.ending,
        facts.first_from_state,
        facts.current_state,
        json.dumps(list(facts.reached), ensure_ascii=False),
        facts.quotes_issued,
        facts.quotes_revised,
        facts.quotes_superseded,
    )


def facts_from_row(row: Sequence[Any]) -> StreamFacts:
    """The facts a projection row's fact columns hold."""
    started, messages, qualified, ending, first, current, reached, issued, revised, gone = row
    ending_value: _Ending | None = ending
    return StreamFacts(
        started_at_ms=started,
        prospect_messages=messages,
        qualified_at_ms=qualified,
        ending=ending_value,
        first_from_state=first,
        current_state=current,
        reached=tuple(json.loads(reached)),
        quotes_issued=issued,
        quotes_revised=revised,
        quotes_superseded=gone,
    )


def metrics_rows(rows: Sequence[Sequence[Any]]) -> tuple[dict[str, dict[str, int]], list[int]]:
    """The metrics read's rows (`METRICS_READ` of either store) as the counters table and the ascending times. Rows of another
    projection schema mean the projections were not rebuilt after an upgrade: refused."""
    counters: Counter[CounterKey] = Counter()
    times: list[int] = []
    for kind, schema_version, engaged, ending, first, current, reached, value in rows:
        if schema_version != PROJECTION_SCHEMA_VERSION:
            raise ValueError(
                f"The stored projections are schema version {schema_version}, this salesbot "
                f"reads version {PROJECTION_SCHEMA_VERSION}: run `salesbot projections rebuild`."
            )
        if kind == "time":
            times.append(value)
            continue
        if kind == "quotes":
            # Sums of the quote columns, in the third to fifth places (`METRICS_READ`).
            for name, total in (("issued", engaged), ("revised", ending), ("superseded", first)):
                if total:
                    counters[QUOTES, name] += int(total)
            continue
        profile = StreamFacts(
            started_at_ms=0,
            prospect_messages=int(engaged),
            ending=ending,
            first_from_state=first,
            current_state=current,
            reached=tuple(json.loads(reached)),
        )
        for key, one in contribution(profile).items():
            counters[key] += one * value
    times.sort()
    return count_table(counters.items()), times


def links(rows: Iterable[Any], keys: dict[int, bytes]) -> list[Link]:
    """A stream's stored events (`seq, envelope, chain_hash` rows) as chain links, each
    with its sealed values opened by the conversation's `keys`."""
    return [
        Link(
            seq=seq, envelope=envelope, chain_hash=chain, opened=sealing.opened_json(envelope, keys)
        )
        for seq, envelope, chain in rows
    ]


def pending_answers(rows: Iterable[Any]) -> list[PendingAnswer]:
    """`key, conversation_id, delivery_id, payload, created_at_ms` rows, in order."""
    return [
        PendingAnswer(
            key=key,
            conversation_id=conversation_id,
            delivery_id=delivery_id,
            payload=json.loads(payload),
            created_at_ms=created,
        )
        for key, conversation_id, delivery_id, payload, created in rows
    ]


def metrics_projection(rows: Iterable[Any]) -> MetricsProjection:
    """The metrics read's rows as the projection `/metrics` reads; rows of another
    projection schema are a `StorageError` (run `salesbot projections rebuild`)."""
    try:
        counts, times = metrics_rows([tuple(row) for row in rows])
    except ValueError as exc:
        raise StorageError(str(exc)) from None
    return MetricsProjection(counts=counts, qualification_ms=tuple(times))


def rebuild_summary(events: int, projection: Projection, changed: int) -> RebuildSummary:
    """What `rebuild_projections` reports, for `events` stored events folded into
    `projection`, of whose rows `changed` differed from the stored ones."""
    return RebuildSummary(
        events=events,
        conversations=len(projection.facts),
        qualified=len(projection.qualified()),
        quotes=len(projection.quotes),
        changed=changed,
        schema_version=PROJECTION_SCHEMA_VERSION,
        generator=GENERATOR,
    )
