"""RELIABILITY rule 2 as a property: deliver, redeliver, restart, in any order.

The test plays a runtime: it keeps an in-memory dedupe view, rebuilt from
`DeliveryLog.recent` whenever the store is reopened, drops deliveries it has seen, and
commits the rest as `decide` says. Whatever the order of operations, every committed
delivery is in the file exactly once, streams have no gaps, and the rebuilt view is
complete (the store never had to report a duplicate the view should have caught).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.inbound import Inbound
from domain.policy import Policy
from storage.sqlite import SqliteStore
from tests.storage.builders import NOW, REFUND_QUESTION, decide_commit, message

TEXTS = (
    "Hi, we are evaluating tools",
    "We are a team of twelve",
    "What would this cost us per seat?",
    REFUND_QUESTION,
)

Op = tuple[str, int]
operations = st.lists(
    st.one_of(
        st.tuples(st.just("deliver"), st.integers(0, 2)),
        st.tuples(st.just("redeliver"), st.integers(0, 30)),
        st.just(("restart", 0)),
    ),
    max_size=12,
)


async def run(ops: list[Op], path: Path, policy: Policy) -> None:
    store = await SqliteStore.open(path)
    seen = await store.recent(0)
    sent: list[Inbound] = []  # everything the platform ever sent
    committed: dict[str, int] = {}  # delivery id -> events it produced
    duplicates_reaching_the_store = 0
    now = NOW
    for op, arg in ops:
        now += 1000
        if op == "restart":
            await store.close()
            store = await SqliteStore.open(path)
            seen = await store.recent(0)
            continue
        if op == "deliver":
            conversation = f"conv-{arg}"
            inbound: Inbound = message(conversation, f"Ev{len(sent)}", TEXTS[len(sent) % 4])
            sent.append(inbound)
        elif sent:
            inbound = sent[arg % len(sent)]
        else:
            continue
        if inbound.delivery_id in seen:
            continue  # dropped before decide, as the runtime does
        seen.add(inbound.delivery_id)
        commit = await decide_commit(store, policy, inbound, now)
        result = await store.commit(commit)
        if result.status == "duplicate":
            duplicates_reaching_the_store += 1
        else:
            committed[inbound.delivery_id] = len(commit.events)
    await store.close()

    async with await SqliteStore.open(path) as store:
        assert await store.recent(0) == set(committed)
        events = [env async for env in store.iterate_all()]
        assert Counter(env.delivery_id for env in events) == +Counter(committed)
        inbounds = [stored.delivery_id async for stored in store.all_inbounds()]
        assert sorted(inbounds) == sorted(committed)
        for conversation in await store.conversation_ids():
            seqs = [env.seq for env in await store.load(conversation)]
            assert seqs == list(range(1, len(seqs) + 1))
    assert duplicates_reaching_the_store == 0


@settings(deadline=None, max_examples=25)
@given(ops=operations)
def test_every_committed_delivery_is_stored_exactly_once_across_redeliveries_and_restarts(
    default_policy: Policy, ops: list[Op]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(run(ops, Path(directory) / "salesbot.db", default_policy))
