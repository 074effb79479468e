"""Audits and metrics are answered after the commit, through the outbox: a read can never
hold the acknowledgement, the answer still reaches only the person who asked, and a crash
between the commit and the answer is healed at the next start, once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from adapters.ports import Route
from bot.policy_loader import load_policy
from bot.queries import query_answerer
from bot.runtime import Runtime, answer_key, answer_outbox_key
from domain.cards import Reply
from domain.decision import Query
from domain.inbound import Actor, CommandInvoked, Inbound
from domain.policy import Policy
from domain.state import ConversationState
from storage.memory import MemoryStore
from storage.ports import OutboxItem, Store
from storage.sqlite import SqliteStore
from tests.storage.scripted import REP, Clock, OneChannelEach, SalesDay

POLICY: Policy = load_policy("default")


def command(name: str, args: str = "", delivery: str = "d-q", actor: Actor = REP) -> CommandInvoked:
    return CommandInvoked(
        delivery_id=delivery, conversation_id="conv-0", actor=actor, command=name, args=args
    )


async def unsent(store: Store) -> list[OutboxItem]:
    items = await store.claim_due(10**15, 10_000, 1)
    await store.release([item.key for item in items], 0)
    return items


async def answers_in(store: Store) -> list[OutboxItem]:
    return [item for item in await unsent(store) if item.key.startswith("A-")]


class Gate:
    """An answerer that waits until opened: a read as slow as the test wants."""

    def __init__(self, store: Store, policy: Policy) -> None:
        self.opened = asyncio.Event()
        self.calls = 0
        self._answer = query_answerer(policy)

    async def __call__(self, query: Query, store: Store) -> Sequence[Reply]:
        self.calls += 1
        await self.opened.wait()
        return await self._answer(query, store)


async def seeded(store: Store) -> SalesDay:
    day = SalesDay(store, POLICY)
    await day.start()
    await day.run(conversations=6)
    for item in await unsent(store):  # what the day said is not what these tests look at
        await store.mark_sent(item.key, 0)
    return day


async def test_the_answer_is_not_in_the_commit_but_follows_it_to_the_requester_only() -> None:
    store = MemoryStore()
    day = await seeded(store)
    result = await day.runtime.handle(command("metrics"))
    # Returned (the adapter may acknowledge) with the question recorded, not yet answered.
    assert result.status == "committed"
    pending = await store.pending_answers()
    assert [p.key for p in pending] == [answer_key("d-q", 0)]
    assert await answers_in(store) == []
    assert await store.pending_count() == 1  # "drained" still means every reply was sent
    await day.runtime.settled()
    assert await store.pending_answers() == []
    # The metrics card, then its chart (a second reply with the PNG), both to the requester.
    item, chart = await answers_in(store)
    assert item.key == answer_outbox_key(answer_key("d-q", 0), 0, "dm:U_REP")
    assert chart.key == answer_outbox_key(answer_key("d-q", 0), 1, "dm:U_REP")
    assert chart.channel == item.channel
    assert chart.payload["reply"]["audience"] == "requester"
    assert chart.payload["reply"]["image"]["media_type"] == "image/png"
    assert "image" not in item.payload["reply"]  # the card's reply is stored as before
    # Exactly where an inline answer went: the requester's own route, nowhere else.
    assert item.channel == "dm:U_REP"
    assert item.payload["target"] == {"user": "U_REP"}
    assert item.payload["requester"] == "U_REP"
    assert item.payload["reply"]["audience"] == "requester"
    assert item.payload["reply"]["card"]["title"] == "Sales metrics"
    assert "started" in item.payload["reply"]["text"]


async def test_a_slow_read_never_holds_the_acknowledgement() -> None:
    store = MemoryStore()
    day = await seeded(store)
    gate = Gate(store, POLICY)
    runtime = Runtime(store, POLICY, OneChannelEach(), clock=Clock(), answer_query=gate)
    await runtime.start()
    # The read does not finish until the gate opens; the inbound is durable regardless.
    result = await runtime.handle(command("audit", day.quotes[0]))
    assert result.status == "committed"
    assert await store.seen("d-q")
    await asyncio.sleep(0)  # the answer task starts and blocks in its read
    assert gate.calls == 1
    assert await answers_in(store) == []
    gate.opened.set()
    await runtime.settled()
    [item] = await answers_in(store)
    assert item.payload["reply"]["card"]["title"] == f"Audit of quote {day.quotes[0]}"


async def test_an_audit_of_the_conversation_it_is_asked_in_lists_its_own_request() -> None:
    store = MemoryStore()
    day = await seeded(store)
    await day.runtime.handle(command("audit", "conv-0"))
    await day.runtime.settled()
    [item] = await answers_in(store)
    lines = item.payload["reply"]["card"]["lines"]
    assert lines[-1].endswith("opened the audit of conv-0")


async def test_an_answer_lost_to_a_crash_is_given_at_the_next_start_exactly_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "salesbot.db"
    store = await SqliteStore.open(path)
    await seeded(store)
    gate = Gate(store, POLICY)
    runtime = Runtime(store, POLICY, OneChannelEach(), clock=Clock(), answer_query=gate)
    await runtime.start()
    await runtime.handle(command("metrics"))
    await asyncio.sleep(0)
    await store.close()  # the process dies while the answer is being read
    gate.opened.set()
    await runtime.settled()  # the read fails on the closed store; the record stays

    async with await SqliteStore.open(path) as reopened:
        assert [p.key for p in await reopened.pending_answers()] == [answer_key("d-q", 0)]
        assert await answers_in(reopened) == []
        first = Runtime(
            reopened,
            POLICY,
            OneChannelEach(),
            clock=Clock(),
            answer_query=query_answerer(POLICY),
        )
        await first.start()
        item, chart = await answers_in(reopened)
        assert item.channel == chart.channel == "dm:U_REP"
        assert await reopened.pending_answers() == []
        # A second start, or a second process recovering it too, adds nothing.
        await first.start()
        second = Runtime(
            reopened, POLICY, OneChannelEach(), clock=Clock(), answer_query=query_answerer(POLICY)
        )
        await second.start()
        assert [i.key for i in await answers_in(reopened)] == [item.key, chart.key]
        # The redelivered command is a duplicate and asks nothing again.
        assert (await second.handle(command("metrics"))).status == "duplicate"
        assert await reopened.pending_answers() == []


async def test_two_processes_recovering_one_answer_enqueue_it_once() -> None:
    store = MemoryStore()
    await seeded(store)
    gate = Gate(store, POLICY)
    asker = Runtime(store, POLICY, OneChannelEach(), clock=Clock(), answer_query=gate)
    await asker.start()
    await asker.handle(command("metrics"))
    others = [
        Runtime(store, POLICY, OneChannelEach(), clock=Clock(), answer_query=query_answerer(POLICY))
        for _ in range(2)
    ]
    await asyncio.gather(*(other.start() for other in others))
    gate.opened.set()
    await asker.settled()
    assert len(await answers_in(store)) == 2  # the card and its chart, once


async def test_a_runtime_that_cannot_answer_records_nothing_and_leaves_others_answers() -> None:
    store = MemoryStore()
    await seeded(store)
    gate = Gate(store, POLICY)
    asker = Runtime(store, POLICY, OneChannelEach(), clock=Clock(), answer_query=gate)
    await asker.start()
    await asker.handle(command("metrics"))
    # The command line's runtime has no answerer (it prints the report itself).
    cli = Runtime(store, POLICY, OneChannelEach(), clock=Clock())
    await cli.start()
    await cli.handle(command("metrics", delivery="d-cli"))
    assert [p.delivery_id for p in await store.pending_answers()] == ["d-q"]
    gate.opened.set()
    await asker.settled()
    assert len(await answers_in(store)) == 2  # the card and its chart


class Nowhere:
    def route(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        return []


async def test_a_query_with_nowhere_to_go_records_no_answer() -> None:
    store = MemoryStore()
    await seeded(store)
    runtime = Runtime(store, POLICY, Nowhere(), clock=Clock(), answer_query=query_answerer(POLICY))
    await runtime.start()
    assert (await runtime.handle(command("metrics"))).status == "committed"
    assert await store.pending_answers() == []
