"""The storage ports: small `Protocol`s that the runtime depends on, and their value types.

Every implementation (`storage.memory.MemoryStore`, `storage.sqlite.SqliteStore`, later
PostgreSQL) passes the same contract tests (`tests/storage/`). Times are integer epoch
milliseconds chosen by the caller: the store never reads a clock, so tests and replays
control time completely.

The central operation is `Store.commit`: everything one handled inbound produces (events,
the delivery id, the raw inbound, outbox items, ticket changes, the projections' update and
the queries still to answer) is written in one transaction, and only then may the runtime
acknowledge the platform. Everything else is
idempotent by a key, so a platform retry, a crash-restart or a replay is ordinary input.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, NamedTuple, Protocol, Self

from domain import GENERATOR
from domain.analytics import Percentiles
from domain.chain import Link
from domain.events import (
    EventEnvelope,
    HandedBack,
    RecordedEvent,
    TicketClaimed,
    TicketKind,
    TicketOpened,
    TicketReopened,
    TicketResolved,
)
from domain.model import Frozen

OutboxStatus = Literal["pending", "in_flight", "sent", "dead"]

LEASE_EXPIRED = "timeout: lease expired"
"""`last_error` of an item re-claimed after its sender's lease ran out: the sender may have
died after posting, so the next sender must look before it resends (RELIABILITY rule 5)."""
TicketStatus = Literal["open", "claimed", "resolved"]
TicketEvent = TicketOpened | TicketClaimed | TicketResolved | TicketReopened | HandedBack

STATE_KEY_MAX_CHARS = 1024
STATE_VALUE_MAX_BYTES = 256 * 1024
"""Adapter state is small by design (a conversation reference, a message id): a key or a
value beyond these limits is a bug in the adapter, refused before anything is written."""
STATE_SCHEMA_VERSION = 1
"""Version of an adapter-state record as a store keeps it (key, JSON object, time). The
JSON's own shape belongs to the adapter, which versions it inside the value if it needs to."""


class OutboxItem(Frozen):
    """One message to send, with its delivery bookkeeping.

    `key` is the idempotency key (the same reply enqueued twice is one item); `channel` is
    the pacing key chosen by the runtime ("slack:C123", "playground:leads"): items of one
    channel are handed out strictly in enqueue order. `payload` is the platform-neutral
    reply as JSON.
    """

    key: str
    conversation_id: str
    channel: str
    payload: dict[str, Any]
    created_at_ms: int
    available_at_ms: int
    attempts: int = 0
    status: OutboxStatus = "pending"
    last_error: str | None = None
    remote_id: str | None = None
    lease_until_ms: int | None = None
    sent_at_ms: int | None = None
    lease_owner: str | None = None
    """The process boot holding the lease (in flight only; None for a claim without one)."""


class LeaseOwner(Frozen):
    """A process boot that may hold outbox leases, as its last heartbeat left it.

    `owner` is unique per boot; `identity` names what survives a restart (a slot only one
    live process can hold at a time), so a new boot recognises its own previous boots."""

    owner: str
    identity: str | None = None
    started_at_ms: int
    alive_until_ms: int


class OutboxStats(Frozen):
    """The outbox of one platform at a glance, for monitoring (`/metrics`). A platform is
    the part of a channel before its first ":" ("slack" for "slack:C123"; the whole
    channel when it has none)."""

    platform: str
    pending: int
    """Items still to send (pending or in flight)."""
    oldest_pending_created_at_ms: int | None
    """When the oldest of them was enqueued; None when none is pending."""
    dead: int
    """Dead-lettered items."""


TICKET_SCHEMA_VERSION = 1
"""Version of a ticket row as a store keeps it (`TicketRow`)."""


class TicketRow(Frozen):
    """A request for a human, as the ticket table holds it (one row per ticket key), with
    the row's schema version and the salesbot that last wrote it."""

    key: str
    conversation_id: str
    kind: TicketKind
    reason: str
    status: TicketStatus = "open"
    claimed_by: str | None = None
    resolved_by: str | None = None
    quote_id: str | None = None
    opened_at_ms: int
    updated_at_ms: int
    schema_version: int = TICKET_SCHEMA_VERSION
    generator_version: str | None = GENERATOR
    """The salesbot that opened, claimed or resolved the ticket last; None for a row last
    written before ticket rows recorded it (a store migrated from an earlier release)."""


