"""The runtime: from an inbound to a durable decision, in order, exactly once.

Handling one inbound (`Runtime.handle`):
  1. dedupe — claim the delivery id in memory *before the first await* (a second delivery
     of the same event waits for the first's outcome instead of racing it), then ask the
     store, which knows every committed delivery;
  2. load the conversation's state (cache, else fold the stored events);
  3. `domain.decide` — pure;
  4. commit the events, the delivery id, the raw inbound, the outbox items, the ticket
     changes, the projections' update (inside the store) and the queries still to answer
     in ONE transaction;
  5. return — only now may the adapter acknowledge the platform. Sending happens later, in
     the outbox worker, so a slow platform API never delays an ack (Slack retries an event
     that is not acknowledged within 3 s: https://api.slack.com/apis/events-api#retries);
  6. answer the queries the decision asked for (audits, metrics) in a task of their own,
     after the commit: their replies join the outbox in a second transaction.

Why queries are answered after the acknowledgement. An audit reads a whole conversation
and the metrics read about one small row per conversation (`storage.projections`): cheap
now (they used to scan the whole log, 0.8 s at 33k events), but still growing with the
data, and a read must never be able to push an acknowledgement past Slack's 3 s. The
reply always went through the outbox anyway, so answering after the ack costs the
requester nothing visible; fast reads the decision itself needs (dedupe, state) stay
inline. Both query kinds are deferred alike, with no timing-dependent choice, so what
happens does not depend on how loaded the machine is.

How an answer survives a crash. The commit records a `PendingAnswer` per query with
everything the answer needs that only this moment knows: the query, who asked, and the
routes of a reply to them — computed by this runtime's router now, so the answer reaches
only the requester, privately, exactly where an inline answer would have gone (routers
place a query's reply by its audience; a process that later recovers it needs no router of
its own). The answer's outbox items have deterministic keys (`answer_outbox_key`) and are
enqueued in the same transaction that removes the record (`Store.settle_answer`), so the
answer is sent once or the record is still there: `start` answers every record left by a
crash between the two transactions, and a record answered twice (two processes
recovering it) is enqueued once. The store counts a pending answer as an unsent message,
so "the outbox is drained" still means every reply was sent.

Several processes on one store (replicas on PostgreSQL). A lane (`bot.lanes`) orders one
conversation's inbounds inside this process only; across processes the store's
expected-version check decides. A commit refused because another process advanced the
conversation first is decided again on the state reloaded from the store, up to
`DECIDE_ATTEMPTS` times in all, each refusal logged in one line (ids and versions, never
what anyone said); after the last, the error reaches the adapter, which does not
acknowledge, so the platform delivers the event again. Each refusal means another
process committed, so the attempts run out only under a pile-up on one conversation. On a
shared store (`bot.lanes.SharedStore`) a cached state is compared with the store's head
before it is decided on (one indexed read), so a conversation another replica moved on is
re-read rather than decided stale and refused; and each sweep runs in its turn, one
replica per tick.

What a requester may notice: an audit of the conversation it is asked in now lists its own
`audit_requested` entry (the access is recorded before the report is read), and a reply
decided later in the same channel may be enqueued before the answer (a few milliseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

from pydantic import TypeAdapter, ValidationError

from adapters.ports import OUTBOX_PAYLOAD_SCHEMA_VERSION, OutboxPayload, Route, Router
from bot.addressing import readdressed
from bot.business_hours import timer_hours
from bot.lanes import Lanes, SharedStore, turn
from bot.logs import FIELDS_ATTRIBUTE, log_context
from bot.state_cache import DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, StateCache
from domain import GENERATOR
from domain.cards import Reply
from domain.chain import ERASED_EVENT_TYPE, event_type
from domain.decide import ALERT_REF_PREFIX, decide, new_conversation
from domain.decision import Decision, Query
from domain.events import Erased, EventEnvelope
from domain.inbound import SYSTEM, DeliveryFailed, Inbound, TimerElapsed
from domain.model import Frozen
from domain.personal import legacy_events
from domain.policy import Policy
from domain.sla import next_timer_ms
from domain.state import ConversationState, fold
from storage.errors import ConcurrencyError, StorageError
from storage.ports import Commit, OutboxItem, PendingAnswer, Store, TimerDue

log = logging.getLogger(__name__)

INBOUND = TypeAdapter(Inbound)
DEDUPE_WINDOW_MS = 7 * 24 * 3600 * 1000
"""How far back the in-memory dedupe view is rebuilt after a restart; older deliveries are
still found by the store (a platform retries within minutes, Teams within seconds)."""

RECENT_CAPACITY = 200_000
"""The most delivery ids the in-memory dedupe view holds (the most recent first kept)."""

SWEEP_BATCH = 1000
"""Due conversations one sweep delivers timers to; the rest are due still, at the next."""
RECHECK_MS = 60_000
"""When a due conversation whose timer decided nothing is looked at again."""
DECIDE_ATTEMPTS = 5
"""How many times one inbound is decided when other processes keep committing to its
conversation first (each refusal is another process's commit); then the error is raised."""
IDLE_SWEEP, RETENTION_SWEEP = "sweep:idle", "sweep:retention"
"""The turns (`bot.lanes.turn`) the sweeps take on a store shared by several processes."""


QueryAnswerer = Callable[[Query, Store], Awaitable[Sequence[Reply]]]


Effects = Callable[[Decision, Policy, int], Sequence[OutboxItem]]
"""Outbox items a decision's events call for beyond its replies (decision, policy, now)."""


class HandleResult(Frozen):
    status: Literal["committed", "duplicate", "ignored"]
    version: int
    decision: Decision | None = None


def outbox_key(delivery_id: str, index: int, channel: str) -> str:
    """Deterministic: the same delivery decided again can only enqueue the same items."""
    digest = hashlib.sha256(f"{delivery_id}\x1f{index}\x1f{channel}".encode()).hexdigest()
    return f"O-{digest[:32]}"


def answer_key(delivery_id: str, index: int) -> str:
    """The pending answer to the delivery's `index`-th query: the same delivery decided
    again can only record the same one."""
    digest = hashlib.sha256(f"{delivery_id}\x1fquery\x1f{index}".encode()).hexdigest()
    return f"Q-{digest[:32]}"


def answer_outbox_key(answer: str, index: int, channel: str) -> str:
    """Deterministic: an answer recovered after a crash, or by two processes, enqueues the
    same items (never the keys of the decision's own replies: those start with `O-`)."""
    digest = hashlib.sha256(f"{answer}\x1f{index}\x1f{channel}".encode()).hexdigest()
    return f"A-{digest[:32]}"


class Runtime:
    def __init__(
        self,
        store: Store,
        policy: Policy,
        router: Router,
        *,
        clock: Callable[[], int],
        answer_query: QueryAnswerer | None = None,
        cache_size: int = DEFAULT_MAX_ENTRIES,
        cache_bytes: int = DEFAULT_MAX_BYTES,
        recent_capacity: int = RECENT_CAPACITY,
        on_decided: Callable[[float], None] | None = None,
        effects: Effects | None = None,
        on_enqueued: Callable[[Sequence[str]], None] | None = None,
        decide_attempts: int = DECIDE_ATTEMPTS,
    ) -> None:
        """`cache_bytes` bounds the state cache by serialised size (`cache_size` by count);
        `on_decided` hears how long each `decide` took, in seconds (metrics); `effects`
        turns a decision's events into outbox items of their own, committed with it (the
        CRM writes: `bot.crm_outbox`); `on_enqueued` hears the outbox channels of every
        commit that put items there (the outbox worker, so it delivers them at once);
        `decide_attempts` bounds the decisions of one inbound whose commits other
        processes keep refusing."""
        if decide_attempts < 1:
            raise ValueError("decide_attempts must be at least 1.")
        self.store = store
        self.policy = policy
        self._router = router
        self._clock = clock
        self._answer_query = answer_query
        self._lanes = Lanes()
        self._cache = StateCache(max_bytes=cache_bytes, max_entries=cache_size)
        self._on_decided = on_decided
        self._effects = effects
        self._on_enqueued = on_enqueued
        self._decide_attempts = decide_attempts
        self._shared = isinstance(store, SharedStore)
        self._inflight: dict[str, asyncio.Future[HandleResult]] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._recent_capacity = recent_capacity
        self._answering: dict[str, asyncio.Task[bool]] = {}
        self._swept_all = False

    @property
    def remembered_deliveries(self) -> int:
        """How many delivery ids the in-memory dedupe view holds (at most
        `recent_capacity`): what it costs in memory grows with it until the bound."""
        return len(self._recent)

    @property
    def state_cache(self) -> StateCache:
        """The cached conversation states (monitoring reads their count and size)."""
        return self._cache

    async def start(self) -> None:
        """Record the policy text by its hash, rebuild the dedupe view (RELIABILITY rule 2)
        and answer the queries a previous run committed but did not answer."""
        await self.store.put_policy(self.policy.version, self.policy.canonical_json())
        for delivery_id in await self.store.recent(self._clock() - DEDUPE_WINDOW_MS):
            self._remember(delivery_id)
        await self.answer_pending()

    async def handle(self, inbound: Inbound) -> HandleResult:
        """Decide and commit one inbound; returns only once it is durable (or a duplicate).
        A rep's `won ID` / `lost ID …` is decided in the conversation ID names
        (`bot.addressing`)."""
        delivery_id = inbound.delivery_id
        # Rule 1: claim synchronously, before any await.
        if delivery_id in self._recent:
            return HandleResult(status="duplicate", version=-1)
        pending = self._inflight.get(delivery_id)
        if pending is not None:
            first = await asyncio.shield(pending)
            return HandleResult(status="duplicate", version=first.version)
        future: asyncio.Future[HandleResult] = asyncio.get_running_loop().create_future()
        self._inflight[delivery_id] = future
        try:
            inbound = await readdressed(inbound, self.store)
            with log_context(conversation_id=inbound.conversation_id, delivery_id=delivery_id):
                result = await self._handle_claimed(inbound)
                log.debug(
                    "%s handled: %s at version %d", inbound.kind, result.status, result.version
                )
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiting duplicates re-raise it themselves
            raise
        else:
            future.set_result(result)
            self._remember(delivery_id)
            return result
        finally:
            del self._inflight[delivery_id]

    async def _handle_claimed(self, inbound: Inbound) -> HandleResult:
        conversation_id = inbound.conversation_id
        async with self._lanes.hold(conversation_id):
            # A redelivery the in-memory view no longer holds (older than its window, or
            # committed by another replica) is not looked up first: the commit refuses a
            # delivery it already holds, in the same transaction, and `decide` is pure, so a
            # duplicate costs one wasted decision instead of every inbound a read.
            for attempt in range(1, self._decide_attempts + 1):
                state = await self._state(conversation_id)
                now = self._clock()
                inbound = self._with_facts(inbound, now)
                decision = self._decide(state, inbound, now)
                replies = list(decision.replies)
                if not decision.events and not decision.replies and not decision.queries:
                    # Nothing decided (e.g. reps' chatter in a thread the bot does not run):
                    # nothing to store, so nothing of it is kept — unless it was decided
                    # and stored before, when it is the duplicate it always was.
                    if await self.store.seen(inbound.delivery_id):
                        return HandleResult(status="duplicate", version=state.version)
                    return HandleResult(status="ignored", version=state.version, decision=decision)
                answers = self._pending_answers(inbound, decision, now)
                try:
                    commit = self._commit(inbound, state, decision, replies, now, answers)
                    result = await self.store.commit(commit)
                except ConcurrencyError as conflict:
                    # Another process advanced the stream first: reload, decide again.
                    self._cache.drop(conversation_id)
                    _log_conflict(inbound, conflict, attempt, self._decide_attempts)
                    if attempt == self._decide_attempts:
                        raise
                    continue
                if result.status == "committed":
                    self._cache.put(decision.state)
                    for answer in answers:
                        self._answer_soon(answer)
                    self._enqueued(commit.outbox)
                    return HandleResult(
                        status="committed", version=result.version, decision=decision
                    )
                self._cache.drop(conversation_id)
                return HandleResult(status="duplicate", version=result.version)
        raise AssertionError("unreachable")  # pragma: no cover

    def _with_facts(self, inbound: Inbound, now: int) -> Inbound:
        """A timer carries what the domain may not work out itself, for the very instant it
        is decided: the business hours in the policy's time zone (`bot.business_hours`).
        Recorded with the inbound, so a replay decides with the same fact."""
        if not isinstance(inbound, TimerElapsed):
            return inbound
        return inbound.model_copy(update={"hours": timer_hours(self.policy, now)})

    def _decide(self, state: ConversationState, inbound: Inbound, now: int) -> Decision:
        if self._on_decided is None:
            return decide(state, inbound, self.policy, now)
        started = time.perf_counter()
        try:
            return decide(state, inbound, self.policy, now)
        finally:
            self._on_decided(time.perf_counter() - started)

    async def conversation(self, conversation_id: str) -> ConversationState | None:
        """The conversation's current state, or None when it has not started (for readers
        such as the lead feed's transcript; writers go through `handle`)."""
        async with self._lanes.hold(conversation_id):
            state = await self._state(conversation_id)
        return state if state.started else None

    async def _state(self, conversation_id: str) -> ConversationState:
        """The conversation's state: cached, else folded from the store. On a shared store
        a cached state is used only while it is still the store's head."""
        state = self._cache.get(conversation_id)
        if (
            state is not None
            and self._shared
            and await self.store.version(conversation_id) != state.version
        ):
            self._cache.drop(conversation_id)  # another process committed since
            state = None
        if state is None:
            events = await self.store.load(conversation_id)
            state = fold(new_conversation(conversation_id, self.policy), events)
            self._cache.put(state)
        return state

    def _commit(
        self,
        inbound: Inbound,
        state: ConversationState,
        decision: Decision,
        replies: Sequence[Reply],
        now: int,
        answers: Sequence[PendingAnswer] = (),
    ) -> Commit:
        items: list[OutboxItem] = []
        for index, reply in enumerate(replies):
            for route in self._router.route(inbound, reply, decision.state):
                items.append(
                    _outbox_item(
                        outbox_key(inbound.delivery_id, index, route.channel),
                        inbound.conversation_id,
                        reply,
                        route,
                        inbound.actor.id,
                        now,
                    )
                )
        if self._effects is not None:
            items.extend(self._effects(decision, self.policy, now))
        return Commit(
            conversation_id=inbound.conversation_id,
            expected_version=state.version,
            delivery_id=inbound.delivery_id,
            received_at_ms=now,
            policy_version=self.policy.version,
            inbound=INBOUND.dump_python(inbound, mode="json"),
            events=decision.events,
            outbox=tuple(items),
            ticket_events=decision.ticket_events,
            answers=tuple(answers),
            timer=TimerDue(due_at_ms=next_timer_ms(decision.state, self.policy)),
        )

    # -- queries, answered after the commit -----------------------------------------------

    def _pending_answers(
        self, inbound: Inbound, decision: Decision, now: int
    ) -> list[PendingAnswer]:
        """One record per query that has somewhere to go. The routes are decided now, by
        the router that would have placed an inline answer: a query's reply is placed by
        its audience, so a stand-in reply with that audience is routed."""
        if self._answer_query is None:
            return []
        answers = []
        for index, query in enumerate(decision.queries):
            stand_in = Reply(audience=query.audience, text=f"{query.kind} answer")
            routes = self._router.route(inbound, stand_in, decision.state)
            if not routes:
                continue
            answers.append(
                PendingAnswer(
                    key=answer_key(inbound.delivery_id, index),
                    conversation_id=inbound.conversation_id,
                    delivery_id=inbound.delivery_id,
                    payload={
                        "query": query.model_dump(mode="json"),
                        "requester": inbound.actor.id,
                        "routes": [route.model_dump(mode="json") for route in routes],
                    },
                    created_at_ms=now,
                )
            )
        return answers

    def _enqueued(self, items: Sequence[OutboxItem]) -> None:
        """Tell the outbox worker where committed items wait (`on_enqueued`)."""
        if self._on_enqueued is not None and items:
            self._on_enqueued(tuple(dict.fromkeys(item.channel for item in items)))

    def _answer_soon(self, answer: PendingAnswer) -> None:
        if answer.key in self._answering:
            return
        task = asyncio.create_task(self._answer(answer), name=f"answer:{answer.key}")
        self._answering[answer.key] = task
        task.add_done_callback(lambda _: self._answering.pop(answer.key, None))

    async def answer_pending(self) -> int:
        """Answer every query recorded but not answered yet (left by a crash between a
        commit and its answer, or by a failed read); returns how many this call answered.
        A runtime without an answerer (the CLI's) leaves them to one that has one."""
        if self._answer_query is None:
            return 0
        answered = 0
        for answer in await self.store.pending_answers():
            running = self._answering.get(answer.key)
            answered += await (running if running is not None else self._answer(answer))
        return answered

    async def settled(self) -> None:
        """Wait until every answer started so far is in the outbox (or has failed and is
        left for `answer_pending`): the terminal chat prints the answer with its command."""
        while self._answering:
            await asyncio.gather(*self._answering.values(), return_exceptions=True)

    async def _answer(self, answer: PendingAnswer) -> bool:
        """Read, build the replies and enqueue them, removing the record in the same
        transaction. Never raises: a failure leaves the record for the next try."""
        answer_query = self._answer_query
        if answer_query is None:  # recorded only by runtimes that answer
            return False
        try:
            query = Query.model_validate(answer.payload["query"])
            routes = [Route.model_validate(route) for route in answer.payload["routes"]]
            requester = str(answer.payload["requester"])
        except (KeyError, TypeError, ValidationError):
            # Unreadable (written by another salesbot?): it can never be answered.
            log.warning("dropping unreadable pending answer %s", answer.key)
            with contextlib.suppress(StorageError):
                await self.store.settle_answer(answer.key, [])
            return False
        try:
            replies = await answer_query(query, self.store)
            now = self._clock()
            items = [
                _outbox_item(
                    answer_outbox_key(answer.key, index, route.channel),
                    answer.conversation_id,
                    reply,
                    route,
                    requester,
                    now,
                )
                for index, reply in enumerate(replies)
                for route in routes
            ]
            settled = await self.store.settle_answer(answer.key, items)
            if settled:
                self._enqueued(items)
            return settled
        except StorageError as exc:  # e.g. the store closed at shutdown: not a bug
            log.warning(
                "the %s answer %s was not enqueued (%s); it stays pending for the next start",
                query.kind,
                answer.key,
                exc,
            )
            return False
        except Exception:
            log.exception(
                "the %s answer %s was not enqueued; it stays pending for the next start",
                query.kind,
                answer.key,
            )
            return False

    async def sweep_idle(self) -> int:
        """Deliver a timer to each conversation whose timers are due (`domain.sla.next_timer_ms`:
        an idle conversation's abandonment, a silent rep's hold under `[handoff]
        rep_idle_handback_ms`, an unclaimed ticket's SLA ladder); returns how many changed.

        Conversations are read from the store's due-timer index, so a sweep loads only those
        due. The first sweep of this runtime looks at every conversation instead (as every
        sweep did before the index), scheduling each under the policy it runs now: a schedule
        computed under another policy, or by an older release, is never trusted.

        Only a timer that decides something is committed (its delivery id is tied to the
        conversation's version), with the conversation's next timer; a due conversation whose
        timer decides nothing is rescheduled from its state.

        On a store shared by several processes one sweeps at a time (`IDLE_SWEEP`'s turn);
        a sweep that finds another process sweeping returns 0 and leaves this tick to it."""
        async with turn(self.store, IDLE_SWEEP) as mine:
            if not mine:
                log.debug("idle sweep skipped: another process is sweeping")
                return 0
            return await self._sweep_idle()

    async def _sweep_idle(self) -> int:
        changed = 0
        now = self._clock()
        if self._swept_all:
            due = await self.store.due_timers(now, SWEEP_BATCH)
        else:
            due = await self.store.conversation_ids()
            self._swept_all = True
        hours = timer_hours(self.policy, now)
        for conversation_id in due:
            state = await self._state(conversation_id)
            timer = TimerElapsed(
                delivery_id=f"idle:{conversation_id}:{state.version}",
                conversation_id=conversation_id,
                actor=SYSTEM,
                hours=hours,
            )
            if decide(state, timer, self.policy, now).events:
                result = await self.handle(timer)
                if result.status == "committed":
                    changed += 1
                    continue
            await self._reschedule(conversation_id, now)
        return changed

    async def _reschedule(self, conversation_id: str, now: int) -> None:
        """Schedule the conversation's next timer from its current state (in its lane, so a
        commit in between is not overwritten by an older computation). A time already past
        that decided nothing (the flow has no idle transition there) is looked at again a
        sweep later rather than at every sweep."""
        async with self._lanes.hold(conversation_id):
            state = await self._state(conversation_id)
            due = next_timer_ms(state, self.policy)
            if due is not None and due <= now:
                due = now + RECHECK_MS
            await self.store.schedule_timer(conversation_id, due, state.version)

    async def erase(
        self,
        conversation_id: str,
        *,
        by: str,
        reason: Literal["request", "retention"],
        idle_before_ms: int | None = None,
    ) -> EventEnvelope | None:
        """Erase the prospect's personal data in the conversation (`storage.ports.Erasure`):
        its key deleted, its copies outside the chain redacted, an `erased` event recorded
        (who, when, why). In the conversation's lane, so no decision interleaves; the cached
        state is dropped, so what is read next reads `[erased]`. Returns the `erased`
        envelope; None when there is no such conversation or it is erased already (its last
        event is an erasure). `idle_before_ms` (retention): erase only while the last event
        is still before it — a message that arrived meanwhile keeps the conversation."""
        async with self._lanes.hold(conversation_id):
            for attempt in range(1, self._decide_attempts + 1):
                stored = await self.store.stored_events(conversation_id)
                if not stored or event_type(stored[-1].envelope) == ERASED_EVENT_TYPE:
                    return None
                now = self._clock()
                idle_ms = None
                if idle_before_ms is not None:
                    last = EventEnvelope.model_validate_json(stored[-1].envelope).at_ms
                    if last >= idle_before_ms:
                        return None
                    idle_ms = now - last
                # The version of the events just read: an event committed since (by another
                # process) refuses the erasure, which then looks again at what is stored.
                version = stored[-1].seq
                envelope = EventEnvelope(
                    conversation_id=conversation_id,
                    seq=version + 1,
                    at_ms=now,
                    policy_version=self.policy.version,
                    delivery_id=f"erase:{conversation_id}:{version}",
                    event=Erased(
                        by=by, reason=reason, legacy_events=legacy_events(stored), idle_ms=idle_ms
                    ),
                )
                try:
                    await self.store.erase(conversation_id, version, envelope)
                except ConcurrencyError as conflict:
                    self._cache.drop(conversation_id)
                    with log_context(conversation_id=conversation_id):
                        _log_conflict(None, conflict, attempt, self._decide_attempts)
                    if attempt == self._decide_attempts:
                        raise
                    continue
                self._cache.drop(conversation_id)
                break
        with log_context(conversation_id=conversation_id):
            log.info("erased the conversation's personal data (%s, by %s)", reason, by)
        return envelope

    async def sweep_retention(self) -> int:
        """Erase the personal data of every conversation idle longer than the policy's
        `[retention] erase_after_days` (`domain.retention`), least recently active first, a
        batch per sweep; returns how many were erased. Nothing without `[retention]`."""
        retention = self.policy.retention
        if retention is None:
            return 0
        async with turn(self.store, RETENTION_SWEEP) as mine:
            if not mine:
                log.debug("retention sweep skipped: another process is sweeping")
                return 0
            return await self._sweep_retention(retention.cutoff_ms(self._clock()))

    async def _sweep_retention(self, cutoff: int) -> int:
        erased = 0
        for conversation_id in await self.store.idle_conversations(cutoff, SWEEP_BATCH):
            done = await self.erase(
                conversation_id, by=SYSTEM.id, reason="retention", idle_before_ms=cutoff
            )
            erased += done is not None
        return erased

    async def report_dead_letter(self, item: OutboxItem, reason: str) -> None:
        """The outbox gave up on `item`: record it in the conversation and alert the humans."""
        reply = item.payload.get("reply", {})
        card = reply.get("card") or {}
        was_alert = str(card.get("ref", "")).startswith(ALERT_REF_PREFIX)
        delivery_id = f"dead:{item.key}"
        with log_context(conversation_id=item.conversation_id, delivery_id=delivery_id):
            log.warning("dead-lettered outbox item %s on %s: %s", item.key, item.channel, reason)
        await self.handle(
            DeliveryFailed(
                delivery_id=delivery_id,
                conversation_id=item.conversation_id,
                actor=SYSTEM,
                outbox_key=item.key,
                channel=item.channel,
                reason=reason,
                was_alert=was_alert,
            )
        )

    def _remember(self, delivery_id: str) -> None:
        self._recent[delivery_id] = None
        while len(self._recent) > self._recent_capacity:
            self._recent.popitem(last=False)


def _log_conflict(
    inbound: Inbound | None, conflict: ConcurrencyError, attempt: int, attempts: int
) -> None:
    """One line per refused commit: the ids (bound by the caller's `log_context`) and the
    versions, never what anyone said."""
    last = attempt == attempts
    log.log(
        logging.WARNING if last else logging.INFO,
        "conversation moved on in another process (expected version %d, found %d): %s",
        conflict.expected,
        conflict.actual,
        f"giving up after {attempts} attempts"
        if last
        else f"deciding again ({attempt + 1} of {attempts})",
        extra={
            FIELDS_ATTRIBUTE: {
                "kind": inbound.kind if inbound is not None else "erasure",
                "attempt": attempt,
                "attempts": attempts,
                "expected_version": conflict.expected,
                "found_version": conflict.actual,
            }
        },
    )


def _outbox_item(
    key: str, conversation_id: str, reply: Reply, route: Route, requester: str, now: int
) -> OutboxItem:
    """One reply for one route, as the outbox keeps it: due at once, stamped with the
    payload's schema version, this salesbot and the adapter that routed it."""
    payload = OutboxPayload(
        reply=reply,
        target=route.target,
        requester=requester,
        schema_version=OUTBOX_PAYLOAD_SCHEMA_VERSION,
        generator_version=GENERATOR,
        adapter=route.adapter or None,
        adapter_version=route.adapter_version or None,
    )
    return OutboxItem(
        key=key,
        conversation_id=conversation_id,
        channel=route.channel,
        payload=payload.model_dump(mode="json"),
        created_at_ms=now,
        available_at_ms=now,
    )
