"""Rows as both SQL stores (`storage.sqlite`, `storage.postgres`) write and read them: the
column lists and the conversions between the ports' values and table rows, so the two
backends cannot drift apart in what a row means. Pure: no connection, no SQL dialect."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any

from domain import GENERATOR
from domain.analytics import PERCENTILE_POINTS, Percentiles, percentiles_at
from domain.chain import Link
from domain.events import EventEnvelope, RecordedEvent, UnreadEnvelope, UnreadEvent
from storage import sealing
from storage._rules import dumps
from storage.errors import StorageError
from storage.ports import (
    LEASE_EXPIRED,
    PENDING_ANSWER_SCHEMA_VERSION,
    ConversationLog,
    MetricsProjection,
    OutboxItem,
    PendingAnswer,
    RebuildSummary,
    StoredInbound,
    TicketRow,
    VerifyLog,
)
from storage.projections import (
    PROJECTION_SCHEMA_VERSION,
    TIME_BITS,
    TIME_LEVELS,
    CounterKey,
    Projection,
    StreamChange,
    StreamFacts,
    count_table,
    shard_of,
    sharded_rows,
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


def claimed_items(rows: Iterable[Any], lease_until_ms: int, owner: str | None) -> list[OutboxItem]:
    """The items claimed rows hand out (`(id, *OUTBOX_COLUMNS)`, read before the claim's
    update): leased to `owner`, and an item whose earlier lease ran out marked so, since its
    send may have been cut short (`LEASE_EXPIRED`)."""
    claimed = []
    for row in rows:
        item = outbox_item(tuple(row)[1:])
        update: dict[str, object] = {
            "status": "in_flight",
            "lease_until_ms": lease_until_ms,
            "lease_owner": owner,
        }
        if item.status == "in_flight":
            update["last_error"] = LEASE_EXPIRED
        claimed.append(item.model_copy(update=update))
    return claimed


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
    """Each event as (conversation, seq, at, policy, type, delivery, stored form): its JSON,
    the text stored and linked in the chain, or, for an event with personal values, its
    `sealing.Masked` form, which the writer seals under the conversation's key
    (`sealed_row`)."""
    return [
        (
            env.conversation_id,
            env.seq,
            env.at_ms,
            env.policy_version,
            env.event.type,
            env.delivery_id,
            sealing.stored_form(env),
        )
        for env in events
    ]


def sealed_row(row: tuple[object, ...], sealer: sealing.Sealer) -> tuple[object, ...]:
    """An `event_rows` row whose stored form is masked, sealed by `sealer`."""
    form = row[6]
    return (*row[:6], sealer.event(form)) if isinstance(form, sealing.Masked) else row


def has_masked(rows: Iterable[tuple[object, ...]]) -> bool:
    """Whether any of `event_rows`' rows waits for the conversation's key."""
    return any(isinstance(row[6], sealing.Masked) for row in rows)


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
    *columns, key_json = row
    keys = {int(k): bytes.fromhex(v) for k, v in json.loads(key_json or "{}").items()}
    return _opened_inbound(columns, keys)


def _opened_inbound(row: Sequence[Any], keys: sealing.Keys) -> StoredInbound:
    """A stored inbound from its row (conversation, position, delivery id, received at,
    policy version, inbound JSON, generator), opened with its conversation's `keys`."""
    conversation_id, position, delivery_id, received_at_ms, policy_version, inbound, generator = row
    return StoredInbound(
        conversation_id=conversation_id,
        position=position,
        delivery_id=delivery_id,
        received_at_ms=received_at_ms,
        policy_version=policy_version,
        inbound=sealing.open_inbound(json.loads(inbound), keys, conversation_id),
        generator_version=generator,
    )


REPLAY_KEY, REPLAY_EVENT, REPLAY_INBOUND, REPLAY_VERSION = 0, 1, 2, 3
"""What a row of a batch read holds (its first column): the kinds `replay_logs` and
`verify_logs` read."""


