"""The store contract: what the runtime relies on, checked on every implementation."""

from __future__ import annotations

from typing import Any

import pytest

from domain.events import EventEnvelope, HandedBack, TicketClaimed, TicketOpened, TicketReopened
from domain.policy import Policy
from storage.errors import ConcurrencyError, StorageError
from storage.ports import LEASE_EXPIRED, Commit, OutboxItem, Store, TicketRow
from tests.storage.builders import (
    INBOUND,
    NOW,
    OTHER_REP,
    REFUND_QUESTION,
    REP,
    Script,
    click,
    decide_commit,
    handoff_script,
    lead,
    message,
    opened_ticket,
)

# -- helpers ---------------------------------------------------------------------------


def outbox_item(key: str, channel: str = "slack:C1", available_at_ms: int = 0) -> OutboxItem:
    return OutboxItem(
        key=key,
        conversation_id="conv-1",
        channel=channel,
        payload={"text": f"reply {key}", "lines": ["a", "b"]},
        created_at_ms=available_at_ms,
        available_at_ms=available_at_ms,
    )


def ticket_row(key: str, opened_at_ms: int = 0) -> TicketRow:
    return TicketRow(
        key=key,
        conversation_id="conv-1",
        kind="handoff",
        reason="sensitive_terms",
        opened_at_ms=opened_at_ms,
        updated_at_ms=opened_at_ms,
    )


async def all_events(store: Store) -> list[EventEnvelope]:
    return [envelope async for envelope in store.iterate_all()]


async def assert_nothing_of(store: Store, commit: Commit) -> None:
    """No trace of `commit` anywhere in the store."""
    assert not await store.seen(commit.delivery_id)
    assert commit.delivery_id not in {stored.delivery_id async for stored in store.all_inbounds()}
    assert commit.delivery_id not in {env.delivery_id for env in await all_events(store)}
    for item in commit.outbox:
        assert await store.outbox_item(item.key) is None
    for event in commit.ticket_events:
        if isinstance(event, TicketOpened):
            assert await store.ticket(event.ticket_key) is None


# -- event streams ---------------------------------------------------------------------


async def test_appended_events_load_back_equal_and_in_order(
    store: Store, default_policy: Policy
) -> None:
    first, second = handoff_script(default_policy, "conv-1").commits
    assert await store.append("conv-1", 0, first.events) == len(first.events)
    version = await store.append("conv-1", len(first.events), second.events)
    loaded = await store.load("conv-1")
    assert loaded == [*first.events, *second.events]
    assert [env.seq for env in loaded] == list(range(1, version + 1))
    assert await store.version("conv-1") == version


async def test_an_unknown_conversation_is_empty_at_version_zero(store: Store) -> None:
    assert await store.load("nobody") == []
    assert await store.version("nobody") == 0


async def test_iterate_all_yields_every_event_in_append_order_across_conversations(
    store: Store, default_policy: Policy
) -> None:
    a = handoff_script(default_policy, "conv-a").commits
    b = handoff_script(default_policy, "conv-b").commits
    for commit in (a[0], b[0], a[1], b[1]):
        await store.commit(commit)
    expected = [*a[0].events, *b[0].events, *a[1].events, *b[1].events]
    assert await all_events(store) == expected
    assert await store.conversation_ids() == ["conv-a", "conv-b"]


async def test_an_append_at_a_stale_version_raises_and_writes_nothing(
    store: Store, default_policy: Policy
) -> None:
    first, second = handoff_script(default_policy, "conv-1").commits
    await store.append("conv-1", 0, first.events)
    with pytest.raises(ConcurrencyError) as caught:
        await store.append("conv-1", 0, first.events)
    assert caught.value.actual == len(first.events)
    assert "conv-1" in str(caught.value)
    assert await store.load("conv-1") == list(first.events)
    assert await store.version("conv-1") == len(first.events)
    await store.append("conv-1", len(first.events), second.events)


async def test_events_with_a_gap_or_from_another_conversation_are_refused(
    store: Store, default_policy: Policy
) -> None:
    first, second = handoff_script(default_policy, "conv-1").commits
    with pytest.raises(ValueError, match="seq"):
        await store.append("conv-1", 0, second.events)  # starts at seq 7, not 1
    with pytest.raises(ValueError, match="conv-2"):
        await store.append("conv-2", 0, first.events)
    assert await all_events(store) == []


# -- the atomic commit -------------------------------------------------------------------


async def test_a_commit_writes_events_delivery_inbound_outbox_and_ticket_together(
    store: Store, default_policy: Policy
) -> None:
    first, second = handoff_script(default_policy, "conv-1").commits
    assert (await store.commit(first)).status == "committed"
    result = await store.commit(second)
    assert result.status == "committed"
    assert result.version == len(first.events) + len(second.events)
    assert await store.load("conv-1") == [*first.events, *second.events]
    assert await store.seen(second.delivery_id)
    stored = await store.inbounds("conv-1")
    assert [s.position for s in stored] == [1, 2]
    assert stored[1].inbound == second.inbound
    assert stored[1].policy_version == default_policy.version
    handoff = [item for item in second.outbox if item.channel.endswith(":handoff")]
    assert handoff
    assert await store.outbox_item(handoff[0].key) == handoff[0]
    opened = opened_ticket(second)
    ticket = await store.ticket(opened.ticket_key)
    assert ticket is not None
    assert (ticket.status, ticket.kind, ticket.reason) == ("open", "handoff", opened.reason)
    assert ticket.conversation_id == "conv-1"
    assert ticket.opened_at_ms == second.events[-1].at_ms


