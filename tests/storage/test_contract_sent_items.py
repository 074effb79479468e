"""The store contract, continued: `sent_items`, what a window onto the conversations (the
playground) reads at start to show what was delivered. Runs on every implementation."""

from __future__ import annotations

import pytest

from storage.ports import OutboxItem, Store


def item(key: str, channel: str, created_at_ms: int = 10) -> OutboxItem:
    return OutboxItem(
        key=key,
        conversation_id="conv-1",
        channel=channel,
        payload={"reply": {"text": f"reply {key}"}},
        created_at_ms=created_at_ms,
        available_at_ms=created_at_ms,
    )


async def send_all(store: Store, *keys: str) -> None:
    for key in keys:
        assert await store.mark_sent(key, at_ms=50, remote_id=f"remote-{key}")


async def test_only_sent_items_of_the_prefix_come_back_in_enqueue_order(store: Store) -> None:
    await store.enqueue(
        [
            item("p1", "playground:a"),
            item("s1", "slack:C1"),
            item("p2", "playground:b"),
            item("p3", "playground:a"),
            item("p4", "playground:a"),  # never sent: still pending
            item("p5", "playground:b"),
        ]
    )
    await send_all(store, "p5", "p1", "s1", "p2", "p3")  # sent out of enqueue order
    assert await store.dead_letter("p4", "refused")

    found = await store.sent_items("playground:", limit=10)

    assert [i.key for i in found] == ["p1", "p2", "p3", "p5"]
    assert {i.status for i in found} == {"sent"}
    assert found[0].remote_id == "remote-p1"
    assert found[0].sent_at_ms == 50
    assert found[0].payload == {"reply": {"text": "reply p1"}}


async def test_with_a_limit_the_latest_sent_items_come_back_oldest_first(store: Store) -> None:
    await store.enqueue([item(f"k{n}", "playground:a", created_at_ms=n) for n in range(6)])
    await send_all(store, *(f"k{n}" for n in range(6)))
    assert [i.key for i in await store.sent_items("playground:", limit=3)] == ["k3", "k4", "k5"]


async def test_a_prefix_is_matched_literally_not_as_a_pattern(store: Store) -> None:
    await store.enqueue([item("a", "play_ground:x"), item("b", "playXground:x")])
    await send_all(store, "a", "b")
    assert [i.key for i in await store.sent_items("play_", limit=10)] == ["a"]
    assert await store.sent_items("play%", limit=10) == []


async def test_an_outbox_with_nothing_sent_gives_nothing(store: Store) -> None:
    await store.enqueue([item("a", "playground:x")])
    assert await store.sent_items("playground:", limit=5) == []


@pytest.mark.parametrize("limit", [0, -1])
async def test_a_limit_below_one_is_refused(store: Store, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        await store.sent_items("playground:", limit=limit)


async def test_what_comes_back_is_a_copy(store: Store) -> None:
    await store.enqueue([item("a", "playground:x")])
    await send_all(store, "a")
    (found,) = await store.sent_items("playground:", limit=1)
    found.payload["reply"]["text"] = "changed"
    (again,) = await store.sent_items("playground:", limit=1)
    assert again.payload == {"reply": {"text": "reply a"}}
