"""`MemoryStore`: the `Store` ports in process memory, for tests and `salesbot chat --memory`.

It keeps the SQLite store's semantics exactly (the same contract tests run on both),
including the all-or-nothing commit: every check and every JSON copy happens before the
first mutation, and no method awaits between its check and its writes, so on one event
loop each call is atomic without a lock.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from domain import GENERATOR
from domain.chain import GENESIS, Link, link
from domain.events import EventEnvelope
from domain.personal import erased, paths_of_inbound
from storage import sealing
from storage._rules import (
    ClaimTicket,
    OpenTicket,
    ReopenTicket,
    ResolveTicket,
    TicketChange,
    check_events,
    check_limit,
    check_state_key,
    json_copy,
    state_json,
    ticket_changes,
)
from storage.errors import ConcurrencyError, StorageError
from storage.ports import (
    LEASE_EXPIRED,
    REPLAY_BATCH,
    ClaimOutcome,
    Commit,
    CommitResult,
    ConversationLog,
    LeaseOwner,
    MetricsProjection,
    OutboxItem,
    OutboxStats,
    PendingAnswer,
    RebuildSummary,
    StoredInbound,
    TicketRow,
    VerifyLog,
)
from storage.projections import (
    PROJECTION_SCHEMA_VERSION,
    Projection,
    differences,
    memory_counter_differences,
)

_UNSENT = ("pending", "in_flight")


class MemoryStore:
    """Everything in dicts and lists; lost when the process ends."""

    def __init__(self) -> None:
        self._streams: dict[str, list[EventEnvelope]] = {}
        self._chains: dict[str, list[Link]] = {}
        """Each stream's events as SQLite stores them: JSON text and link (`domain.chain`)."""
        self._log: list[EventEnvelope] = []
        self._deliveries: dict[str, int] = {}
        self._inbounds: dict[str, list[StoredInbound]] = {}
        self._inbound_log: list[StoredInbound] = []
        self._outbox: dict[str, OutboxItem] = {}  # insertion order is enqueue order
        self._tickets: dict[str, TicketRow] = {}
        self._policies: dict[str, str] = {}
        self._state: dict[str, tuple[str, int]] = {}  # key -> (JSON text, updated_at_ms)
        self._owners: dict[str, LeaseOwner] = {}
        self._projection = Projection()
        self._answers: dict[str, PendingAnswer] = {}  # insertion order is commit order
        self._timers: dict[str, tuple[int | None, int]] = {}  # id -> (due_at_ms, version)
        self._keys: dict[str, dict[int, bytes]] = {}
        """Each conversation's live keys by id (`storage.sealing`), as `conversation_keys`."""
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("The store is closed.")

    # -- events -------------------------------------------------------------------------

    def _version(self, conversation_id: str) -> int:
        return len(self._streams.get(conversation_id, ()))

    def _append(self, conversation_id: str, events: Sequence[EventEnvelope]) -> None:
        if events:
            chain = self._chains.setdefault(conversation_id, [])
            previous: str | None = chain[-1].chain_hash if chain else GENESIS
            for envelope in events:
                text = self._sealed(envelope) or envelope.model_dump_json()  # as SQLite stores
                previous = None if previous is None else link(previous, text)
                chain.append(Link(seq=envelope.seq, envelope=text, chain_hash=previous))
            self._streams.setdefault(conversation_id, []).extend(events)
            self._log.extend(events)
            self._projection.apply(conversation_id, events)

    def _key(self, conversation_id: str, version: int) -> tuple[int, bytes]:
        keys = self._keys.setdefault(conversation_id, {})
        if not keys:
            keys[version] = sealing.new_key()
        key_id = max(keys)
        return key_id, keys[key_id]

    def _sealed(self, envelope: EventEnvelope) -> str | None:
        if not sealing.has_personal_event(envelope):
            return None
        key_id, key = self._key(envelope.conversation_id, envelope.seq)
        return sealing.seal_event(envelope, key_id, key)

    async def append(
        self, conversation_id: str, expected_version: int, events: Sequence[EventEnvelope]
    ) -> int:
        self._check_open()
        check_events(conversation_id, expected_version, events)
        actual = self._version(conversation_id)
        if actual != expected_version:
            raise ConcurrencyError(conversation_id, expected_version, actual)
        self._append(conversation_id, events)
        return self._version(conversation_id)

    async def load(self, conversation_id: str) -> list[EventEnvelope]:
        self._check_open()
        return list(self._streams.get(conversation_id, ()))

    async def stored_events(self, conversation_id: str) -> list[Link]:
        self._check_open()
        return self._stored(conversation_id)

    def _stored(self, conversation_id: str) -> list[Link]:
        keys = self._keys.get(conversation_id, {})
        return [
            stored.model_copy(update={"opened": sealing.opened_json(stored.envelope, keys)})
            for stored in self._chains.get(conversation_id, ())
        ]

    async def version(self, conversation_id: str) -> int:
        self._check_open()
        return self._version(conversation_id)

    async def iterate_all(self) -> AsyncIterator[EventEnvelope]:
        self._check_open()
        index = 0
        while index < len(self._log):  # events appended while iterating are included
            yield self._log[index]
            index += 1

    async def conversation_ids(self) -> list[str]:
        self._check_open()
        return list(self._streams)

    # -- the atomic commit --------------------------------------------------------------

    async def commit(self, commit: Commit) -> CommitResult:
        self._check_open()
        conversation_id = commit.conversation_id
        check_events(conversation_id, commit.expected_version, commit.events)
        if commit.delivery_id in self._deliveries:
            return CommitResult(status="duplicate", version=self._version(conversation_id))
        actual = self._version(conversation_id)
        if actual != commit.expected_version:
            raise ConcurrencyError(conversation_id, commit.expected_version, actual)
        inbound = None if commit.inbound is None else json_copy(commit.inbound)
        outbox = [_copied(item) for item in commit.outbox]
        answers = [
            answer.model_copy(update={"payload": json_copy(answer.payload)})
            for answer in commit.answers
        ]
        changes = ticket_changes(commit)
        # Everything is validated: from here on nothing can fail half-way.
        self._append(conversation_id, commit.events)
        self._deliveries[commit.delivery_id] = commit.received_at_ms
        if inbound is not None and sealing.has_personal_inbound(inbound):
            self._key(conversation_id, self._version(conversation_id))  # as SQLite: keyed
        if inbound is not None:
            stream = self._inbounds.setdefault(conversation_id, [])
            stored = StoredInbound(
                conversation_id=conversation_id,
                position=len(stream) + 1,
                delivery_id=commit.delivery_id,
                received_at_ms=commit.received_at_ms,
                policy_version=commit.policy_version,
                inbound=inbound,
            )
            stream.append(stored)
            self._inbound_log.append(stored)
        self._enqueue(outbox)
        for change in changes:
            self._apply_ticket_change(change)
        for answer in answers:
            self._answers.setdefault(answer.key, answer)
        version = self._version(conversation_id)
        if commit.timer is not None:
            self._schedule(conversation_id, commit.timer.due_at_ms, version)
        return CommitResult(status="committed", version=version)

    # -- timers -------------------------------------------------------------------------

    def _schedule(self, conversation_id: str, due_at_ms: int | None, version: int) -> bool:
        current = self._timers.get(conversation_id)
        if current is not None and current[1] > version:
            return False
        self._timers[conversation_id] = (due_at_ms, version)
        return True

    async def schedule_timer(
        self, conversation_id: str, due_at_ms: int | None, version: int
    ) -> bool:
        self._check_open()
        return self._schedule(conversation_id, due_at_ms, version)

    async def due_timers(self, now_ms: int, limit: int) -> list[str]:
        self._check_open()
        check_limit(limit)
        due = sorted(
            (at, conversation_id)
            for conversation_id, (at, _) in self._timers.items()
            if at is not None and at <= now_ms
        )
        return [conversation_id for _, conversation_id in due[:limit]]

    # -- deliveries and inbounds --------------------------------------------------------

    async def seen(self, delivery_id: str) -> bool:
        self._check_open()
        return delivery_id in self._deliveries

    async def recent(self, since_ms: int) -> set[str]:
        self._check_open()
        return {key for key, at_ms in self._deliveries.items() if at_ms >= since_ms}

    async def inbounds(self, conversation_id: str) -> list[StoredInbound]:
        self._check_open()
        return list(self._inbounds.get(conversation_id, ()))

    async def replay_logs(
        self,
        conversation_ids: Sequence[str],
        *,
        decode: Collection[str] | None = None,
        batch: int = REPLAY_BATCH,
    ) -> AsyncIterator[ConversationLog]:
        # The events are held decoded already: every one comes whole, whatever `decode` says.
        self._check_open()
        check_limit(batch)
        for conversation_id in conversation_ids:
            yield ConversationLog(
                conversation_id,
                list(self._streams.get(conversation_id, ())),
                list(self._inbounds.get(conversation_id, ())),
            )

    async def verify_logs(
        self, conversation_ids: Sequence[str], *, batch: int = REPLAY_BATCH
    ) -> AsyncIterator[VerifyLog]:
        # Each batch is read whole before it is handed out: a commit made while the caller
        # works through it lands in a later batch or in none, as with one SQL statement.
        self._check_open()
        check_limit(batch)
        for start in range(0, len(conversation_ids), batch):
            logs = [
                VerifyLog(
                    conversation_id,
                    self._version(conversation_id),
                    self._stored(conversation_id),
                    list(self._inbounds.get(conversation_id, ())),
                )
                for conversation_id in conversation_ids[start : start + batch]
            ]
            for log in logs:
                yield log

    async def inbound(self, delivery_id: str) -> StoredInbound | None:
        self._check_open()
        return next((s for s in self._inbound_log if s.delivery_id == delivery_id), None)

    async def all_inbounds(self) -> AsyncIterator[StoredInbound]:
        self._check_open()
        index = 0
        while index < len(self._inbound_log):
            yield self._inbound_log[index]
            index += 1

    # -- outbox -------------------------------------------------------------------------

    def _enqueue(self, items: Sequence[OutboxItem]) -> None:
        for item in items:
            self._outbox.setdefault(item.key, item)

    async def enqueue(self, items: Sequence[OutboxItem]) -> None:
        self._check_open()
        self._enqueue([_copied(item) for item in items])

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
        self._check_open()
        skipped = set(exclude)
        queues: dict[str, list[tuple[int, OutboxItem]]] = {}  # channel -> (enqueue order, item)
        blocked: set[str] = set()
        for order, item in enumerate(self._outbox.values()):
            channel = item.channel
            if item.status not in _UNSENT or channel in blocked or channel in skipped:
                continue
            if prefixes is not None and not channel.startswith(tuple(prefixes)):
                continue
            if not self._is_due(item, now_ms):
                blocked.add(channel)  # nothing newer in this channel may overtake it
                continue
            queue = queues.setdefault(channel, [])
            if per_channel is None or len(queue) < per_channel:
                queue.append((order, item))
        # Round-robin: every channel's first item (oldest first), then every second, ...
        ranked = sorted(
            (
                ((rank, order), item)
                for queue in queues.values()
                for rank, (order, item) in enumerate(queue)
            ),
            key=lambda ranked_item: ranked_item[0],
        )
        claimed: list[OutboxItem] = []
        for _position, item in ranked[: max(0, limit)]:
            update: dict[str, object] = {
                "status": "in_flight",
                "lease_until_ms": now_ms + lease_ms,
                "lease_owner": owner,
            }
            if item.status == "in_flight":
                update["last_error"] = LEASE_EXPIRED
            claimed.append(item.model_copy(update=update))
        for item in claimed:
            self._outbox[item.key] = item
        return claimed

    def _is_due(self, item: OutboxItem, now_ms: int) -> bool:
        if item.status == "pending":
            return item.available_at_ms <= now_ms
        if item.lease_until_ms is not None and item.lease_until_ms <= now_ms:
            return True
        return item.lease_owner is not None and not self._alive(item.lease_owner, now_ms)

    def _alive(self, owner: str, now_ms: int) -> bool:
        known = self._owners.get(owner)
        return known is not None and known.alive_until_ms > now_ms

    async def heartbeat(
        self, owner: str, now_ms: int, alive_until_ms: int, *, identity: str | None = None
    ) -> list[str]:
        self._check_open()
        previous = [
            other.owner
            for other in self._owners.values()
            if identity is not None and other.identity == identity and other.owner != owner
        ]
        expired = [o.owner for o in self._owners.values() if o.alive_until_ms <= now_ms]
        for gone in {*previous, *expired} - {owner}:
            del self._owners[gone]
        known = self._owners.get(owner)
        if known is None:
            known = LeaseOwner(owner=owner, started_at_ms=now_ms, alive_until_ms=alive_until_ms)
        update: dict[str, object] = {"alive_until_ms": alive_until_ms}
        if identity is not None:
            update["identity"] = identity
        self._owners[owner] = known.model_copy(update=update)
        return previous

    async def release_owner(self, owner: str, now_ms: int) -> int:
        self._check_open()
        released = 0
        for key, item in self._outbox.items():
            if item.status == "in_flight" and item.lease_owner == owner:
                self._outbox[key] = item.model_copy(
                    update={
                        "status": "pending",
                        "available_at_ms": now_ms,
                        "lease_until_ms": None,
                        "lease_owner": None,
                        "last_error": LEASE_EXPIRED,
                    }
                )
                released += 1
        self._owners.pop(owner, None)
        return released

    async def lease_owners(self) -> list[LeaseOwner]:
        self._check_open()
        return sorted(self._owners.values(), key=lambda o: o.started_at_ms)

    async def release(
        self, keys: Sequence[str], available_at_ms: int, *, owner: str | None = None
    ) -> int:
        self._check_open()
        released = 0
        for key in keys:
            item = self._outbox.get(key)
            if item is None or (owner is not None and item.lease_owner != owner):
                continue
            if item.status == "in_flight":
                self._outbox[key] = item.model_copy(
                    update={
                        "status": "pending",
                        "available_at_ms": available_at_ms,
                        "lease_until_ms": None,
                        "lease_owner": None,
                    }
                )
                released += 1
        return released

    def _update_unsent(self, key: str, **changes: object) -> bool:
        item = self._outbox.get(key)
        if item is None or item.status not in _UNSENT:
            return False
        self._outbox[key] = item.model_copy(update={**changes, "lease_owner": None})
        return True

    async def mark_sent(self, key: str, at_ms: int, remote_id: str | None = None) -> bool:
        self._check_open()
        return self._update_unsent(
            key, status="sent", sent_at_ms=at_ms, remote_id=remote_id, lease_until_ms=None
        )

    async def fail(self, key: str, next_attempt_ms: int, error: str) -> bool:
        self._check_open()
        item = self._outbox.get(key)
        attempts = 0 if item is None else item.attempts + 1
        return self._update_unsent(
            key,
            status="pending",
            attempts=attempts,
            available_at_ms=next_attempt_ms,
            last_error=error,
            lease_until_ms=None,
        )

    async def dead_letter(self, key: str, error: str) -> bool:
        self._check_open()
        return self._update_unsent(key, status="dead", last_error=error, lease_until_ms=None)

    async def dead_letters(self) -> list[OutboxItem]:
        self._check_open()
        return [item for item in self._outbox.values() if item.status == "dead"]

    async def outbox_item(self, key: str) -> OutboxItem | None:
        self._check_open()
        return self._outbox.get(key)

    async def sent_items(self, channel_prefix: str, limit: int) -> list[OutboxItem]:
        self._check_open()
        check_limit(limit)
        found: list[OutboxItem] = []
        for item in reversed(self._outbox.values()):  # enqueue order, newest first
            if item.status == "sent" and item.channel.startswith(channel_prefix):
                found.append(_copied(item))
                if len(found) == limit:
                    break
        return found[::-1]

    async def pending_count(self) -> int:
        self._check_open()
        unsent = sum(1 for item in self._outbox.values() if item.status in _UNSENT)
        return unsent + len(self._answers)

    async def outbox_stats(self) -> list[OutboxStats]:
        self._check_open()
        found: dict[str, tuple[int, int | None, int]] = {}
        for item in self._outbox.values():
            if item.status == "sent":
                continue
            platform = item.channel.split(":", 1)[0]
            pending, oldest, dead = found.get(platform, (0, None, 0))
            if item.status == "dead":
                dead += 1
            else:
                pending += 1
                created = item.created_at_ms
                oldest = created if oldest is None else min(oldest, created)
            found[platform] = (pending, oldest, dead)
        return [
            OutboxStats(platform=name, pending=p, oldest_pending_created_at_ms=o, dead=d)
            for name, (p, o, d) in sorted(found.items())
        ]

    # -- tickets ------------------------------------------------------------------------

    def _apply_ticket_change(self, change: TicketChange) -> None:
        match change:
            case OpenTicket(row):
                self._tickets.setdefault(row.key, row)
            case ClaimTicket(key, by, at_ms):
                ticket = self._tickets.get(key)
                if ticket is not None and ticket.status == "open":
                    self._tickets[key] = ticket.model_copy(
                        update={
                            "status": "claimed",
                            "claimed_by": by,
                            "updated_at_ms": at_ms,
                            "generator_version": GENERATOR,
                        }
                    )
            case ResolveTicket(key, by, at_ms):
                ticket = self._tickets.get(key)
                if ticket is not None and ticket.status != "resolved":
                    self._tickets[key] = ticket.model_copy(
                        update={
                            "status": "resolved",
                            "resolved_by": by,
                            "updated_at_ms": at_ms,
                            "generator_version": GENERATOR,
                        }
                    )
            case ReopenTicket(key, holder, at_ms):
                ticket = self._tickets.get(key)
                if ticket is not None and ticket.status == "resolved":
                    self._tickets[key] = ticket.model_copy(
                        update={
                            "status": "open" if holder is None else "claimed",
                            "claimed_by": holder,
                            "resolved_by": None,
                            "updated_at_ms": at_ms,
                            "generator_version": GENERATOR,
                        }
                    )

    async def open_ticket(self, row: TicketRow) -> bool:
        self._check_open()
        if row.key in self._tickets:
            return False
        self._tickets[row.key] = row
        return True

    async def claim_ticket(self, key: str, by: str, at_ms: int) -> ClaimOutcome:
        self._check_open()
        ticket = self._tickets.get(key)
        if ticket is None:
            return ClaimOutcome(claimed=False, holder=None)
        if ticket.status == "open":
            self._apply_ticket_change(ClaimTicket(key, by, at_ms))
            return ClaimOutcome(claimed=True, holder=by)
        if ticket.status == "claimed":
            return ClaimOutcome(claimed=ticket.claimed_by == by, holder=ticket.claimed_by)
        return ClaimOutcome(claimed=False, holder=ticket.resolved_by)

    async def resolve_ticket(self, key: str, by: str, at_ms: int) -> bool:
        self._check_open()
        ticket = self._tickets.get(key)
        if ticket is None or ticket.status == "resolved":
            return False
        self._apply_ticket_change(ResolveTicket(key, by, at_ms))
        return True

    async def ticket(self, key: str) -> TicketRow | None:
        self._check_open()
        return self._tickets.get(key)

    async def open_tickets(self) -> list[TicketRow]:
        self._check_open()
        unresolved = [t for t in self._tickets.values() if t.status != "resolved"]
        return sorted(unresolved, key=lambda t: t.opened_at_ms)  # stable: ties by insertion

    # -- policies -----------------------------------------------------------------------

    async def put_policy(self, version: str, canonical_json: str) -> None:
        self._check_open()
        stored = self._policies.setdefault(version, canonical_json)
        if stored != canonical_json:
            raise ValueError(f"Policy {version} is stored already with a different text.")

    async def get_policy(self, version: str) -> str | None:
        self._check_open()
        return self._policies.get(version)

    # -- adapter state ------------------------------------------------------------------

    async def put_state(self, key: str, value: Mapping[str, Any], at_ms: int) -> None:
        self._check_open()
        # Kept as JSON text, as SQLite keeps it: every get decodes a copy of its own.
        self._state[key] = (state_json(key, value), at_ms)

    async def put_state_if_absent(
        self, key: str, value: Mapping[str, Any], at_ms: int
    ) -> dict[str, Any]:
        self._check_open()
        text = state_json(key, value)
        stored = self._state.setdefault(key, (text, at_ms))
        kept: dict[str, Any] = json.loads(stored[0])
        return kept

    async def get_state(self, key: str) -> dict[str, Any] | None:
        self._check_open()
        check_state_key(key)
        stored = self._state.get(key)
        if stored is None:
            return None
        value: dict[str, Any] = json.loads(stored[0])
        return value

    async def delete_state(self, key: str) -> bool:
        self._check_open()
        check_state_key(key)
        return self._state.pop(key, None) is not None

    async def delete_states_before(self, prefix: str, before_ms: int, limit: int) -> int:
        self._check_open()
        check_state_key(prefix)
        old = [
            key
            for key, (_, at_ms) in self._state.items()
            if key.startswith(prefix) and at_ms < before_ms
        ][: max(0, limit)]
        for key in old:
            del self._state[key]
        return len(old)

    # -- projections --------------------------------------------------------------------

    async def metrics_projection(self, installation: str = "") -> MetricsProjection:
        self._check_open()
        return MetricsProjection(
            counts=self._projection.count_table(installation),
            time_to_qualify=self._projection.time_to_qualify(installation),
        )

    async def qualification_times(self, installation: str = "") -> tuple[int, ...]:
        self._check_open()
        return tuple(self._projection.qualification_times(installation))

    async def quote_conversation(self, quote_id: str) -> str | None:
        self._check_open()
        return self._projection.quotes.get(quote_id)

    async def rebuild_projections(self) -> RebuildSummary:
        self._check_open()
        rebuilt = Projection.of(self._log)
        changed = differences(self._projection, rebuilt)
        changed += memory_counter_differences(self._projection, rebuilt)
        self._projection = rebuilt
        return RebuildSummary(
            events=len(self._log),
            conversations=len(rebuilt.facts),
            qualified=len(rebuilt.qualified()),
            quotes=len(rebuilt.quotes),
            changed=changed,
            schema_version=PROJECTION_SCHEMA_VERSION,
            generator=GENERATOR,
        )

    # -- deferred answers -----------------------------------------------------------------

    async def pending_answers(self) -> list[PendingAnswer]:
        self._check_open()
        return list(self._answers.values())

    async def settle_answer(self, key: str, items: Sequence[OutboxItem]) -> bool:
        self._check_open()
        copies = [_copied(item) for item in items]  # checked before anything changes
        if self._answers.pop(key, None) is None:
            return False
        self._enqueue(copies)
        return True

    # -- lifecycle ----------------------------------------------------------------------

    # -- erasure ------------------------------------------------------------------------

    async def erase(self, conversation_id: str, expected_version: int, event: EventEnvelope) -> int:
        self._check_open()
        check_events(conversation_id, expected_version, (event,))
        actual = self._version(conversation_id)
        if actual != expected_version:
            raise ConcurrencyError(conversation_id, expected_version, actual)
        # What SQLite reads once the key is deleted: the stored (sealed) JSON opened
        # without it; the inbounds and outbox payloads redacted as it redacts them.
        self._keys.pop(conversation_id, None)
        opened = [
            sealing.open_event(stored.envelope, {})
            for stored in self._chains.get(conversation_id, ())
        ]
        self._streams[conversation_id] = opened
        by_seq = {envelope.seq: envelope for envelope in opened}
        self._log = [
            by_seq[env.seq] if env.conversation_id == conversation_id else env for env in self._log
        ]
        redacted = {
            stored.delivery_id: stored.model_copy(
                update={"inbound": erased(stored.inbound, paths_of_inbound(stored.inbound))}
            )
            for stored in self._inbounds.get(conversation_id, ())
        }
        self._inbounds[conversation_id] = list(redacted.values())
        self._inbound_log = [redacted.get(s.delivery_id, s) for s in self._inbound_log]
        for key, item in self._outbox.items():
            if item.conversation_id != conversation_id:
                continue
            changes: dict[str, Any] = {"payload": sealing.redacted_payload(item.payload)}
            if item.status in _UNSENT:
                changes.update(
                    status="dead",
                    last_error="erased before it was sent",
                    lease_until_ms=None,
                    lease_owner=None,
                )
            self._outbox[key] = item.model_copy(update=changes)
        self._append(conversation_id, (event,))
        return self._version(conversation_id)

    async def idle_conversations(self, before_ms: int, limit: int) -> list[str]:
        self._check_open()
        check_limit(limit)
        idle = sorted(
            (events[-1].at_ms, conversation_id)
            for conversation_id, events in self._streams.items()
            if events and events[-1].at_ms < before_ms and events[-1].event.type != "erased"
        )
        return [conversation_id for _, conversation_id in idle[:limit]]

    async def close(self) -> None:
        self._closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _copied(item: OutboxItem) -> OutboxItem:
    return item.model_copy(update={"payload": json_copy(item.payload)})