def replay_read(
    condition: str,
    *,
    verify: bool = False,
    text: str = "NULL",
    integer: str = "NULL",
    blob: str = "NULL",
) -> str:
    """The one query that reads a batch of conversations for `replay_logs` (or, with
    `verify`, `verify_logs`): their keys, events and inbounds — and for verify each stream's
    version and each event's chain hash — as rows of one shape (kind, conversation, key id
    / seq / position / version, type / policy version, delivery id, envelope / inbound JSON,
    received at, generator, key, chain hash) in one statement, so from one snapshot: a
    stream's version, its events and its inbounds are those of one committed state.
    `condition` is the dialect's test of a `conversation_id` column ("IN (?, ?)",
    "= ANY($1::text[])"), which the statement repeats once per part (`read_parts`);
    `text`, `integer` and `blob` its NULL of each column type, typed where the dialect
    needs it."""
    chain = "chain_hash" if verify else text
    sql = (
        f"SELECT {REPLAY_KEY}, conversation_id, key_id, {text}, {text}, {text}, {integer}, "
        f"{text}, key, {text} FROM conversation_keys WHERE conversation_id {condition} "
        f"UNION ALL SELECT {REPLAY_EVENT}, conversation_id, seq, type, delivery_id, envelope, "
        f"{integer}, {text}, {blob}, {chain} FROM events WHERE conversation_id {condition} "
        f"UNION ALL SELECT {REPLAY_INBOUND}, conversation_id, position, policy_version, "
        f"delivery_id, inbound, received_at_ms, generator, {blob}, {text} FROM inbounds "
        f"WHERE conversation_id {condition}"
    )
    if verify:
        sql += (
            f" UNION ALL SELECT {REPLAY_VERSION}, conversation_id, version, {text}, {text}, "
            f"{text}, {integer}, {text}, {blob}, {text} FROM streams "
            f"WHERE conversation_id {condition}"
        )
    return sql


def read_parts(*, verify: bool = False) -> int:
    """How many times `replay_read` repeats its condition (a dialect binding each of its
    parameters once per use, as SQLite's `?`, passes the ids that many times)."""
    return 4 if verify else 3


class _Batch:
    """A batch read's rows (`replay_read`, in any order) sorted by conversation and kind,
    each conversation's events by seq and inbounds by position, so its conversations can
    then be decoded one at a time, as they are asked for."""

    def __init__(self, rows: Iterable[Sequence[Any]]) -> None:
        self.keys: dict[str, dict[int, bytes]] = {}
        self.events: dict[str, list[Sequence[Any]]] = {}
        self.inbounds: dict[str, list[Sequence[Any]]] = {}
        self.versions: dict[str, int] = {}
        for row in rows:
            kind, conversation_id = row[0], row[1]
            if kind == REPLAY_EVENT:
                self.events.setdefault(conversation_id, []).append(row)
            elif kind == REPLAY_INBOUND:
                self.inbounds.setdefault(conversation_id, []).append(row)
            elif kind == REPLAY_VERSION:
                self.versions[conversation_id] = int(row[2])
            else:
                self.keys.setdefault(conversation_id, {})[int(row[2])] = bytes(row[8])

    def events_of(self, conversation_id: str) -> list[Sequence[Any]]:
        return sorted(self.events.get(conversation_id, ()), key=lambda row: int(row[2]))

    def inbounds_of(self, conversation_id: str, keys: sealing.Keys) -> list[StoredInbound]:
        """The conversation's inbounds by position, opened as `inbounds` opens them."""
        return [
            _opened_inbound((*row[1:3], row[4], row[6], row[3], row[5], row[7]), keys)
            for row in sorted(self.inbounds.get(conversation_id, ()), key=lambda r: int(r[2]))
        ]


