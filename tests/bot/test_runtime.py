"""The runtime on the in-memory store: dedupe, lanes, one commit per inbound, restarts."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

import pytest

from adapters.ports import Route
from bot.policy_loader import load_policy
from bot.runtime import Runtime
from domain.cards import Reply
from domain.events import ProspectMessageReceived, TicketOpened
from domain.inbound import Actor, ButtonClicked, Inbound, MessagePosted
from domain.policy import Policy
from domain.state import ConversationState
from storage.memory import MemoryStore
from storage.ports import Commit, CommitResult

POLICY: Policy = load_policy("default")
PROSPECT = Actor(id="P", name="Pat", role="prospect")


class EverythingToOneChannel:
    def route(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        return [Route(channel=f"test:{reply.audience}")]


class Clock:
    def __init__(self) -> None:
        self.ms = 1_790_000_000_000
        self._ticks = itertools.count()

    def __call__(self) -> int:
        return self.ms + next(self._ticks)


def message(text: str, delivery: str, conversation: str = "c1") -> MessagePosted:
    return MessagePosted(
        delivery_id=delivery, conversation_id=conversation, actor=PROSPECT, text=text
    )


async def started(store: MemoryStore, clock: Clock | None = None) -> Runtime:
    runtime = Runtime(store, POLICY, EverythingToOneChannel(), clock=clock or Clock())
    await runtime.start()
    return runtime


async def test_the_same_delivery_four_times_makes_one_set_of_events_one_reply_one_ticket() -> None:
    store = MemoryStore()
    runtime = await started(store)
    await runtime.handle(message("Hi there", "d0"))
    inbound = message("Can we cancel the contract?", "d1")
    results = [await runtime.handle(inbound) for _ in range(4)]
    assert [r.status for r in results] == ["committed", "duplicate", "duplicate", "duplicate"]
    events = await store.load("c1")
    assert sum(isinstance(e.event, TicketOpened) for e in events) == 1
    assert len(await store.open_tickets()) == 1
    assert [len(await store.inbounds("c1"))] == [2]
    handoff_items = [
        i for i in await store.claim_due(10**15, 100, 1000) if i.channel == "test:handoff"
    ]
    assert len(handoff_items) == 1


async def test_concurrent_redeliveries_wait_for_the_first_and_commit_once() -> None:
    store = MemoryStore()
    runtime = await started(store)
    inbound = message("We have a $5000 budget", "d1")
    results = await asyncio.gather(*(runtime.handle(inbound) for _ in range(4)))
    assert sorted(r.status for r in results) == ["committed", "duplicate", "duplicate", "duplicate"]
    assert len(await store.inbounds("c1")) == 1


async def test_two_hundred_concurrent_conversations_keep_their_own_order() -> None:
    store = MemoryStore()
    runtime = await started(store)
    tasks = [
        asyncio.create_task(runtime.handle(message(f"message {n}", f"c{c}-{n}", f"c{c}")))
        for n in range(5)
        for c in range(200)
    ]
    await asyncio.gather(*tasks)
    for c in range(200):
        events = await store.load(f"c{c}")
        said = [e.event.text for e in events if isinstance(e.event, ProspectMessageReceived)]
        assert said == [f"message {n}" for n in range(5)]
        assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_after_a_restart_a_committed_delivery_is_still_a_duplicate() -> None:
    store = MemoryStore()
    first = await started(store)
    await first.handle(message("Hello", "d1"))
    version = await store.version("c1")
    restarted = await started(store)
    result = await restarted.handle(message("Hello", "d1"))
    assert result.status == "duplicate"
    assert await store.version("c1") == version
    assert len(await store.inbounds("c1")) == 1


async def test_a_restart_continues_the_conversation_from_the_stored_events() -> None:
    store = MemoryStore()
    first = await started(store)
    await first.handle(message("Hello", "d1"))
    before = await store.version("c1")
    restarted = await started(store)
    result = await restarted.handle(
        message("We have a $5000 budget, I am the CTO, next month", "d2")
    )
    assert result.status == "committed"
    assert result.decision is not None
    assert result.decision.events[0].seq == before + 1
    assert result.decision.state.flow_state == "proposal"


async def test_a_failed_commit_releases_the_delivery_so_the_platform_retry_succeeds() -> None:
    class FlakyStore(MemoryStore):
        fail_next = True

        async def commit(self, commit: Commit) -> CommitResult:
            if self.fail_next:
                self.fail_next = False
                raise OSError("disk full")
            return await super().commit(commit)

    store = FlakyStore()
    runtime = await started(store)
    with pytest.raises(OSError, match="disk full"):
        await runtime.handle(message("Hello", "d1"))
    assert await store.load("c1") == []
    assert (await runtime.handle(message("Hello", "d1"))).status == "committed"


async def test_every_commit_records_the_policy_text_by_its_hash_and_the_raw_inbound() -> None:
    store = MemoryStore()
    runtime = await started(store)
    await runtime.handle(message("Hello", "d1"))
    assert await store.get_policy(POLICY.version) == POLICY.canonical_json()
    stored = (await store.inbounds("c1"))[0]
    assert stored.inbound["text"] == "Hello"
    assert stored.policy_version == POLICY.version
    events = await store.load("c1")
    assert stored.received_at_ms == events[0].at_ms


async def test_handing_back_resolves_the_ticket_row_in_the_store() -> None:
    store = MemoryStore()
    runtime = await started(store)
    await runtime.handle(message("Hi", "d1"))
    await runtime.handle(message("Question about the SLA and a refund", "d2"))
    (ticket,) = await store.open_tickets()
    rep = Actor(id="R", name="Rae", role="rep")
    await runtime.handle(
        ButtonClicked(
            delivery_id="d3",
            conversation_id="c1",
            actor=rep,
            action="claim_ticket",
            target=ticket.key,
        )
    )
    claimed = await store.ticket(ticket.key)
    assert claimed is not None
    assert claimed.claimed_by == "R"
    await runtime.handle(
        ButtonClicked(
            delivery_id="d4",
            conversation_id="c1",
            actor=rep,
            action="return_to_bot",
            target=ticket.key,
        )
    )
    assert await store.open_tickets() == []


async def test_the_sweeper_abandons_a_quiet_unqualified_conversation_once() -> None:
    store = MemoryStore()
    clock = Clock()
    runtime = await started(store, clock)
    await runtime.handle(message("Hello", "d1", "quiet"))
    await runtime.handle(message("We have a $5000 budget, I am the CTO, next month", "d2", "hot"))
    assert await runtime.sweep_idle() == 0
    clock.ms += 8 * 24 * 3600 * 1000
    assert await runtime.sweep_idle() == 2  # quiet → abandoned; hot → handoff for a human
    assert await runtime.sweep_idle() == 0
    quiet = await store.load("quiet")
    assert quiet[-1].event.type == "conversation_abandoned"
    assert [t.reason for t in await store.open_tickets()] == ["idle_after_qualified"]


async def test_a_dead_lettered_reply_is_recorded_and_alerts_the_humans_but_never_loops() -> None:
    store = MemoryStore()
    runtime = await started(store)
    await runtime.handle(message("Hello", "d1"))
    (item,) = [
        i for i in await store.claim_due(10**15, 10, 1000) if i.channel == "test:conversation"
    ]
    await store.dead_letter(item.key, "channel_not_found")
    await runtime.report_dead_letter(item, "channel_not_found")
    events = await store.load("c1")
    assert events[-1].event.type == "delivery_dead_lettered"
    alerts = [i for i in await store.claim_due(10**15, 10, 1000) if i.channel == "test:handoff"]
    assert len(alerts) == 1
    await runtime.report_dead_letter(alerts[0], "channel_not_found")
    assert [i for i in await store.claim_due(10**15, 10, 1000) if i.channel == "test:handoff"] == []


async def test_the_sweeper_hands_a_conversation_back_from_a_silent_rep_when_the_policy_says() -> (
    None
):
    """`[handoff] rep_idle_handback_ms`: the sweeper's timer, on the injected clock, gives the
    conversation back to the bot once the rep who took it over has been silent that long; the
    ticket row is resolved in the same commit. Without the setting it never does."""
    assert POLICY.handoff is not None
    desk = POLICY.handoff.model_copy(update={"rep_idle_handback_ms": 30 * 60_000})
    for policy, handed_back in (
        (POLICY.model_copy(update={"handoff": desk}), True),
        (POLICY, False),
    ):
        store, clock = MemoryStore(), Clock()
        runtime = Runtime(store, policy, EverythingToOneChannel(), clock=clock)
        await runtime.start()
        await runtime.handle(message("Hi, we are evaluating CRMs", "d1"))
        rep = Actor(id="R", name="Rae", role="rep")
        words = MessagePosted(
            delivery_id="d2", conversation_id="c1", actor=rep, text="Hi, Rae here", addressed=False
        )
        await runtime.handle(words)
        (ticket,) = await store.open_tickets()
        assert (ticket.status, ticket.claimed_by) == ("claimed", "R")
        clock.ms += 29 * 60_000
        assert await runtime.sweep_idle() == 0
        clock.ms += 2 * 60_000
        assert await runtime.sweep_idle() == (1 if handed_back else 0)
        assert (await store.open_tickets() == []) is handed_back
        types = [envelope.event.type for envelope in await store.load("c1")]
        assert ("handed_back" in types) is handed_back