async def test_a_commit_at_a_stale_version_leaves_no_delivery_outbox_ticket_or_inbound(
    store: Store, default_policy: Policy
) -> None:
    first, second = handoff_script(default_policy, "conv-1").commits
    await store.commit(first)
    await store.append("conv-1", len(first.events), second.events)  # someone got there first
    stale = second.model_copy(update={"delivery_id": "conv-1/refund-again"})
    with pytest.raises(ConcurrencyError):
        await store.commit(stale)
    await assert_nothing_of(store, stale)
    assert [s.position for s in await store.inbounds("conv-1")] == [1]


async def test_a_commit_with_a_payload_that_is_not_json_writes_nothing(
    store: Store, default_policy: Policy
) -> None:
    first = Script(default_policy, "conv-1").then(lead("conv-1", "d-1"))
    bad_item = first.outbox[0].model_copy(update={"payload": {"when": object()}})
    bad = first.model_copy(update={"outbox": (*first.outbox[1:], bad_item)})
    with pytest.raises(TypeError):
        await store.commit(bad)
    await assert_nothing_of(store, first)
    assert await store.version("conv-1") == 0


async def test_a_duplicate_delivery_is_reported_and_writes_nothing(
    store: Store, default_policy: Policy
) -> None:
    first, second = handoff_script(default_policy, "conv-1").commits
    await store.commit(first)
    version = (await store.commit(second)).version
    # The retry was decided against the newer state: different events, same delivery id.
    retry = await decide_commit(
        store, default_policy, INBOUND.validate_python(second.inbound), NOW + 60_000
    )
    assert retry.events != second.events
    keys = {item.key for item in (*second.outbox, *retry.outbox)}
    before = {key: await store.outbox_item(key) for key in keys}
    events_before = await all_events(store)
    result = await store.commit(retry)
    assert (result.status, result.version) == ("duplicate", version)
    assert await all_events(store) == events_before
    assert len(await store.inbounds("conv-1")) == 2
    assert {key: await store.outbox_item(key) for key in keys} == before


async def test_the_same_delivery_four_times_gives_one_set_of_events_one_reply_and_one_ticket(
    store: Store, default_policy: Policy
) -> None:
    await store.commit(handoff_script(default_policy, "conv-1").commits[0])
    refund = message("conv-1", "slack:Ev-refund", REFUND_QUESTION)
    commits: list[Commit] = []
    results = []
    for attempt in range(4):  # the original and Slack's three retries
        commits.append(await decide_commit(store, default_policy, refund, NOW + attempt * 60_000))
        results.append((await store.commit(commits[-1])).status)
    assert results == ["committed", "duplicate", "duplicate", "duplicate"]
    caused = [env for env in await store.load("conv-1") if env.delivery_id == refund.delivery_id]
    assert caused == list(commits[0].events)
    assert sum(isinstance(env.event, TicketOpened) for env in caused) == 1
    assert len(await store.open_tickets()) == 1
    delivered = [s.delivery_id for s in await store.inbounds("conv-1")]
    assert delivered.count(refund.delivery_id) == 1
    keys = sorted({item.key for commit in commits for item in commit.outbox})
    stored = [item for key in keys if (item := await store.outbox_item(key)) is not None]
    assert stored == list(commits[0].outbox)
    assert [item.channel.rsplit(":", 1)[1] for item in stored].count("conversation") == 1


async def test_claims_and_hand_backs_in_commits_are_mirrored_into_the_ticket_table(
    store: Store, default_policy: Policy
) -> None:
    script = handoff_script(default_policy, "conv-1")
    key = opened_ticket(script.commits[1]).ticket_key
    claim = script.then(click("conv-1", "d-claim", "claim_ticket", key, REP))
    late = script.then(click("conv-1", "d-claim-2", "claim_ticket", key, OTHER_REP))
    back = script.then(click("conv-1", "d-back", "return_to_bot", key, REP))
    assert any(isinstance(e, TicketClaimed) for e in claim.ticket_events)
    assert any(isinstance(e, HandedBack) for e in back.ticket_events)
    for commit in script.commits[:2]:
        await store.commit(commit)
    await store.commit(claim)
    ticket = await store.ticket(key)
    assert ticket is not None
    assert (ticket.status, ticket.claimed_by) == ("claimed", REP.id)
    await store.commit(late)
    ticket = await store.ticket(key)
    assert ticket is not None
    assert ticket.claimed_by == REP.id
    await store.commit(back)
    ticket = await store.ticket(key)
    assert ticket is not None
    assert (ticket.status, ticket.resolved_by) == ("resolved", REP.id)
    assert ticket.updated_at_ms == back.events[0].at_ms
    assert await store.open_tickets() == []