class ClaimOutcome(Frozen):
    """The answer to a ticket claim. When `claimed` is False, `holder` names who has it
    (the claimer, or for a resolved ticket the resolver); None when the ticket is unknown."""

    claimed: bool
    holder: str | None = None


class StoredInbound(Frozen):
    """A raw inbound as received, kept verbatim so the conversation can be replayed. The
    inbound's JSON carries its schema version; the row, the salesbot that stored it."""

    conversation_id: str
    position: int
    delivery_id: str
    received_at_ms: int
    policy_version: str
    inbound: dict[str, Any]
    generator_version: str | None = GENERATOR
    """None for an inbound stored before rows recorded it (a store migrated from an earlier
    release): the `generator` of the events its delivery caused says the same."""


PENDING_ANSWER_SCHEMA_VERSION = 1
"""Version of a pending-answer record as a store keeps it (the payload is the runtime's)."""


class PendingAnswer(Frozen):
    """A query a commit asked for, to be answered after it (`DeferredAnswers`).

    `key` is deterministic (from the delivery id and the query's index), so the same
    delivery can only record the same pending answer. `payload` belongs to the runtime
    (the query, who asked, where the answer goes); the store keeps it as JSON.
    """

    key: str
    conversation_id: str
    delivery_id: str
    payload: dict[str, Any]
    created_at_ms: int


class TimerDue(Frozen):
    """A conversation's next timer: `due_at_ms`, or None when nothing is due until its next
    inbound (`domain.sla.next_timer_ms`)."""

    due_at_ms: int | None


class Commit(Frozen):
    """Everything one handled inbound produces, written in one transaction.

    `events` must belong to `conversation_id` and be numbered `expected_version + 1`,
    `expected_version + 2`, … (as `domain.decide` numbers them). `ticket_events` are mirrored
    into the ticket table: opened → inserted unless the key exists; claimed → claimed if still
    open; resolved or handed back → resolved; reopened → claimed by its holder (or open) if
    resolved. `inbound` is the platform-neutral inbound JSON
    (None for work with no inbound, which is then not replayable).
    """

    conversation_id: str
    expected_version: int
    delivery_id: str
    received_at_ms: int
    policy_version: str
    inbound: dict[str, Any] | None
    events: tuple[EventEnvelope, ...] = ()
    outbox: tuple[OutboxItem, ...] = ()
    ticket_events: tuple[TicketEvent, ...] = ()
    answers: tuple[PendingAnswer, ...] = ()
    """Queries to answer after this commit (see `DeferredAnswers`); recorded with it."""
    timer: TimerDue | None = None
    """When the conversation's timers next have something to decide, as of the version this
    commit reaches (see `Timers`); None leaves the schedule as it was."""


class CommitResult(Frozen):
    """`committed`, with the stream version after the commit; or `duplicate` (the delivery
    was committed before: nothing was written), with the stream's current version."""

    status: Literal["committed", "duplicate"]
    version: int


class EventStore(Protocol):
    """Per-conversation event streams with optimistic concurrency, plus a global order."""

    async def append(
        self, conversation_id: str, expected_version: int, events: Sequence[EventEnvelope]
    ) -> int:
        """Append `events` in one transaction and return the new version.

        Raises `ConcurrencyError` (nothing written) when the stream is not at
        `expected_version`, and `ValueError` when an event belongs to another conversation
        or the sequence numbers do not continue the stream without a gap.
        """
        ...

    async def load(self, conversation_id: str) -> list[EventEnvelope]:
        """The conversation's events in sequence order; empty for an unknown conversation."""
        ...

    async def stored_events(self, conversation_id: str) -> list[Link]:
        """The conversation's events exactly as stored — each one's JSON text, the bytes its
        link hashes, and its link in the stream's hash chain (`domain.chain`) — in sequence
        order, unvalidated (an event this release cannot read is still returned). Every
        append links its events in its own transaction; empty for an unknown conversation."""
        ...

    async def version(self, conversation_id: str) -> int:
        """The sequence number of the last event (0 for an unknown conversation)."""
        ...

    def iterate_all(self) -> AsyncIterator[EventEnvelope]:
        """Every event of every conversation, in global append order (commit order)."""
        ...

    async def conversation_ids(self) -> list[str]:
        """Conversations with at least one event, in the order their first event arrived."""
        ...


