"""Three, then two, real `salesbot serve` processes on one PostgreSQL (issue 17, item 4),
behind a round-robin proxy on loopback (`tests.support.replicas`), posting to one fake
Slack Web API: the same event to two replicas at once; kill -9 of one of the three under
load; then, on the two survivors, a handoff and an approval whose steps each land on the
other replica. The tests share the replicas and run in this order.

What is asserted is what Slack and the team would see (each reply posted once, the cards
updated) and what the store holds (each delivery once, every reply sent). Waits poll for a
condition with a generous limit (a safety net on a loaded machine, never a fixed sleep).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from tests.e2e.harness import eventually
from tests.fakes.slack_api import FakeSlackApi
from tests.storage.conftest import fresh_database, postgres_cluster  # noqa: F401
from tests.support.postgres import Cluster
from tests.support.replicas import (
    BOSS,
    BOT,
    HANDOFF,
    REP,
    TEAM,
    Fleet,
    bot_messages,
    click,
    posted_keys,
    prospect_message,
    slack_form,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

WAIT_S = 45.0
LEASE_MS = 3_000
"""SALESBOT_OUTBOX_LEASE_MS: a dead replica's replies are taken over within 3 s of its
last heartbeat instead of 20 (the crash test)."""


@dataclass
class Served:
    fleet: Fleet
    api: FakeSlackApi
    dsn: str


async def waiting(check: Callable[[], bool], what: str) -> None:
    await eventually(check, what, limit_s=WAIT_S)


async def rows(dsn: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def all_sent(dsn: str) -> bool:
    """Every outbox item sent and every deferred answer enqueued."""
    (row,) = await rows(
        dsn,
        "SELECT (SELECT COUNT(*) FROM outbox WHERE status != 'sent') "
        "+ (SELECT COUNT(*) FROM pending_answers)",
    )
    return int(row[0]) == 0


async def until_all_sent(dsn: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not await all_sent(dsn):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the outbox was not drained")
        await asyncio.sleep(0.05)


def texts(messages: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(m.get("blocks", [])) + m.get("text", "") for m in messages)


def running(served: Served) -> set[str]:
    """The replicas still serving: the two survivors after the crash test, all three when a
    round trip runs without it (a test selected alone, or by `-k`)."""
    return {r.name for r in served.fleet.replicas if r.process.returncode is None}


def with_action(api: FakeSlackApi, channel: str, action: str) -> list[dict[str, Any]]:
    return [m for m in bot_messages(api, channel) if f'"{action}"' in json.dumps(m["blocks"])]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def three(
    postgres_cluster: Cluster,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Served]:
    """Three replicas started at once on an empty schema (they race to create it and the
    shared action secret), shared by the tests below in their order, on channels of their
    own: the crash test kills one, and the round trips run on the two survivors."""
    logs = tmp_path_factory.mktemp("three")
    async with (
        fresh_database(postgres_cluster) as dsn,
        FakeSlackApi(token="xoxb-test", team_id=TEAM, bot_user_id=BOT) as api,
        Fleet.start(3, dsn, api, logs, {"SALESBOT_OUTBOX_LEASE_MS": str(LEASE_MS)}) as fleet,
    ):
        api.add_user(REP, name="rae")
        api.add_user(BOSS, name="morgan")
        yield Served(fleet=fleet, api=api, dsn=dsn)
        for replica in fleet.replicas:
            assert replica.tracebacks() == "", replica.name


async def test_each_event_delivered_to_two_replicas_at_once_is_stored_once_and_answered_once(
    three: Served,
) -> None:
    fleet, api = three.fleet, three.api
    channels = [f"C0REDELIVER{n}" for n in range(9)]
    events = [
        prospect_message(api, channel, f"U0PAT{n}", "Hi, we are evaluating CRMs for our team")
        for n, channel in enumerate(channels)
    ]
    first, second, third = fleet.replicas
    pairs = [(first, second), (second, third), (third, first)]
    statuses = await asyncio.gather(
        *(
            fleet.post(event, to=replica)
            for n, event in enumerate(events)
            for replica in pairs[n % 3]
        )
    )
    assert statuses == [200] * 18  # both replicas acknowledge: one stored it, one found it
    # Slack's retries of each, through the proxy, are acknowledged and change nothing.
    assert await asyncio.gather(*(fleet.post(e, retry=1) for e in events)) == [200] * 9

    await waiting(lambda: all(bot_messages(api, c) for c in channels), "a reply in each channel")
    await until_all_sent(three.dsn)
    assert [len(bot_messages(api, c)) for c in channels] == [1] * 9
    keys = posted_keys(api, channels)
    assert len(keys) == len(set(keys)) == 9
    stored = await rows(
        three.dsn,
        "SELECT delivery_id, COUNT(*) FROM inbounds WHERE delivery_id = ANY($1::text[]) "
        "GROUP BY delivery_id",
        [e.delivery_id for e in events],
    )
    assert sorted((d, c) for d, c in stored) == sorted((e.delivery_id, 1) for e in events)


async def test_kill_9_of_one_replica_under_load_loses_nothing_and_sends_nothing_twice(
    three: Served,
) -> None:
    """Slack is slow to answer (every post is stored at once but answered only later), so
    each replica holds the replies it is sending; one of the three is killed while it holds
    some. Its posts reached Slack but were never marked sent: a survivor, once the dead
    one's lease has run out, finds them in Slack's history instead of posting them again.
    The two survivors serve the tests after this one."""
    fleet, api, dsn = three.fleet, three.api, three.dsn
    prospects = 16
    follow_ups = ("We have a $5000 budget", "I am the CTO, next month works")
    victim, *survivors = fleet.replicas
    channels = [f"C0CRASH{n}" for n in range(prospects)]
    acked: list[str] = []
    unacked: list[str] = []
    slack_answers = api.hang_next("chat.postMessage", times=1_000)

    async def prospect(n: int) -> None:
        """One prospect's thread, message after message, each delivered as Slack does
        (retried until acknowledged, at most 3 times)."""
        opening = prospect_message(api, channels[n], f"U0P{n}", "Hi, we are evaluating CRMs")
        thread = opening.delivery_id.rsplit(":", 1)[-1] if opening.delivery_id else None
        for request in (
            opening,
            *(prospect_message(api, channels[n], f"U0P{n}", t, thread=thread) for t in follow_ups),
        ):
            assert request.delivery_id is not None
            (acked if await fleet.deliver(request) else unacked).append(request.delivery_id)

    load = asyncio.gather(*(prospect(n) for n in range(prospects)))
    owner_pattern = f"%:{victim.pid}:%"
    watcher = await asyncpg.connect(dsn)
    try:
        # What the victim holds, with its heartbeat's promise, read in one statement.
        holding = (
            "SELECT o.key, w.alive_until_ms FROM outbox AS o JOIN outbox_owners AS w "
            "ON w.owner = o.lease_owner WHERE o.status = 'in_flight' AND w.owner LIKE $1"
        )
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while not await watcher.fetch(holding, owner_pattern):
            assert asyncio.get_running_loop().time() < deadline, "the victim held no lease"
            await asyncio.sleep(0.01)
        # Frozen first, so what it holds and how long its heartbeat promised are read as
        # they are at its death (a stopped process neither settles nor renews).
        victim.freeze()
        snapshot = await watcher.fetch(holding, owner_pattern)
        await victim.kill()
    finally:
        await watcher.close()
    held = {key for key, _alive in snapshot}
    alive_until = max((alive for _key, alive in snapshot), default=0)
    assert held, "killed while holding no lease"
    slack_answers.set()  # Slack answers again, at once

    await load
    await until_all_sent(dsn)

    # Every acknowledged delivery is stored exactly once (and, with Slack's retries, every
    # message was acknowledged in the end, by a survivor if not by the victim).
    assert unacked == []
    stored = await rows(
        dsn,
        "SELECT delivery_id, COUNT(*) FROM inbounds WHERE delivery_id = ANY($1::text[]) "
        "GROUP BY delivery_id",
        acked,
    )
    assert sorted((d, c) for d, c in stored) == sorted((d, 1) for d in acked)
    # Every reply was posted exactly once, the victim's included.
    outbox = await rows(
        dsn,
        "SELECT key, sent_at_ms FROM outbox WHERE conversation_id LIKE $1",
        f"slack:{TEAM}:C0CRASH%",
    )
    ours = {key for key, _sent in outbox}
    keys = [key for key in posted_keys(api, [*channels, HANDOFF]) if key in ours]
    assert len(keys) == len(set(keys))
    assert set(keys) == ours
    # A survivor took the victim's items over, and only once its lease had run out.
    taken_over = {key: sent for key, sent in outbox if key in held}
    assert taken_over.keys() == held
    assert min(taken_over.values()) >= alive_until
    # The dead one's registration goes at a survivor's next heartbeat after its lease (the
    # take-over above may come first: claiming and heartbeats are separate ticks).
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while await rows(dsn, "SELECT 1 FROM outbox_owners WHERE owner LIKE $1", owner_pattern):
        assert asyncio.get_running_loop().time() < deadline, "the dead owner was never cleared"
        await asyncio.sleep(0.05)
    for survivor in survivors:
        assert survivor.process.returncode is None, survivor.name


async def test_after_the_crash_a_handoff_is_opened_claimed_and_closed_across_the_survivors(
    three: Served,
) -> None:
    fleet, api = three.fleet, three.api
    channel = "C0HANDOFFTRIP"
    start = len(fleet.proxy.served)
    question = "Can we cancel the contract and get a refund?"
    assert await fleet.deliver(prospect_message(api, channel, "U0PATH", question)) == 1

    def ticket() -> list[dict[str, Any]]:
        return [m for m in bot_messages(api, HANDOFF) if "refund" in texts([m])]

    await waiting(lambda: len(ticket()) == 1, "the ticket card in the handoff channel")
    assert await fleet.deliver(click(ticket()[0], "claim_ticket", REP, channel=HANDOFF)) == 1
    await waiting(lambda: "Claimed by" in texts(ticket()), "the claimed ticket")
    assert await fleet.deliver(click(ticket()[0], "resolve_ticket", REP, channel=HANDOFF)) == 1
    await waiting(lambda: "how did it end?" in texts(ticket()), "the outcome picker")
    picker = ticket()[0]
    closed = next(
        element["value"]
        for block in picker["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["text"]["text"] == "Closed"
    )
    assert (
        await fleet.deliver(click(picker, "resolve_ticket", REP, channel=HANDOFF, value=closed))
        == 1
    )
    await waiting(lambda: "Closed by" in texts(ticket()), "the closed ticket")
    await until_all_sent(three.dsn)

    steps = fleet.proxy.served[start:]
    assert set(steps) == running(three), steps  # every survivor took part
    assert all(a != b for a, b in itertools.pairwise(steps)), steps
    assert len(ticket()) == 1  # one card, updated in place: never a second ticket
    assert len(bot_messages(api, channel)) == 1  # the prospect heard one holding reply


async def test_after_the_crash_a_discount_is_requested_and_approved_across_the_survivors(
    three: Served,
) -> None:
    fleet, api = three.fleet, three.api
    channel = "C0APPROVALTRIP"
    start = len(fleet.proxy.served)
    command = slack_form(
        {
            "command": "/quote",
            "text": "10 pro 20%",
            "team_id": TEAM,
            "channel_id": channel,
            "user_id": REP,
            "user_name": "rae",
            "trigger_id": "trig-approval-trip",
            "response_url": "https://hooks.slack.com/commands/x",
        }
    )
    assert await fleet.deliver(command) == 1
    await waiting(
        lambda: any(e.get("blocks") for e in api.ephemerals(channel)), "the rep's private card"
    )
    card = next(e for e in api.ephemerals(channel) if e.get("blocks"))
    assert await fleet.deliver(click(card, "request_approval", REP, channel=channel)) == 1

    def approval() -> list[dict[str, Any]]:
        return [m for m in with_action(api, HANDOFF, "approve_quote") if "20" in texts([m])]

    await waiting(lambda: len(approval()) == 1, "the approval card")
    assert await fleet.deliver(click(approval()[0], "approve_quote", BOSS, channel=HANDOFF)) == 1
    version_two = re.compile(r"Quote Q-[0-9a-f]{10} v2")
    await waiting(
        lambda: version_two.search(texts(bot_messages(api, channel))) is not None,
        "the approved quote v2 in the channel",
    )
    await until_all_sent(three.dsn)
    steps = fleet.proxy.served[start:]
    assert set(steps) == running(three), steps
    assert len(version_two.findall(texts(bot_messages(api, channel)))) == 1
    assert "rep cap" not in texts(bot_messages(api, channel))