async def test_a_ticket_reopened_after_its_outcome_is_held_again_in_the_ticket_table(
    store: Store, default_policy: Policy
) -> None:
    """The handoff desk: resolved, then the prospect writes; the row is claimed by the
    same holder again, and resolving it again resolves it."""
    script = handoff_script(default_policy, "conv-1")
    key = opened_ticket(script.commits[1]).ticket_key
    claim = script.then(click("conv-1", "d-claim", "claim_ticket", key, REP))
    closed = script.then(click("conv-1", "d-closed", "resolve_ticket", f"{key}:closed", REP))
    again = script.then(message("conv-1", "d-again", "Sorry, one more question"))
    done = script.then(click("conv-1", "d-won", "resolve_ticket", f"{key}:won", REP))
    assert any(isinstance(e, TicketReopened) for e in again.ticket_events)
    for commit in script.commits:
        await store.commit(commit)
        ticket = await store.ticket(key)
        if commit is closed:
            assert ticket is not None
            assert (ticket.status, ticket.resolved_by) == ("resolved", REP.id)
        if commit is again:
            assert ticket is not None
            assert (ticket.status, ticket.claimed_by, ticket.resolved_by) == (
                "claimed",
                REP.id,
                None,
            )
            assert ticket.updated_at_ms == again.events[0].at_ms
            assert [t.key for t in await store.open_tickets()] == [key]
    assert claim.ticket_events
    assert done.ticket_events
    ticket = await store.ticket(key)
    assert ticket is not None
    assert ticket.status == "resolved"
    assert await store.open_tickets() == []


# -- deliveries and inbounds ---------------------------------------------------------------


async def test_recent_lists_the_deliveries_received_since_a_time(
    store: Store, default_policy: Policy
) -> None:
    first, second = handoff_script(default_policy, "conv-1", now_ms=10_000).commits
    await store.commit(first)
    await store.commit(second)
    assert await store.recent(0) == {first.delivery_id, second.delivery_id}
    assert await store.recent(second.received_at_ms) == {second.delivery_id}
    assert await store.recent(second.received_at_ms + 1) == set()
    assert not await store.seen("never-delivered")


async def test_inbounds_come_back_verbatim_per_conversation_and_in_commit_order(
    store: Store, default_policy: Policy
) -> None:
    a = handoff_script(default_policy, "conv-a").commits
    b = handoff_script(default_policy, "conv-b").commits
    for commit in (b[0], a[0], a[1], b[1]):
        await store.commit(commit)
    stored_a = await store.inbounds("conv-a")
    assert [s.inbound for s in stored_a] == [a[0].inbound, a[1].inbound]
    assert [s.position for s in stored_a] == [1, 2]
    assert INBOUND.validate_python(stored_a[1].inbound).delivery_id == a[1].delivery_id
    everything = [s.delivery_id async for s in store.all_inbounds()]
    assert everything == [b[0].delivery_id, a[0].delivery_id, a[1].delivery_id, b[1].delivery_id]


async def test_a_commit_without_an_inbound_still_records_its_delivery(
    store: Store, default_policy: Policy
) -> None:
    first = handoff_script(default_policy, "conv-1").commits[0]
    await store.commit(first.model_copy(update={"inbound": None}))
    assert await store.seen(first.delivery_id)
    assert await store.inbounds("conv-1") == []


# -- outbox --------------------------------------------------------------------------------


async def test_due_items_are_claimed_oldest_first_with_a_lease(store: Store) -> None:
    await store.enqueue(
        [outbox_item("a", "ch-1", 10), outbox_item("b", "ch-2", 20), outbox_item("c", "ch-3", 99)]
    )
    claimed = await store.claim_due(now_ms=50, limit=10, lease_ms=1000)
    assert [i.key for i in claimed] == ["a", "b"]
    assert {(i.status, i.lease_until_ms) for i in claimed} == {("in_flight", 1050)}
    assert await store.outbox_item("a") == claimed[0]
    assert await store.claim_due(now_ms=60, limit=10, lease_ms=1000) == []
    assert await store.pending_count() == 3


async def test_claim_due_honours_the_limit(store: Store) -> None:
    await store.enqueue([outbox_item(k, f"ch-{k}") for k in "abcde"])
    first = await store.claim_due(now_ms=0, limit=2, lease_ms=100)
    second = await store.claim_due(now_ms=0, limit=2, lease_ms=100)
    assert [i.key for i in first + second] == ["a", "b", "c", "d"]
    assert await store.claim_due(now_ms=0, limit=0, lease_ms=100) == []


async def test_enqueueing_a_key_again_keeps_the_first_item(store: Store) -> None:
    original = outbox_item("a")
    await store.enqueue([original])
    await store.enqueue([original.model_copy(update={"payload": {"text": "changed"}})])
    assert await store.outbox_item("a") == original
    assert await store.pending_count() == 1


async def test_an_item_whose_sender_died_is_claimed_again_when_its_lease_expires(
    store: Store,
) -> None:
    await store.enqueue([outbox_item("a")])
    await store.claim_due(now_ms=0, limit=10, lease_ms=1000)
    assert await store.claim_due(now_ms=999, limit=10, lease_ms=1000) == []
    resumed = await store.claim_due(now_ms=1000, limit=10, lease_ms=1000)
    assert [(i.key, i.lease_until_ms) for i in resumed] == [("a", 2000)]


