"""CRM writes through the outbox (issue 16, item 2): each `crm_sync_requested` a decision
records is committed with it as one item on the CRM's channel, carrying the full record; a
redelivered inbound enqueues nothing twice; with no CRM sender in the process the items are
parked, never dead-lettered; an erased conversation's CRM items lose the prospect's data
and are never sent."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from pathlib import Path

import pytest

from adapters.crm.common import record_of
from adapters.crm.ids import CHANNEL, outbox_key
from adapters.ports import Delivery, Route, Sent
from bot.crm_outbox import crm_items
from bot.outbox_worker import OutboxWorker
from bot.policy_loader import load_policy
from bot.runtime import Runtime
from bot.service import build_service
from bot.settings import Settings
from domain.cards import Reply
from domain.events import CrmSyncRequested, EventEnvelope
from domain.inbound import Actor, CommandInvoked, Inbound, LeadArrived, LeadDetails
from domain.policy import Policy
from domain.state import ConversationState
from storage.memory import MemoryStore
from storage.ports import OutboxItem, Store
from storage.sqlite import SqliteStore
from tests.support.cli import run

CRM = """
[crm]
[crm.stages]
new = "appointmentscheduled"
qualified = "qualifiedtobuy"
meeting = "presentationscheduled"
quote_sent = "decisionmakerboughtin"
won = "closedwon"
lost = "closedlost"
"""
LEAD = "lead-crm-outbox"
FEED = Actor(id="feed", role="prospect")
REP = Actor(id="R", name="Rae", role="rep")
DETAILS = LeadDetails(
    name="Dana Fox",
    email="dana@example.com",
    company="Foxco",
    message="I'm the CTO, $40k budget approved, we want to start next month",
)


class Nowhere:
    def route(self, inbound: Inbound, reply: Reply, state: ConversationState) -> list[Route]:
        return []


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    path = tmp_path / "crm.toml"
    path.write_text(f'extends = "default"\n{CRM}', encoding="utf-8")
    return load_policy(str(path))


def inbounds() -> list[Inbound]:
    return [
        LeadArrived(delivery_id="l1", conversation_id=LEAD, actor=FEED, lead=DETAILS),
        CommandInvoked(
            delivery_id="q1", conversation_id=LEAD, actor=REP, command="quote", args="10 pro"
        ),
        CommandInvoked(delivery_id="w1", conversation_id=LEAD, actor=REP, command="won", args=""),
    ]


async def crm_runtime(store: Store, policy: Policy, start_ms: int, step_ms: int = 1000) -> Runtime:
    """A started runtime that commits the CRM's outbox items with each decision and routes
    nothing else; its clock moves by `step_ms` at each reading."""
    ticks = itertools.count()
    runtime = Runtime(
        store,
        policy,
        Nowhere(),
        clock=lambda: start_ms + step_ms * next(ticks),
        effects=crm_items,
    )
    await runtime.start()
    return runtime


async def decided(store: Store, policy: Policy) -> list[EventEnvelope]:
    runtime = await crm_runtime(store, policy, 1_790_000_000_000)
    for inbound in inbounds():
        await runtime.handle(inbound)
    await runtime.handle(inbounds()[1])  # a redelivery: decided once
    return list(await store.load(LEAD))


async def crm_outbox(store: MemoryStore, events: list[EventEnvelope]) -> list[OutboxItem]:
    items = []
    for env in events:
        if isinstance(env.event, CrmSyncRequested):
            item = await store.outbox_item(f"{CHANNEL}:{LEAD}:{env.seq}")
            assert item is not None, f"no outbox item for event {env.seq}"
            items.append(item)
    return items


async def test_each_sync_request_is_committed_as_one_item_with_its_record(policy: Policy) -> None:
    store = MemoryStore()
    events = await decided(store, policy)
    requests = [env for env in events if isinstance(env.event, CrmSyncRequested)]
    assert [env.event.artifact for env in requests] == [  # type: ignore[union-attr]
        "deal",
        "note",
        "deal",
        "quote",
        "deal",
        "note",
    ]
    items = await crm_outbox(store, events)
    assert {item.channel for item in items} == {CHANNEL}
    records = [
        record_of(Delivery(key=i.key, conversation_id=LEAD, channel=i.channel, payload=i.payload))
        for i in items
    ]
    assert [r.event_seq for r in records] == [env.seq for env in requests]
    assert records[0].contact is not None
    assert records[0].contact.email == "dana@example.com"
    assert records[-1].note == "transcript"
    assert any("CTO" in line for line in records[-1].note_lines)
    assert items[0].payload["adapter"] == "crm"
    assert await store.pending_count() == len(items)  # nothing else, nothing twice


async def test_without_a_crm_sender_the_writes_are_parked_not_dead_lettered(
    policy: Policy,
) -> None:
    store = MemoryStore()
    service = build_service(Settings(), policy, store, clock=lambda: 1_790_000_000_000)
    await service.runtime.start()
    for inbound in inbounds():
        await service.handle(inbound)
    events = list(await store.load(LEAD))
    await service.worker.drain_once()
    items = await crm_outbox(store, events)
    assert items
    assert {item.status for item in items} == {"pending"}
    assert await store.dead_letters() == []


async def test_an_erased_conversations_crm_writes_are_redacted_and_never_sent(
    policy: Policy,
) -> None:
    store = MemoryStore()
    events = await decided(store, policy)
    runtime = await crm_runtime(store, policy, 1_790_000_100_000, step_ms=1)
    assert await runtime.erase(LEAD, by="dpo", reason="request") is not None
    items = await crm_outbox(store, events)
    assert {item.status for item in items} == {"dead"}
    for item in items:
        text = str(item.payload)
        for words in ("Dana", "dana@example.com", "Foxco", "CTO"):
            assert words not in text


async def test_the_report_shows_what_waits_for_the_crm(
    policy: Policy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "salesbot.db"
    async with await SqliteStore.open(db) as store:
        events = await decided(store, policy)
    requested = [env for env in events if isinstance(env.event, CrmSyncRequested)]
    monkeypatch.setenv("SALESBOT_DB", str(db))
    code, out, err = await asyncio.to_thread(run, "report", "--out", str(tmp_path / "r"), "--json")
    assert code == 0, err
    crm = json.loads(out)["crm"]
    by_kind = {row["artifact"]: row for row in crm["artifacts"]}
    assert sum(row["requested"] for row in by_kind.values()) == len(requested)
    assert sum(row["waiting"] for row in by_kind.values()) == len(requested)  # parked
    assert all(row["sent"] == 0 and row["failed"] == 0 for row in by_kind.values())
    assert crm["oldest_waiting_ms"] >= 0
    html = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert "<caption>CRM sync</caption>" in html


class Recorded:
    """A CRM sender that records what it was given to send."""

    def __init__(self) -> None:
        self.sent: list[Delivery] = []

    async def send(self, delivery: Delivery) -> Sent:
        self.sent.append(delivery)
        return Sent(remote_id=f"crm-{len(self.sent)}")

    async def find_sent(self, delivery: Delivery) -> str | None:
        return None


async def test_another_installation_s_writes_wait_on_its_own_channel_never_the_configured_crm(
    policy: Policy,
) -> None:
    """The configured CRM is the first installation's. The same lead and deal, decided
    for a lead of another installation, ask for the same writes — but on that
    installation's own channel, where a worker sending the configured CRM's channel never
    claims them: the first installation's writes are sent, the other's stay parked."""
    store = MemoryStore()
    await decided(store, policy)  # the first installation's lead
    theirs = "lead-crm-globex"
    elsewhere = Actor(id="feed", role="prospect", installation="slack:T0002")
    rep_there = Actor(id="R2", name="Rae", role="rep", installation="slack:T0002")
    runtime = await crm_runtime(store, policy, 1_790_000_500_000)
    await runtime.handle(
        LeadArrived(delivery_id="g1", conversation_id=theirs, actor=elsewhere, lead=DETAILS)
    )
    await runtime.handle(
        CommandInvoked(
            delivery_id="g2", conversation_id=theirs, actor=rep_there, command="won", args=""
        )
    )
    requested = [env for env in await store.load(theirs) if isinstance(env.event, CrmSyncRequested)]
    assert requested  # decided as for any lead
    parked = [await store.outbox_item(outbox_key(theirs, env.seq)) for env in requested]
    assert {item.channel for item in parked if item is not None} == {"crm-of:slack:T0002"}

    sender = Recorded()
    worker = OutboxWorker(
        store,
        lambda channel: sender if channel == CHANNEL else None,
        clock=lambda: 1_790_000_900_000,
        sleep=asyncio.sleep,
        rng=random.Random(7),
        pacing_ms=lambda _channel: 0,
        prefixes=(CHANNEL,),
    )
    await worker.drain_once()
    assert sender.sent
    assert {delivery.conversation_id for delivery in sender.sent} == {LEAD}
    for env in requested:
        item = await store.outbox_item(outbox_key(theirs, env.seq))
        assert item is not None
        assert item.status == "pending"
