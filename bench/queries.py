"""`/metrics` and `/audit` against a growing SQLite log, before and after projections.

A SQLite store is seeded with realistic conversations (one decided by the real `decide`
— lead, messages, a quote, an objection — cloned under new ids with unique quote ids and
committed directly, many at once so they share fsyncs) up to 1k, 10k and 100k events. At
each size, in the same run:

- the *answer*: read, build the report, render its lines. Before: the previous release's
  path, kept here only as the baseline — `compute_metrics` over every event, and for a quote
  id `find_quote_conversation` over every event. After: `bot.queries` (the projections'
  counters and qualification times; the quote index, then one stream);
- the *acknowledgement* of a `/metrics` or `/audit <quote>` command through the runtime:
  before, the answer was read inline, between `decide` and the commit (measured as the
  baseline answer followed by the same `handle`); after, `handle` commits and returns, the
  answer follows in its own task (`answer delivered` is until it is in the outbox).

Every figure is the best of a few rounds in milliseconds (the machine is shared).
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from adapters.ports import Route
from bot.policy_loader import load_policy
from bot.queries import load_audit, load_metrics, query_answerer
from bot.runtime import Runtime
from domain.analytics import compute_metrics, render_metrics
from domain.audit import audit_quote, find_quote_conversation, render_audit
from domain.cards import Reply
from domain.decide import decide, new_conversation
from domain.events import EventEnvelope, QuoteIssued
from domain.inbound import (
    Actor,
    CommandInvoked,
    Inbound,
    LeadArrived,
    LeadDetails,
    MessagePosted,
)
from domain.policy import Policy
from domain.state import ConversationState
from storage.ports import Commit, Store
from storage.sqlite import SqliteStore

SIZES = (1_000, 10_000, 100_000)
NOW = 1_790_000_000_000
PROSPECT = Actor(id="P", name="Pat", role="prospect")
REP = Actor(id="R", name="Rae", role="rep", auditor=True)


class ToRequester:
    def route(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        return [Route(channel=f"bench:{inbound.actor.id}")]


def template(policy: Policy) -> list[tuple[EventEnvelope, ...]]:
    """One realistic conversation's events, grouped by the inbound that caused them."""
    cid = "template"
    state = new_conversation(cid, policy)
    script: list[Inbound] = [
        LeadArrived(
            delivery_id="t-0",
            conversation_id=cid,
            actor=PROSPECT,
            lead=LeadDetails(name="Pat Lee", company="Acme", message="Hello, tell me more"),
        ),
        MessagePosted(delivery_id="t-1", conversation_id=cid, actor=PROSPECT, text="We are 40"),
        MessagePosted(
            delivery_id="t-2",
            conversation_id=cid,
            actor=PROSPECT,
            text="We have a $5000 budget, I am the CTO and want to start next month",
        ),
        CommandInvoked(
            delivery_id="t-3", conversation_id=cid, actor=REP, command="quote", args="40 pro 10%"
        ),
        MessagePosted(
            delivery_id="t-4", conversation_id=cid, actor=PROSPECT, text="Too expensive for us"
        ),
    ]
    groups = []
    for i, inbound in enumerate(script):
        decision = decide(state, inbound, policy, NOW + i * 60_000)
        state = decision.state
        groups.append(decision.events)
    return groups


def quote_id(c: int) -> str:
    """Conversation `c`'s own quote id (quote ids are `Q-` and ten hex digits)."""
    return f"Q-{c:010x}"


def _cloned(env: EventEnvelope, c: int, shift_ms: int) -> EventEnvelope:
    event = env.event
    if isinstance(event, QuoteIssued):
        quote = event.quote.model_copy(update={"quote_id": quote_id(c)})
        event = event.model_copy(update={"quote": quote})
    return env.model_copy(
        update={"conversation_id": f"c{c}", "at_ms": env.at_ms + shift_ms, "event": event}
    )


async def seed(
    store: Store, policy: Policy, groups: list[tuple[EventEnvelope, ...]], first: int, count: int
) -> None:
    """Conversations `first` … `first + count - 1`, 200 in flight at once."""

    async def conversation(c: int) -> None:
        cid = f"c{c}"
        version = 0
        for i, group in enumerate(groups):
            events = tuple(_cloned(env, c, c * 1000) for env in group)
            await store.commit(
                Commit(
                    conversation_id=cid,
                    expected_version=version,
                    delivery_id=f"{cid}-{i}",
                    received_at_ms=NOW + c * 1000,
                    policy_version=policy.version,
                    inbound=None,
                    events=events,
                )
            )
            version += len(events)

    for start in range(first, first + count, 200):
        await asyncio.gather(
            *(conversation(c) for c in range(start, min(start + 200, first + count)))
        )