class DeliveryLog(Protocol):
    """Platform delivery ids that were committed (recorded only by `Store.commit`)."""

    async def seen(self, delivery_id: str) -> bool:
        """True when a commit with this delivery id has been made durable."""
        ...

    async def recent(self, since_ms: int) -> set[str]:
        """Delivery ids received at or after `since_ms`: the runtime rebuilds its in-memory
        dedupe view from this after a restart (RELIABILITY rule 2)."""
        ...


class Outbox(Protocol):
    """Messages waiting to be sent, leased to a sender so a crash mid-send is resumed.

    Per channel, items are handed out in enqueue order and never overtake each other: an
    item is not claimable while an older item of its channel is still unsent and not itself
    claimable (waiting for its retry time, or leased to a sender). That keeps replies in
    order across retries and restarts; sent and dead-lettered items no longer block.

    Across channels, claims are fair: each channel's oldest claimable item comes before any
    channel's second one, so a backlog in one channel never crowds out another's reply.

    Leases belong to owners, one per process boot, which renew a heartbeat
    (`heartbeat`). A lease is taken over when it expires, or at once when its owner is
    gone: it released its leases on a graceful stop (`release_owner`), its heartbeat ran
    out (it was killed), or a new boot of the same identity declared it a previous boot.
    A live owner's unexpired leases are never taken.
    """

    async def enqueue(self, items: Sequence[OutboxItem]) -> None:
        """Add items; an item whose key exists already is ignored (first one wins)."""
        ...

    async def claim_due(
        self,
        now_ms: int,
        limit: int,
        lease_ms: int,
        *,
        owner: str | None = None,
        prefixes: Sequence[str] | None = None,
        exclude: Collection[str] = (),
        per_channel: int | None = None,
    ) -> list[OutboxItem]:
        """Lease up to `limit` due items to `owner` and return them as `in_flight`.

        Due means pending with `available_at_ms <= now_ms`, or in flight with a lease that
        expired (`lease_until_ms <= now_ms`) or whose owner is gone (no heartbeat alive at
        `now_ms`): its sender died or stopped; this is how sending resumes after a restart.
        A re-claimed item gets `last_error = LEASE_EXPIRED`, since it may have been posted.

        Only channels starting with one of `prefixes` (all when None: a process claims
        only what it has a sender for), never a channel in `exclude` (e.g. one whose pacing
        is not due yet), at most `per_channel` items of one channel (all when None).
        Round-robin: every channel's first claimable item, oldest first, then every
        channel's second, and so on. The lease lasts until `now_ms + lease_ms`.
        """
        ...

    async def heartbeat(
        self, owner: str, now_ms: int, alive_until_ms: int, *, identity: str | None = None
    ) -> list[str]:
        """Record that `owner` is alive until `alive_until_ms` (insert or renew).

        With `identity` — a name only one live process holds at a time — every other
        owner recorded under it is a previous boot of this process, hence gone: it is
        forgotten and its leases are claimable at once. Owners whose heartbeat ran out
        before `now_ms` are forgotten too. Returns the previous boots forgotten.
        """
        ...

    async def release_owner(self, owner: str, now_ms: int) -> int:
        """A graceful stop: every item still leased to `owner` is pending again from
        `now_ms` (marked `LEASE_EXPIRED`: its send may have been cut short, so the next
        sender looks before resending), and the owner is forgotten. Returns how many."""
        ...

    async def lease_owners(self) -> list[LeaseOwner]:
        """The owners with a recorded heartbeat, oldest boot first."""
        ...

    async def release(
        self, keys: Sequence[str], available_at_ms: int, *, owner: str | None = None
    ) -> int:
        """Give leased items back without counting an attempt (a sender that stops early,
        e.g. behind a failed item of the same channel); returns how many were in flight.
        With `owner`, only items still leased to that owner (not one taken over since)."""
        ...

    async def mark_sent(self, key: str, at_ms: int, remote_id: str | None = None) -> bool:
        """Record a successful send; False when the key is unknown or already sent/dead."""
        ...

    async def fail(self, key: str, next_attempt_ms: int, error: str) -> bool:
        """A transient failure: attempts + 1, pending again from `next_attempt_ms`.
        False when the key is unknown or already sent/dead."""
        ...

    async def dead_letter(self, key: str, error: str) -> bool:
        """A permanent failure: never retried. False when unknown or already sent/dead."""
        ...

    async def dead_letters(self) -> list[OutboxItem]:
        """Dead-lettered items, oldest first."""
        ...

    async def outbox_item(self, key: str) -> OutboxItem | None:
        """One item by key, whatever its status."""
        ...

    async def sent_items(self, channel_prefix: str, limit: int) -> list[OutboxItem]:
        """The latest `limit` items that were sent in channels starting with
        `channel_prefix`, oldest first (enqueue order): what a window onto the conversations
        shows when it opens (the playground rebuilds its history from this at start). It
        reads sent items from the newest back until it has `limit` of them, so it is a
        start-up read, not a per-request one. `limit` below 1 raises `ValueError`."""
        ...

    async def pending_count(self) -> int:
        """Items still to send (pending or in flight), plus answers still to compose
        (`DeferredAnswers`); 0 means the outbox is drained."""
        ...

    async def outbox_stats(self) -> list[OutboxStats]:
        """Per platform with any pending or dead item, by platform name: a read only, for
        monitoring; it never scans the items already sent."""
        ...