async def test_a_sent_item_is_never_claimed_again_and_keeps_its_remote_id(store: Store) -> None:
    await store.enqueue([outbox_item("a")])
    await store.claim_due(now_ms=0, limit=10, lease_ms=1000)
    assert await store.mark_sent("a", at_ms=5, remote_id="1700000000.000100")
    sent = await store.outbox_item("a")
    assert sent is not None
    assert (sent.status, sent.sent_at_ms, sent.remote_id) == ("sent", 5, "1700000000.000100")
    assert await store.claim_due(now_ms=10_000, limit=10, lease_ms=1000) == []
    assert await store.pending_count() == 0
    assert not await store.mark_sent("a", at_ms=6)
    assert not await store.mark_sent("unknown", at_ms=6)


async def test_a_failed_item_is_retried_from_its_next_attempt_time(store: Store) -> None:
    await store.enqueue([outbox_item("a")])
    await store.claim_due(now_ms=0, limit=10, lease_ms=1000)
    assert await store.fail("a", next_attempt_ms=500, error="HTTP 503")
    failed = await store.outbox_item("a")
    assert failed is not None
    assert (failed.status, failed.attempts, failed.last_error) == ("pending", 1, "HTTP 503")
    assert failed.lease_until_ms is None
    assert await store.claim_due(now_ms=499, limit=10, lease_ms=1000) == []
    retried = await store.claim_due(now_ms=500, limit=10, lease_ms=1000)
    assert [(i.key, i.attempts) for i in retried] == [("a", 1)]


async def test_a_dead_letter_is_listed_and_never_sent(store: Store) -> None:
    await store.enqueue([outbox_item("a"), outbox_item("b", "ch-2")])
    await store.claim_due(now_ms=0, limit=10, lease_ms=1000)
    assert await store.dead_letter("a", "channel_not_found")
    dead = await store.dead_letters()
    assert [(i.key, i.status, i.last_error) for i in dead] == [("a", "dead", "channel_not_found")]
    resumed = await store.claim_due(now_ms=10**6, limit=10, lease_ms=1)
    assert [i.key for i in resumed] == ["b"]  # b's lease expired; a stays dead
    assert not await store.fail("a", 0, "late")
    assert await store.pending_count() == 1


async def test_a_newer_item_never_overtakes_an_older_one_in_its_channel(store: Store) -> None:
    await store.enqueue(
        [outbox_item("a1", "ch-a"), outbox_item("a2", "ch-a"), outbox_item("b1", "ch-b")]
    )
    first = await store.claim_due(now_ms=0, limit=1, lease_ms=100)
    assert [i.key for i in first] == ["a1"]
    # a1 is in flight: a2 waits for it, the other channel does not.
    assert [i.key for i in await store.claim_due(now_ms=0, limit=10, lease_ms=100)] == ["b1"]
    await store.fail("a1", next_attempt_ms=50, error="timeout")
    assert await store.claim_due(now_ms=10, limit=10, lease_ms=100) == []
    assert [i.key for i in await store.claim_due(now_ms=50, limit=10, lease_ms=100)] == [
        "a1",
        "a2",
    ]


async def test_a_dead_letter_stops_blocking_its_channel(store: Store) -> None:
    await store.enqueue([outbox_item("a1", "ch-a"), outbox_item("a2", "ch-a")])
    await store.claim_due(now_ms=0, limit=1, lease_ms=100)
    await store.dead_letter("a1", "not_in_channel")
    assert [i.key for i in await store.claim_due(now_ms=0, limit=10, lease_ms=100)] == ["a2"]


# -- fair claims ---------------------------------------------------------------------------

LEASE_MS = 60_000


async def test_after_a_backlog_of_150_in_one_channel_a_new_item_in_another_is_claimed_at_once(
    store: Store,
) -> None:
    await store.enqueue([outbox_item(f"lead-{n}", "slack:CLEADS") for n in range(150)])
    await store.enqueue([outbox_item("dm-reply", "slack:D1", available_at_ms=5)])
    claimed = await store.claim_due(now_ms=10, limit=50, lease_ms=LEASE_MS)
    # Round-robin: each channel's first item before any channel's second.
    assert [i.key for i in claimed[:3]] == ["lead-0", "dm-reply", "lead-1"]
    assert [i.key for i in claimed if i.channel == "slack:CLEADS"] == [
        f"lead-{n}" for n in range(49)
    ]  # within the channel, strictly in order


async def test_claims_take_every_channels_first_item_oldest_first_then_every_second(
    store: Store,
) -> None:
    await store.enqueue(
        [
            outbox_item("b1", "ch-b"),
            outbox_item("a1", "ch-a"),
            outbox_item("b2", "ch-b"),
            outbox_item("c1", "ch-c"),
            outbox_item("a2", "ch-a"),
            outbox_item("b3", "ch-b"),
        ]
    )
    claimed = await store.claim_due(now_ms=0, limit=10, lease_ms=100)
    assert [i.key for i in claimed] == ["b1", "a1", "c1", "b2", "a2", "b3"]