def replay_logs(
    conversation_ids: Sequence[str], rows: Iterable[Sequence[Any]], decode: Collection[str] | None
) -> Iterator[ConversationLog]:
    """`ConversationLog`s of `conversation_ids`, in that order, from the rows of their
    `replay_read` (in any order): each conversation's events decoded as `load` decodes them
    (`sealing.open_events` over its stored JSON in seq order, with its keys) — those whose
    type is in `decode`, or all when it is None; the others as `UnreadEnvelope`s — and its
    inbounds opened as `inbounds` opens them.

    Each conversation is decoded when the caller asks for it, not the whole batch at once:
    then only one conversation's decoded objects are alive at a time, as with `load`. (A
    batch of 200 decoded at once kept about 100,000 objects alive, which the garbage
    collector walked again and again: decoding cost 1.6× as much.)"""
    batch = _Batch(rows)
    for conversation_id in conversation_ids:
        its_keys = batch.keys.get(conversation_id, {})
        its_events = batch.events_of(conversation_id)
        decoded = iter(
            sealing.open_events(
                (row[5] for row in its_events if decode is None or row[3] in decode), its_keys
            )
        )
        recorded: list[RecordedEvent] = [
            next(decoded)
            if decode is None or row[3] in decode
            else UnreadEnvelope(conversation_id, int(row[2]), row[4], UnreadEvent(row[3]))
            for row in its_events
        ]
        yield ConversationLog(
            conversation_id, recorded, batch.inbounds_of(conversation_id, its_keys)
        )