class TicketStore(Protocol):
    """Tickets for humans: opened idempotently by key, claimed first-wins, resolved."""

    async def open_ticket(self, row: TicketRow) -> bool:
        """Insert `row`; True if it is new, False if a ticket with its key exists (unchanged)."""
        ...

    async def claim_ticket(self, key: str, by: str, at_ms: int) -> ClaimOutcome:
        """Claim an open ticket. The first claimer wins; claiming again as the holder is a
        success (a retry); anyone else learns the holder."""
        ...

    async def resolve_ticket(self, key: str, by: str, at_ms: int) -> bool:
        """Resolve an open or claimed ticket; False when unknown or already resolved."""
        ...

    async def ticket(self, key: str) -> TicketRow | None: ...

    async def open_tickets(self) -> list[TicketRow]:
        """Unresolved tickets (open or claimed), oldest first."""
        ...


class InboundLog(Protocol):
    """Raw inbounds, kept verbatim for replay (recorded only by `Store.commit`)."""

    async def inbounds(self, conversation_id: str) -> list[StoredInbound]:
        """The conversation's inbounds by position (1, 2, …)."""
        ...

    async def inbound(self, delivery_id: str) -> StoredInbound | None:
        """The inbound committed under a delivery id (an idempotency key's first request)."""
        ...

    def all_inbounds(self) -> AsyncIterator[StoredInbound]:
        """Every stored inbound in commit order."""
        ...


class ConversationLog(NamedTuple):
    """One conversation's events and inbounds, as `ReplayLogs.replay_logs` reads them."""

    conversation_id: str
    events: list[RecordedEvent]
    """As `load` returns them, except events of types not asked to be decoded (see
    `replay_logs`)."""
    inbounds: list[StoredInbound]
    """As `inbounds` returns them."""


REPLAY_BATCH = 200
"""Conversations read per query by `replay_logs` and `verify_logs` (the stores' default)."""


class ReplayLogs(Protocol):
    """Many conversations' events and inbounds in one pass, for replay: what `load` and
    `inbounds` give one conversation at a time, without two round trips per conversation."""

    def replay_logs(
        self,
        conversation_ids: Sequence[str],
        *,
        decode: Collection[str] | None = None,
        batch: int = REPLAY_BATCH,
    ) -> AsyncIterator[ConversationLog]:
        """One `ConversationLog` per id of `conversation_ids`, in that order (an unknown
        id: no events, no inbounds), read `batch` conversations at a time in one query per
        batch — one snapshot of the store for the batch's events, keys and inbounds.

        Each log's `events` equal `load(id)` and its `inbounds` `inbounds(id)`, with one
        exception asked for: with `decode`, an event whose type is not in it may come as an
        `UnreadEnvelope` (its conversation, seq, delivery id and type, from the log's
        columns), its JSON neither opened nor validated; every event of a type in `decode`
        is decoded exactly as `load` decodes it. (The memory store holds decoded events
        and returns them all.) `batch` below 1 raises `ValueError`."""
        ...


class VerifyLog(NamedTuple):
    """One conversation as `VerifyLogs.verify_logs` reads it: what `salesbot verify`
    checks."""

    conversation_id: str
    version: int
    """As `version` returns it."""
    links: list[Link]
    """As `stored_events` returns them: each event's JSON exactly as stored and its chain
    hash (the bytes the chain is recomputed over), its sealed values opened."""
    inbounds: list[StoredInbound]
    """As `inbounds` returns them."""