async def test_claims_take_at_most_per_channel_items_of_one_channel(store: Store) -> None:
    await store.enqueue([outbox_item(f"a{n}", "ch-a") for n in range(5)])
    await store.enqueue([outbox_item("b0", "ch-b")])
    first = await store.claim_due(now_ms=0, limit=10, lease_ms=100, per_channel=2)
    assert [i.key for i in first] == ["a0", "b0", "a1"]
    # a2 waits behind a0 and a1, which are in flight.
    assert await store.claim_due(now_ms=0, limit=10, lease_ms=100, per_channel=2) == []


async def test_an_excluded_channel_is_skipped_without_claiming_or_blocking_others(
    store: Store,
) -> None:
    await store.enqueue([outbox_item("a1", "slack:A"), outbox_item("b1", "slack:B")])
    claimed = await store.claim_due(now_ms=0, limit=10, lease_ms=100, exclude={"slack:A"})
    assert [i.key for i in claimed] == ["b1"]
    waiting = await store.outbox_item("a1")
    assert waiting is not None
    assert (waiting.status, waiting.lease_until_ms) == ("pending", None)
    assert [i.key for i in await store.claim_due(now_ms=0, limit=10, lease_ms=100)] == ["a1"]


async def test_only_channels_with_a_given_prefix_are_claimed_and_the_others_are_untouched(
    store: Store,
) -> None:
    await store.enqueue(
        [
            outbox_item("t1", "terminal"),
            outbox_item("p1", "playground:conv-1:all"),
            outbox_item("s1", "slack:C1"),
        ]
    )
    server = await store.claim_due(
        now_ms=0, limit=10, lease_ms=100, prefixes=("slack:", "playground:")
    )
    assert [i.key for i in server] == ["p1", "s1"]
    # Long after any lease: the terminal's item is still the terminal's, never dead.
    assert await store.claim_due(10**9, 10, 100, prefixes=("slack:", "playground:")) == [
        i.model_copy(update={"last_error": LEASE_EXPIRED, "lease_until_ms": 10**9 + 100})
        for i in server
    ]
    assert await store.claim_due(now_ms=0, limit=10, lease_ms=100, prefixes=()) == []
    terminal = await store.outbox_item("t1")
    assert terminal is not None
    assert (terminal.status, terminal.attempts) == ("pending", 0)
    assert [i.key for i in await store.claim_due(0, 10, 100, prefixes=("terminal",))] == ["t1"]


# -- lease owners ---------------------------------------------------------------------------


async def test_a_lease_names_its_owner_until_the_item_is_settled_or_released(store: Store) -> None:
    await store.heartbeat("boot-a", now_ms=0, alive_until_ms=20_000)
    await store.enqueue([outbox_item("a"), outbox_item("b", "ch-2"), outbox_item("c", "ch-3")])
    claimed = await store.claim_due(now_ms=0, limit=10, lease_ms=LEASE_MS, owner="boot-a")
    assert {i.lease_owner for i in claimed} == {"boot-a"}
    assert await store.outbox_item("a") == claimed[0]
    await store.mark_sent("a", at_ms=1)
    await store.fail("b", next_attempt_ms=2, error="HTTP 503")
    await store.release(["c"], available_at_ms=3)
    for key in "abc":
        settled = await store.outbox_item(key)
        assert settled is not None
        assert (settled.lease_owner, settled.lease_until_ms) == (None, None)


async def test_a_live_owners_leases_are_never_taken(store: Store) -> None:
    await store.heartbeat("boot-a", now_ms=0, alive_until_ms=20_000)
    await store.heartbeat("boot-b", now_ms=0, alive_until_ms=20_000)
    await store.enqueue([outbox_item("a1", "ch-a"), outbox_item("a2", "ch-a")])
    await store.claim_due(now_ms=0, limit=1, lease_ms=LEASE_MS, owner="boot-a")
    for now in (0, 10_000, 19_999):
        await store.heartbeat("boot-b", now_ms=now, alive_until_ms=now + 20_000)
        assert await store.claim_due(now, 10, LEASE_MS, owner="boot-b") == []
    # boot-a keeps renewing: its lease holds until the lease itself runs out.
    await store.heartbeat("boot-a", now_ms=19_999, alive_until_ms=60_000)
    assert await store.claim_due(59_999, 10, LEASE_MS, owner="boot-b") == []
    assert not await store.release(["a1"], available_at_ms=0, owner="boot-b")
    leased = await store.outbox_item("a1")
    assert leased is not None
    assert (leased.status, leased.lease_owner) == ("in_flight", "boot-a")