def verify_logs(
    conversation_ids: Sequence[str], rows: Iterable[Sequence[Any]]
) -> Iterator[VerifyLog]:
    """`VerifyLog`s of `conversation_ids`, in that order, from the rows of their
    `replay_read(verify=True)` (in any order): each conversation's stream version as
    `version` reads it, its events as `stored_events` returns them (`links`: the stored
    JSON and chain hash untouched, the sealed values opened with its keys) and its
    inbounds as `inbounds` opens them — each conversation opened when it is asked for, as
    in `replay_logs`."""
    batch = _Batch(rows)
    for conversation_id in conversation_ids:
        its_keys = batch.keys.get(conversation_id, {})
        yield VerifyLog(
            conversation_id,
            batch.versions.get(conversation_id, 0),
            links(((row[2], row[5], row[9]) for row in batch.events_of(conversation_id)), its_keys),
            batch.inbounds_of(conversation_id, its_keys),
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


FACT_COLUMNS = (
    "started_at_ms, prospect_messages, qualified_at_ms, ending, first_from_state, "
    "current_state, reached, quotes_issued, quotes_revised, quotes_superseded"
)
"""The projection row's fact columns (`fact_values`, `facts_from_row`)."""
COUNTER_COLUMNS = "installation, kind, name, shard, value, schema_version, generator"
TIME_COLUMNS = "installation, level, bucket, n, schema_version, generator"


def change_rows(
    conversation_id: str, change: StreamChange
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """What a commit adds to the stored counters and counted times (values of
    `COUNTER_COLUMNS`, `TIME_COLUMNS`: the deltas, the counters' in the conversation's
    shard), sorted by key: every transaction takes the rows' locks in that one order
    (see `SHARDS`)."""
    shard = shard_of(conversation_id)
    counters: list[tuple[object, ...]] = [
        (installation, kind, name, shard, delta, PROJECTION_SCHEMA_VERSION, GENERATOR)
        for (installation, kind, name), delta in sorted(change.counter_deltas.items())
    ]
    times: list[tuple[object, ...]] = [
        (installation, level, bucket, delta, PROJECTION_SCHEMA_VERSION, GENERATOR)
        for (installation, level, bucket), delta in sorted(change.time_deltas.items())
    ]
    return counters, times


def total_rows(
    facts: dict[str, StreamFacts],
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The counters and counted times of these conversations' facts as rows to insert
    (a rebuild, the migration that creates them)."""
    counts, times = sharded_rows(facts)
    return (
        [
            (*key, value, PROJECTION_SCHEMA_VERSION, GENERATOR)
            for key, value in sorted(counts.items())
        ],
        [(*key, n, PROJECTION_SCHEMA_VERSION, GENERATOR) for key, n in sorted(times.items())],
    )


def metrics_read(*, lateral: bool, param: str) -> str:
    """The one statement `/metrics` reads, in the SQL both backends run (CTEs, window
    functions, `CAST`, integer division; `lateral` for PostgreSQL: each level's children
    in a LATERAL subquery that `OFFSET 0` keeps from being pulled up, so it is an index
    range scan per bucket descended into, whatever the planner's statistics say — a fresh
    table without them could otherwise be scanned whole). One statement, so all of it
    comes from one committed snapshot. Its rows, (tag, kind, name, a, b):

    - `count`: each counter summed over its shards (`storage.projections.SHARDS`), with
      its rows' schema version in `a`;
    - `streams`: the lowest and highest schema version of the per-conversation rows (two
      index look-ups): rows of another version mean the projections were not rebuilt;
    - `qualified`: how many qualification times are counted;
    - `rank`: for each rank `domain.analytics.percentile_ranks` names, the time of that
      rank, found by descending the counted times' radix tree (`TIME_LEVELS`): at each
      level, the children of the bucket the rank fell in, their running sum (a window) and
      the child whose span holds the rank. At most 32 children per level for each
      distinct bucket the ranks fell in, whatever the number of conversations.

    All of one installation's (`param`, the dialect's first bind parameter, names it):
    every key starts with the installation, so the read walks that installation's rows.
    """
    top = TIME_LEVELS - 1
    fanout = 1 << TIME_BITS
    ranks: list[str] = []
    for point in PERCENTILE_POINTS:
        lo = f"((n - 1) * {point.numerator}) / {point.denominator}"
        ranks.append(f"SELECT {lo} AS r FROM total WHERE n > 0")
        ranks.append(
            f"SELECT CASE WHEN {lo} + 1 < n THEN {lo} + 1 ELSE n - 1 END FROM total WHERE n > 0"
        )
    parts = [
        f"c{top} AS (SELECT bucket, n FROM projection_times WHERE installation = {param} "
        f"AND level = {top} AND n > 0)",
        f"total AS (SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) AS n FROM c{top})",
        "ranks AS (" + " UNION ".join(ranks) + ")",
        f"w{top} AS (SELECT bucket, n, CAST(SUM(n) OVER (ORDER BY bucket) AS BIGINT) - n "
        f"AS below FROM c{top})",
        f"p{top} AS (SELECT k.r, w.bucket, k.r - w.below AS rest FROM ranks k JOIN w{top} w "
        "ON k.r >= w.below AND k.r < w.below + w.n)",
    ]
    for level in range(top - 1, -1, -1):
        up = level + 1
        children = (
            f"t.installation = {param} AND t.level = {level} AND t.bucket BETWEEN d.bucket * {fanout} "
            f"AND d.bucket * {fanout} + {fanout - 1} AND t.n > 0"
        )
        # The buckets the ranks fell in (often one for all four), each read once.
        parts.append(f"d{up} AS (SELECT DISTINCT bucket FROM p{up})")
        if lateral:
            parts.append(
                f"c{level} AS (SELECT d.bucket AS parent, t.bucket, t.n FROM d{up} d "
                f"CROSS JOIN LATERAL (SELECT t.bucket, t.n FROM projection_times t "
                f"WHERE {children} OFFSET 0) t)"
            )
        else:  # SQLite reads CROSS JOIN's left side first: the few parents, then the index
            parts.append(
                f"c{level} AS (SELECT d.bucket AS parent, t.bucket, t.n FROM d{up} d "
                f"CROSS JOIN projection_times t WHERE {children})"
            )
        parts += [
            f"w{level} AS (SELECT parent, bucket, n, CAST(SUM(n) OVER (PARTITION BY parent "
            f"ORDER BY bucket) AS BIGINT) - n AS below FROM c{level})",
            f"p{level} AS (SELECT p.r, w.bucket, p.rest - w.below AS rest FROM p{up} p "
            f"JOIN w{level} w ON w.parent = p.bucket AND p.rest >= w.below "
            "AND p.rest < w.below + w.n)",
        ]
    return (
        "WITH " + ",\n".join(parts) + "\n"
        "SELECT 'count', kind, name, schema_version, CAST(SUM(value) AS BIGINT) "
        f"FROM projection_counters WHERE installation = {param} "
        "GROUP BY kind, name, schema_version\n"
        "UNION ALL SELECT 'streams', NULL, NULL, "
        "(SELECT MIN(schema_version) FROM projection_streams), "
        "(SELECT MAX(schema_version) FROM projection_streams)\n"
        "UNION ALL SELECT 'qualified', NULL, NULL, NULL, n FROM total\n"
        "UNION ALL SELECT 'rank', NULL, NULL, r, bucket FROM p0"
    )


def qualification_times_read(param: str) -> str:
    """One installation's (`param`) counted qualification times at level 0."""
    return (
        f"SELECT bucket, n FROM projection_times WHERE installation = {param} AND level = 0 "
        "AND n > 0 ORDER BY bucket"
    )


"""Every counted qualification time and how many conversations took it, ascending: the
chart's bootstrap resamples the times themselves (`bot.queries`), so this read is linear
in the distinct times; `/metrics`' numbers never make it."""


def qualification_times(rows: Iterable[Any]) -> tuple[int, ...]:
    """`QUALIFICATION_TIMES_READ`'s rows as one time per qualified conversation, ascending."""
    return tuple(int(ms) for ms, count in rows for _ in range(int(count)))


def _refused(schema_version: object) -> ValueError:
    return ValueError(
        f"The stored projections are schema version {schema_version}, this salesbot "
        f"reads version {PROJECTION_SCHEMA_VERSION}: run `salesbot projections rebuild`."
    )


def metrics_rows(rows: Sequence[Sequence[Any]]) -> tuple[dict[str, dict[str, int]], Percentiles]:
    """The metrics read's rows (`metrics_read`) as the counters table and the qualification
    percentiles. Rows of another projection schema mean the projections were not rebuilt
    after an upgrade: refused (ValueError)."""
    counters: Counter[CounterKey] = Counter()
    qualified = 0
    at: dict[int, int] = {}
    for tag, kind, name, a, b in rows:
        if tag == "count":
            if a != PROJECTION_SCHEMA_VERSION:
                raise _refused(a)
            counters[kind, name] += int(b)
        elif tag == "streams":
            for version in (a, b):
                if version is not None and version != PROJECTION_SCHEMA_VERSION:
                    raise _refused(version)
        elif tag == "qualified":
            qualified = int(b)
        else:
            at[int(a)] = int(b)
    try:
        time_to_qualify = percentiles_at(qualified, at.__getitem__)
    except KeyError:  # a rank the descent did not reach: the counts do not add up
        raise ValueError(
            "The stored qualification times do not add up: run `salesbot projections rebuild`."
        ) from None
    return count_table(counters.items()), time_to_qualify


def links(rows: Iterable[Any], keys: dict[int, bytes]) -> list[Link]:
    """A stream's stored events (`seq, envelope, chain_hash` rows) as chain links, each
    with its sealed values opened by the conversation's `keys` (each key's cipher set up
    once for the stream)."""
    ciphers: dict[int, Any] = {}
    return [
        Link(
            seq=seq,
            envelope=envelope,
            chain_hash=chain,
            opened=sealing.opened_json(envelope, keys, ciphers),
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
        counts, time_to_qualify = metrics_rows([tuple(row) for row in rows])
    except ValueError as exc:
        raise StorageError(str(exc)) from None
    return MetricsProjection(counts=counts, time_to_qualify=time_to_qualify)


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