class VerifyLogs(Protocol):
    """Many conversations' versions, stored events and inbounds in one pass, for
    verification: what `version`, `stored_events` and `inbounds` give one conversation at
    a time, without three round trips per conversation."""

    def verify_logs(
        self, conversation_ids: Sequence[str], *, batch: int = REPLAY_BATCH
    ) -> AsyncIterator[VerifyLog]:
        """One `VerifyLog` per id of `conversation_ids`, in that order (an unknown id:
        version 0, no events, no inbounds), read `batch` conversations at a time in one
        query per batch — one snapshot of the store for the batch's versions, events, keys
        and inbounds, so a commit landing meanwhile is wholly in a conversation's log or
        wholly absent from it (never events beyond its version, never a version beyond its
        events). `batch` below 1 raises `ValueError`."""
        ...


class PolicyStore(Protocol):
    """Policy texts by version, so any past decision can be re-run under its own policy."""

    async def put_policy(self, version: str, canonical_json: str) -> None:
        """Store a policy's canonical JSON. Idempotent; a different text under a stored
        version raises `ValueError` (versions are content hashes, so that is a bug)."""
        ...

    async def get_policy(self, version: str) -> str | None: ...


class AdapterStateStore(Protocol):
    """Small JSON documents adapters keep between requests and across restarts: where a
    platform conversation is reached (a Teams conversation reference), which message holds
    a card, the answer given to a card action. Keyed by a string the adapter chooses
    ("teams:ref:…"). Not part of the event log and not written by `Store.commit`: losing one
    costs a look-up or a fallback, never a decision.

    Keys are 1 to `STATE_KEY_MAX_CHARS` characters; a value's JSON is at most
    `STATE_VALUE_MAX_BYTES` bytes (UTF-8). Anything else raises `ValueError` and writes nothing.
    """

    async def put_state(self, key: str, value: Mapping[str, Any], at_ms: int) -> None:
        """Insert or replace the value under `key`; durable when this returns. `value` must
        be JSON-serialisable (a set, an object, NaN: `ValueError`, nothing written)."""
        ...

    async def put_state_if_absent(
        self, key: str, value: Mapping[str, Any], at_ms: int
    ) -> dict[str, Any]:
        """Store `value` under `key` unless something is stored there already, and return
        what is stored afterwards: the first writer wins, atomically, so processes sharing
        one store agree on a value any of them may create (the action-signing secret)."""
        ...

    async def get_state(self, key: str) -> dict[str, Any] | None:
        """The value as JSON gives it back (a fresh copy: changing it changes nothing
        stored); None for an unknown key."""
        ...

    async def delete_state(self, key: str) -> bool:
        """Forget `key`; True when something was deleted, False when it was unknown."""
        ...

    async def delete_states_before(self, prefix: str, before_ms: int, limit: int) -> int:
        """Forget up to `limit` values whose key starts with `prefix` (1 to
        `STATE_KEY_MAX_CHARS` characters) and that were last written before `before_ms`;
        returns how many. For short-lived documents no reader deletes (an OAuth state
        nobody came back with): a sweep calls it in bounded batches."""
        ...


class MetricsProjection(Frozen):
    """What `/metrics` reads: the counters the metrics add up from, and the percentiles of
    the qualification times (`storage.projections` defines both). A fixed number of values
    however many conversations there are: the stores keep the counters and the times'
    order statistics current with each commit rather than list the times."""

    counts: dict[str, dict[str, int]]
    """kind → name → how many conversations (no zeros)."""
    time_to_qualify: Percentiles
    """p50 and p90 of the times to qualify, and how many conversations qualified."""


class RebuildSummary(Frozen):
    """What `rebuild_projections` did: `changed` counts the stored projection rows (one per
    conversation, one per quote id, the counters' and counted times' rows) that differed
    from what the log says, 0 when the projections were consistent."""

    events: int
    conversations: int
    qualified: int
    quotes: int
    changed: int
    schema_version: int
    generator: str