async def test_after_a_crash_the_leases_are_claimable_once_the_owners_heartbeat_runs_out(
    store: Store,
) -> None:
    await store.heartbeat("boot-a", now_ms=0, alive_until_ms=20_000)
    await store.enqueue([outbox_item("a1", "ch-a"), outbox_item("a2", "ch-a")])
    await store.claim_due(now_ms=0, limit=10, lease_ms=LEASE_MS, owner="boot-a")
    # boot-a is killed: no release, no more heartbeats. Its leases run until 60 s.
    await store.heartbeat("boot-b", now_ms=19_999, alive_until_ms=39_999)
    assert await store.claim_due(19_999, 10, LEASE_MS, owner="boot-b") == []
    resumed = await store.claim_due(20_000, 10, LEASE_MS, owner="boot-b")
    assert [(i.key, i.lease_owner, i.last_error) for i in resumed] == [
        ("a1", "boot-b", LEASE_EXPIRED),  # it may have been posted: look before resending
        ("a2", "boot-b", LEASE_EXPIRED),
    ]
    await store.heartbeat("boot-b", now_ms=20_000, alive_until_ms=40_000)
    assert [o.owner for o in await store.lease_owners()] == ["boot-b"]  # boot-a forgotten


async def test_after_a_graceful_stop_every_pending_item_is_claimable_at_once(store: Store) -> None:
    await store.heartbeat("boot-a", now_ms=0, alive_until_ms=20_000)
    await store.enqueue([outbox_item(f"a{n}", "ch-a") for n in range(3)])
    await store.enqueue([outbox_item("b0", "ch-b")])
    await store.claim_due(now_ms=0, limit=10, lease_ms=LEASE_MS, owner="boot-a")
    assert await store.release(["a1", "a2"], available_at_ms=5, owner="boot-a") == 2
    assert await store.release_owner("boot-a", now_ms=5) == 2  # a0 and b0, cut short
    assert await store.lease_owners() == []
    await store.heartbeat("boot-b", now_ms=5, alive_until_ms=20_005)
    resumed = await store.claim_due(now_ms=5, limit=10, lease_ms=LEASE_MS, owner="boot-b")
    assert [(i.key, i.last_error) for i in resumed] == [
        ("a0", LEASE_EXPIRED),
        ("b0", LEASE_EXPIRED),
        ("a1", None),  # released before its send began: nothing to look up
        ("a2", None),
    ]
    assert await store.pending_count() == 4


async def test_a_new_boot_of_the_same_identity_takes_over_its_previous_boots_leases_at_once(
    store: Store,
) -> None:
    await store.heartbeat("boot-1", now_ms=0, alive_until_ms=20_000, identity="slot-0")
    await store.heartbeat("other", now_ms=0, alive_until_ms=20_000, identity="slot-1")
    await store.enqueue([outbox_item("a1", "ch-a"), outbox_item("o1", "ch-o")])
    await store.claim_due(0, 10, LEASE_MS, owner="boot-1", exclude={"ch-o"})
    await store.claim_due(0, 10, LEASE_MS, owner="other")
    # boot-1 was killed a moment ago; its heartbeat would still hold for 20 s.
    previous = await store.heartbeat("boot-2", now_ms=1, alive_until_ms=20_001, identity="slot-0")
    assert previous == ["boot-1"]
    resumed = await store.claim_due(1, 10, LEASE_MS, owner="boot-2")
    assert [(i.key, i.last_error) for i in resumed] == [("a1", LEASE_EXPIRED)]
    owners = await store.lease_owners()
    assert [(o.owner, o.identity) for o in owners] == [("other", "slot-1"), ("boot-2", "slot-0")]


async def test_a_heartbeat_renews_an_owner_and_keeps_its_identity_and_start(store: Store) -> None:
    assert await store.heartbeat("boot-1", now_ms=0, alive_until_ms=20, identity="slot-0") == []
    assert await store.heartbeat("boot-1", now_ms=10, alive_until_ms=30) == []
    (owner,) = await store.lease_owners()
    assert (owner.owner, owner.identity, owner.started_at_ms, owner.alive_until_ms) == (
        "boot-1",
        "slot-0",
        0,
        30,
    )


# -- tickets -------------------------------------------------------------------------------


async def test_opening_a_ticket_twice_keeps_the_first(store: Store) -> None:
    assert await store.open_ticket(ticket_row("T-1"))
    assert not await store.open_ticket(ticket_row("T-1").model_copy(update={"reason": "other"}))
    assert await store.ticket("T-1") == ticket_row("T-1")
    assert await store.ticket("T-unknown") is None


async def test_the_first_claimer_wins_and_the_second_learns_who_holds_the_ticket(
    store: Store,
) -> None:
    await store.open_ticket(ticket_row("T-1"))
    won = await store.claim_ticket("T-1", "U_ALICE", at_ms=10)
    lost = await store.claim_ticket("T-1", "U_BOB", at_ms=11)
    again = await store.claim_ticket("T-1", "U_ALICE", at_ms=12)
    assert (won.claimed, won.holder) == (True, "U_ALICE")
    assert (lost.claimed, lost.holder) == (False, "U_ALICE")
    assert (again.claimed, again.holder) == (True, "U_ALICE")
    ticket = await store.ticket("T-1")
    assert ticket is not None
    assert (ticket.status, ticket.claimed_by, ticket.updated_at_ms) == ("claimed", "U_ALICE", 10)
    unknown = await store.claim_ticket("T-unknown", "U_BOB", at_ms=13)
    assert (unknown.claimed, unknown.holder) == (False, None)