async def best_ms(run: Callable[[], Awaitable[object]], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        await run()
        best = min(best, time.perf_counter() - start)
    return best * 1000


# -- the previous release's reads, kept only as the baseline ----------------------------


async def metrics_full_scan(store: Store, policy: Policy) -> tuple[str, ...]:
    events = [env async for env in store.iterate_all()]
    metrics = compute_metrics(events, states=policy.flow.states, start=policy.flow.start)
    return render_metrics(metrics)


async def audit_quote_full_scan(store: Store, quote_id: str) -> tuple[str, ...]:
    conversation_id = find_quote_conversation(quote_id, [env async for env in store.iterate_all()])
    assert conversation_id is not None
    return render_audit(audit_quote(quote_id, await store.load(conversation_id)))


# -- this release's ---------------------------------------------------------------------


async def metrics_projected(store: Store, policy: Policy) -> tuple[str, ...]:
    return render_metrics(await load_metrics(store, policy))


async def audit_quote_indexed(store: Store, quote_id: str) -> tuple[str, ...]:
    return render_audit(await load_audit(store, quote_id))


async def measure_at(
    store: Store, runtime: Runtime, policy: Policy, quote: str, rounds: int, label: str
) -> dict[str, float]:
    """Answers and acknowledgements, before and after, at the store's current size."""
    results: dict[str, float] = {}
    deliveries = itertools.count()

    def command(name: str, args: str = "") -> CommandInvoked:
        return CommandInvoked(
            delivery_id=f"bench-{label}-{next(deliveries)}",
            conversation_id="rep-dm",
            actor=REP,
            command=name,
            args=args,
        )

    async def metrics_ack_before() -> None:  # the old order: read inline, then commit
        await metrics_full_scan(store, policy)
        await runtime.handle(command("metrics"))

    async def metrics_ack_after() -> None:
        await runtime.handle(command("metrics"))

    async def metrics_delivered_after() -> None:
        await runtime.handle(command("metrics"))
        await runtime.settled()

    async def audit_ack_before() -> None:
        await audit_quote_full_scan(store, quote)
        await runtime.handle(command("audit", quote))

    async def audit_ack_after() -> None:
        await runtime.handle(command("audit", quote))

    pairs: dict[str, tuple[Callable[[], Awaitable[object]], Callable[[], Awaitable[object]]]] = {
        "metrics_answer": (
            lambda: metrics_full_scan(store, policy),
            lambda: metrics_projected(store, policy),
        ),
        "audit_quote_answer": (
            lambda: audit_quote_full_scan(store, quote),
            lambda: audit_quote_indexed(store, quote),
        ),
        "metrics_ack": (metrics_ack_before, metrics_ack_after),
        "audit_ack": (audit_ack_before, audit_ack_after),
    }
    for name, (old, new) in pairs.items():
        before = await best_ms(old, rounds)
        after = await best_ms(new, rounds * 4)
        await runtime.settled()
        results[f"{name}_ms_before_{label}"] = before
        results[f"{name}_ms_after_{label}"] = after
        results[f"{name}_speedup_{label}"] = before / after
    results[f"metrics_answer_delivered_ms_after_{label}"] = await best_ms(
        metrics_delivered_after, rounds * 4
    )
    return results


async def measure(sizes: Sequence[int] = SIZES) -> dict[str, float]:
    policy = load_policy("default")
    groups = template(policy)
    per_conversation = sum(len(group) for group in groups)
    results: dict[str, float] = {"queries_events_per_conversation": float(per_conversation)}
    ticks = itertools.count()
    with tempfile.TemporaryDirectory() as directory:
        store = await SqliteStore.open(Path(directory) / "bench.db")
        runtime = Runtime(
            store,
            policy,
            ToRequester(),
            clock=lambda: NOW + 10**9 + next(ticks),
            answer_query=query_answerer(policy),
        )
        await runtime.start()
        seeded = 0
        try:
            for size in sizes:
                wanted = -(-size // per_conversation)
                start = time.perf_counter()
                await seed(store, policy, groups, seeded, wanted - seeded)
                elapsed = time.perf_counter() - start
                results[f"queries_seed_to_{size // 1000}k_events_per_s"] = (
                    (wanted - seeded) * per_conversation / elapsed
                )
                seeded = wanted
                quote = quote_id(wanted // 2)
                # The two paths must give the same answer before their speed is compared.
                assert await metrics_full_scan(store, policy) == await metrics_projected(
                    store, policy
                )
                assert await audit_quote_full_scan(store, quote) == await audit_quote_indexed(
                    store, quote
                )
                rounds = 2 if size >= 100_000 else 5
                label = f"{size // 1000}k"
                results.update(await measure_at(store, runtime, policy, quote, rounds, label))
        finally:
            await runtime.settled()
            await store.close()
    return results


if __name__ == "__main__":
    for name, value in asyncio.run(measure()).items():
        print(f"{name:42} {value:14,.4g}")