class ProjectionStore(Protocol):
    """Projections of the event log, updated in the same transaction as the events they
    fold (by `Store.commit` and `EventStore.append`), so reads never scan the log.

    Every stored projection row carries the projection schema version and the generator
    that wrote it.
    """

    async def metrics_projection(self, installation: str = "") -> MetricsProjection:
        """The metrics' counters and qualification percentiles of one installation's
        conversations ("" the first: `domain.installations`), as of one committed state;
        its cost does not grow with the log or the number of conversations."""
        ...

    async def qualification_times(self, installation: str = "") -> tuple[int, ...]:
        """One time to qualify per qualified conversation of `installation`, ascending:
        what the `/metrics` chart's bootstrap resamples (linear in the conversations, as
        the bootstrap is)."""
        ...

    async def quote_conversation(self, quote_id: str) -> str | None:
        """The conversation that issued `quote_id` (the first, if several did); None when
        no conversation did. An index look-up, not a scan."""
        ...

    async def rebuild_projections(self) -> RebuildSummary:
        """Recompute every projection from the log and replace the stored ones. Idempotent:
        a second rebuild changes nothing (`changed == 0`). Commits made meanwhile are
        folded in, so the result agrees with the log as of its own transaction."""
        ...


class DeferredAnswers(Protocol):
    """Queries answered after the commit that asked for them (an audit, the metrics), so
    their reads never delay the platform's acknowledgement. The commit records a
    `PendingAnswer`; the answer's outbox items are then enqueued and the record removed in
    one transaction. A record still there after a crash is answered at the next start."""

    async def pending_answers(self) -> list[PendingAnswer]:
        """Recorded and not yet answered, oldest first."""
        ...

    async def settle_answer(self, key: str, items: Sequence[OutboxItem]) -> bool:
        """Enqueue `items` (existing keys ignored) and remove the pending answer `key`, in
        one transaction. False, and nothing written, when `key` is not pending (answered
        already, e.g. by another process)."""
        ...


class Timers(Protocol):
    """When each conversation's timers next have something to decide, so the sweeper visits
    only those that are due instead of loading every conversation. One row per conversation
    at most, stamped with the stream version it was computed for: an older computation never
    overwrites a newer one. A store from before this schedule has every conversation due at
    once (the first sweep reschedules each)."""

    async def schedule_timer(
        self, conversation_id: str, due_at_ms: int | None, version: int
    ) -> bool:
        """Set (None: clear) the conversation's next timer as computed at stream `version`;
        False, and nothing written, when the schedule holds a later version's."""
        ...

    async def due_timers(self, now_ms: int, limit: int) -> list[str]:
        """Up to `limit` conversation ids whose timer is due at `now_ms`, earliest first
        (ties by id)."""
        ...


class Erasure(Protocol):
    """Erasing a conversation's personal data (`storage.sealing`, `domain.personal`) and
    finding the conversations the policy's retention erases."""

    async def erase(self, conversation_id: str, expected_version: int, event: EventEnvelope) -> int:
        """In one transaction: delete the conversation's key (its sealed events and inbounds
        then read `[erased]`), redact its copies outside the hash chain (inbounds stored
        before sealing existed, outbox payloads; replies not yet sent are dead-lettered,
        never sent), and append `event` (its `erased` event) at `expected_version` + 1.
        Returns the new version; `ConcurrencyError` when the stream moved on."""
        ...

    async def idle_conversations(self, before_ms: int, limit: int) -> list[str]:
        """Up to `limit` conversation ids whose last event is before `before_ms` and is not an
        erasure, least recently active first (ties by id)."""
        ...


class Store(
    EventStore,
    DeliveryLog,
    Outbox,
    TicketStore,
    InboundLog,
    ReplayLogs,
    VerifyLogs,
    PolicyStore,
    AdapterStateStore,
    ProjectionStore,
    DeferredAnswers,
    Timers,
    Erasure,
    Protocol,
):
    """Everything the runtime persists, with one atomic write for a handled inbound."""

    async def commit(self, commit: Commit) -> CommitResult:
        """Write everything in `commit` atomically, or nothing.

        In order: a delivery id already recorded gives `duplicate` and writes nothing; a
        stream not at `expected_version` raises `ConcurrencyError` and writes nothing;
        otherwise the events are appended, the delivery id recorded, the inbound stored at
        the conversation's next position, the outbox items enqueued (existing keys
        ignored), the ticket events applied, the projections updated and the pending
        answers recorded, and the timer scheduled (`commit.timer`, at the version
        reached). When this returns `committed`, all of it is durable. Invalid
        events raise `ValueError` as for `append`.
        """
        ...

    async def close(self) -> None:
        """Finish the writes already submitted, then release the store. Idempotent; any
        later call raises `StorageError`."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