async def test_a_resolved_ticket_cannot_be_claimed_or_resolved_again(store: Store) -> None:
    await store.open_ticket(ticket_row("T-1"))
    await store.claim_ticket("T-1", "U_ALICE", at_ms=10)
    assert await store.resolve_ticket("T-1", "U_ALICE", at_ms=20)
    assert not await store.resolve_ticket("T-1", "U_BOB", at_ms=21)
    late = await store.claim_ticket("T-1", "U_BOB", at_ms=22)
    assert (late.claimed, late.holder) == (False, "U_ALICE")
    ticket = await store.ticket("T-1")
    assert ticket is not None
    assert (ticket.status, ticket.resolved_by, ticket.updated_at_ms) == ("resolved", "U_ALICE", 20)
    assert not await store.resolve_ticket("T-unknown", "U_BOB", at_ms=23)


async def test_open_tickets_lists_the_unresolved_oldest_first(store: Store) -> None:
    for key, opened_at in (("T-late", 30), ("T-early", 10), ("T-done", 5), ("T-mid", 20)):
        await store.open_ticket(ticket_row(key, opened_at))
    await store.claim_ticket("T-mid", "U_ALICE", at_ms=40)
    await store.resolve_ticket("T-done", "U_ALICE", at_ms=41)
    assert [t.key for t in await store.open_tickets()] == ["T-early", "T-mid", "T-late"]


# -- policies and lifecycle ----------------------------------------------------------------


async def test_a_policy_is_stored_once_by_version(store: Store, default_policy: Policy) -> None:
    text = default_policy.canonical_json()
    await store.put_policy(default_policy.version, text)
    await store.put_policy(default_policy.version, text)
    assert await store.get_policy(default_policy.version) == text
    assert await store.get_policy("0" * 64) is None
    with pytest.raises(ValueError, match=default_policy.version):
        await store.put_policy(default_policy.version, text + " ")
    assert await store.get_policy(default_policy.version) == text


async def test_a_closed_store_refuses_reads_and_writes(store: Store) -> None:
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        await store.version("conv-1")
    with pytest.raises(StorageError, match="closed"):
        await store.enqueue([outbox_item("a")])


async def test_an_item_reclaimed_after_its_lease_expired_is_marked_uncertain(store: Store) -> None:
    from storage.ports import LEASE_EXPIRED

    item = OutboxItem(
        key="k1", conversation_id="c", channel="ch", payload={}, created_at_ms=0, available_at_ms=0
    )
    await store.enqueue([item])
    (first,) = await store.claim_due(now_ms=10, limit=5, lease_ms=100)
    assert first.last_error is None
    (again,) = await store.claim_due(now_ms=200, limit=5, lease_ms=100)
    assert again.last_error == LEASE_EXPIRED
    stored = await store.outbox_item("k1")
    assert stored is not None
    assert stored.last_error == LEASE_EXPIRED


async def test_releasing_a_leased_item_counts_no_attempt_and_keeps_the_channel_order(
    store: Store,
) -> None:
    items = [
        OutboxItem(
            key=f"k{i}",
            conversation_id="c",
            channel="ch",
            payload={},
            created_at_ms=i,
            available_at_ms=0,
        )
        for i in range(3)
    ]
    await store.enqueue(items)
    claimed = await store.claim_due(now_ms=10, limit=5, lease_ms=1000)
    assert [i.key for i in claimed] == ["k0", "k1", "k2"]
    await store.fail("k0", next_attempt_ms=500, error="retry: 503")
    assert await store.release(["k1", "k2", "unknown"], available_at_ms=20) == 2
    assert (
        await store.claim_due(now_ms=30, limit=5, lease_ms=1000) == []
    )  # k0 not due: nothing overtakes it
    again = await store.claim_due(now_ms=600, limit=5, lease_ms=1000)
    assert [(i.key, i.attempts) for i in again] == [("k0", 1), ("k1", 0), ("k2", 0)]


async def test_an_inbound_is_found_by_its_delivery_id(store: Store, default_policy: Policy) -> None:
    commit = await decide_commit(store, default_policy, lead("c-lookup", "d-lookup"), NOW)
    await store.commit(commit)
    found = await store.inbound(commit.delivery_id)
    assert found is not None
    assert found.conversation_id == "c-lookup"
    assert await store.inbound("no-such-delivery") is None


# -- adapter state ---------------------------------------------------------------------

REFERENCE = {
    "conversation": {"id": "19:abc@thread.tacv2", "tenantId": "t-1"},
    "serviceUrl": "https://smba.example/emea/",
    "bot": {"id": "28:bot", "name": "Salesbot"},
    "activityIds": ["1700000000000", "1700000000001"],
    "reach": 3,
    "pinned": False,
    "note": None,
    "greeting": "Grüße, Łódź ✓",
}


async def test_adapter_state_that_was_put_is_got_back_equal(store: Store) -> None:
    await store.put_state("teams:ref:conv-1", REFERENCE, at_ms=NOW)
    assert await store.get_state("teams:ref:conv-1") == REFERENCE


async def test_put_if_absent_keeps_the_first_value_and_returns_what_is_stored(
    store: Store,
) -> None:
    first = await store.put_state_if_absent("salesbot:secret", {"v": "a"}, at_ms=NOW)
    second = await store.put_state_if_absent("salesbot:secret", {"v": "b"}, at_ms=NOW + 1)
    assert first == second == {"v": "a"}
    assert await store.get_state("salesbot:secret") == {"v": "a"}


