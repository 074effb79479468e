"""The store contract, continued: `outbox_stats`, what `/metrics` reads at every scrape.
Runs on every implementation (the `store` fixture of this package)."""

from __future__ import annotations

from storage.ports import OutboxItem, OutboxStats, Store


def item(key: str, channel: str, created_at_ms: int) -> OutboxItem:
    return OutboxItem(
        key=key,
        conversation_id="conv-1",
        channel=channel,
        payload={"text": f"reply {key}"},
        created_at_ms=created_at_ms,
        available_at_ms=created_at_ms,
    )


async def test_an_empty_outbox_has_no_platforms(store: Store) -> None:
    assert await store.outbox_stats() == []


async def test_outbox_stats_count_pending_and_dead_items_per_platform_and_skip_sent_ones(
    store: Store,
) -> None:
    await store.enqueue(
        [
            item("s1", "slack:C1", 100),
            item("s2", "slack:C2", 50),
            item("s3", "slack:C1", 300),
            item("t1", "teams:19:abc@thread.tacv2", 400),
            item("t2", "teams:a:dm", 20),
            item("x1", "terminal", 700),
        ]
    )
    claimed = await store.claim_due(now_ms=60, limit=10, lease_ms=1_000)
    assert {i.key for i in claimed} == {"s2", "t2"}  # in flight still counts as pending
    assert await store.mark_sent("t2", at_ms=61)
    assert await store.dead_letter("s2", "channel_not_found")

    assert await store.outbox_stats() == [
        OutboxStats(platform="slack", pending=2, oldest_pending_created_at_ms=100, dead=1),
        OutboxStats(platform="teams", pending=1, oldest_pending_created_at_ms=400, dead=0),
        OutboxStats(platform="terminal", pending=1, oldest_pending_created_at_ms=700, dead=0),
    ]


async def test_a_platform_with_only_dead_letters_has_no_oldest_pending_item(store: Store) -> None:
    await store.enqueue([item("a", "lead-reply:lead-1", 5)])
    assert await store.dead_letter("a", "refused")
    assert await store.outbox_stats() == [
        OutboxStats(platform="lead-reply", pending=0, oldest_pending_created_at_ms=None, dead=1)
    ]
    assert await store.pending_count() == 0