async def test_put_if_absent_refuses_what_is_not_json_and_writes_nothing(store: Store) -> None:
    with pytest.raises(ValueError, match="not JSON"):
        await store.put_state_if_absent("k", {"v": {1, 2}}, at_ms=NOW)
    assert await store.get_state("k") is None


async def test_putting_adapter_state_again_replaces_the_value(store: Store) -> None:
    await store.put_state("teams:card:T-1", {"activity_id": "a-1", "extra": [1]}, at_ms=NOW)
    await store.put_state("teams:card:T-1", {"activity_id": "a-2"}, at_ms=NOW + 1)
    assert await store.get_state("teams:card:T-1") == {"activity_id": "a-2"}


async def test_an_unknown_adapter_state_key_gives_none(store: Store) -> None:
    await store.put_state("teams:ref:conv-1", REFERENCE, at_ms=NOW)
    assert await store.get_state("teams:ref:conv-2") is None


async def test_changing_adapter_state_after_put_or_get_changes_nothing_stored(
    store: Store,
) -> None:
    value: dict[str, Any] = {"conversation": {"id": "c-1"}, "ids": ["a"]}
    await store.put_state("k", value, at_ms=NOW)
    value["conversation"]["id"] = "changed by the caller"
    got = await store.get_state("k")
    assert got is not None
    got["ids"].append("b")
    got["new"] = True
    assert await store.get_state("k") == {"conversation": {"id": "c-1"}, "ids": ["a"]}
    assert await store.get_state("k") is not await store.get_state("k")


@pytest.mark.parametrize(
    "value",
    [{"ids": {"a", "b"}}, {"when": object()}, {"score": float("nan")}, {"text": "\ud800"}],
    ids=["a set", "an object", "nan", "a lone surrogate"],
)
async def test_adapter_state_that_is_not_json_is_refused_and_nothing_is_written(
    store: Store, value: dict[str, object]
) -> None:
    await store.put_state("kept", {"v": 1}, at_ms=NOW)
    with pytest.raises(ValueError, match="not JSON"):
        await store.put_state("new", value, at_ms=NOW)
    with pytest.raises(ValueError, match="not JSON"):
        await store.put_state("kept", value, at_ms=NOW + 1)
    assert await store.get_state("new") is None
    assert await store.get_state("kept") == {"v": 1}


async def test_adapter_state_up_to_the_limits_is_kept_and_beyond_them_refused(
    store: Store,
) -> None:
    from storage.ports import STATE_KEY_MAX_CHARS, STATE_VALUE_MAX_BYTES

    longest_key = "k" * STATE_KEY_MAX_CHARS
    largest = {"v": "x" * (STATE_VALUE_MAX_BYTES - len('{"v":""}'))}
    await store.put_state(longest_key, largest, at_ms=NOW)
    assert await store.get_state(longest_key) == largest

    too_large = {"v": largest["v"] + "x"}
    with pytest.raises(ValueError, match=f"limit is {STATE_VALUE_MAX_BYTES} bytes"):
        await store.put_state(longest_key, too_large, at_ms=NOW + 1)
    assert await store.get_state(longest_key) == largest
    # Counted in UTF-8 bytes, not characters: "é" is two.
    with pytest.raises(ValueError, match="limit"):
        await store.put_state("wide", {"v": "é" * (STATE_VALUE_MAX_BYTES // 2)}, at_ms=NOW)
    assert await store.get_state("wide") is None

    too_long_key = "k" * (STATE_KEY_MAX_CHARS + 1)
    with pytest.raises(ValueError, match=f"1 to {STATE_KEY_MAX_CHARS} characters"):
        await store.put_state(too_long_key, {"v": 1}, at_ms=NOW)
    with pytest.raises(ValueError, match="characters"):
        await store.put_state("", {"v": 1}, at_ms=NOW)
    with pytest.raises(ValueError, match="characters"):
        await store.get_state(too_long_key)


async def test_deleting_adapter_state_says_whether_there_was_something_to_delete(
    store: Store,
) -> None:
    await store.put_state("teams:invoke:i-1", {"status": 200}, at_ms=NOW)
    await store.put_state("teams:invoke:i-2", {"status": 200}, at_ms=NOW)
    assert await store.delete_state("teams:invoke:i-1") is True
    assert await store.delete_state("teams:invoke:i-1") is False
    assert await store.get_state("teams:invoke:i-1") is None
    assert await store.get_state("teams:invoke:i-2") == {"status": 200}
    assert await store.delete_state("never-stored") is False


async def test_a_closed_store_refuses_adapter_state(store: Store) -> None:
    await store.put_state("k", {"v": 1}, at_ms=NOW)
    await store.close()
    with pytest.raises(StorageError, match="closed"):
        await store.put_state("k", {"v": 2}, at_ms=NOW)
    with pytest.raises(StorageError, match="closed"):
        await store.get_state("k")
    with pytest.raises(StorageError, match="closed"):
        await store.delete_state("k")
