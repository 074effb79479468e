"""The SLA ladder on the real runtime (issue 14 item 3): the sweeper delivers `TimerElapsed`
from the injected clock to the conversations the due-timer schedule names, the business
hours are worked out here (`bot.business_hours`, the pinned `tzdata`) and recorded on the
timer, and a replay of the store reproduces every step without a zone database."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock

import pytest

from bot import business_hours
from bot.business_hours import hours_fact, zone, zone_problems
from bot.runtime import INBOUND, Runtime
from domain.business_hours import BusinessHours
from domain.events import EventEnvelope
from domain.inbound import Actor, MessagePosted, TimerElapsed
from domain.policy import Policy
from domain.replay import RecordedInbound, replay_conversation
from storage.memory import MemoryStore
from tests.bot.test_runtime import POLICY, Clock, EverythingToOneChannel, message

MINUTE = 60_000
PARIS = BusinessHours(time_zone="Europe/Paris", open="09:00", close="18:00")


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).astimezone(UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("now", "open_now", "next_open"),
    [
        # Inside: a Wednesday at 10:30 in Paris (summer time, UTC+2).
        ("2026-06-17T10:30:00+02:00", True, "2026-06-17T10:30:00+02:00"),
        # Before opening the same day; at closing time (closed: `close` is exclusive).
        ("2026-06-17T08:59:00+02:00", False, "2026-06-17T09:00:00+02:00"),
        ("2026-06-17T18:00:00+02:00", False, "2026-06-18T09:00:00+02:00"),
        # Across midnight: 23:30 on Thursday opens Friday; 00:30 UTC is already Friday there.
        ("2026-06-18T23:30:00+02:00", False, "2026-06-19T09:00:00+02:00"),
        ("2026-06-18T22:30:00+00:00", False, "2026-06-19T09:00:00+02:00"),
        # The weekend: Friday evening, Saturday and Sunday all open on Monday.
        ("2026-06-19T19:00:00+02:00", False, "2026-06-22T09:00:00+02:00"),
        ("2026-06-20T12:00:00+02:00", False, "2026-06-22T09:00:00+02:00"),
        ("2026-06-21T23:59:00+02:00", False, "2026-06-22T09:00:00+02:00"),
        # Across a change of clocks: Saturday before summer time opens Monday at 09:00 CEST.
        ("2026-03-28T12:00:00+01:00", False, "2026-03-30T09:00:00+02:00"),
    ],
)
def test_the_business_hours_fact_inside_outside_across_midnight_and_the_weekend(
    now: str, open_now: bool, next_open: str
) -> None:
    fact = hours_fact(PARIS, ms(now))
    assert (fact.open_now, fact.next_open_ms) == (open_now, ms(next_open))


def test_an_unknown_time_zone_is_a_check_violation_and_zones_come_from_the_pinned_package(
    default_policy: Policy,
) -> None:
    assert zone_problems(default_policy) == ()
    assert default_policy.handoff is not None
    bad = default_policy.handoff.model_copy(
        update={"business_hours": PARIS.model_copy(update={"time_zone": "Mars/Olympus"})}
    )
    (line,) = zone_problems(default_policy.model_copy(update={"handoff": bad}))
    assert "'Mars/Olympus' is not an IANA time zone" in line
    for name in ("../etc/passwd", "", "Europe//Paris"):
        with pytest.raises(business_hours.UnknownZoneError):
            zone(name)
    assert zone("America/New_York").key == "America/New_York"


async def waiting_conversation(runtime: Runtime, conversation: str = "c1") -> None:
    await runtime.handle(message("Hi, we are evaluating CRMs", f"{conversation}-1", conversation))
    await runtime.handle(
        message("Can I talk to a person please?", f"{conversation}-2", conversation)
    )


async def test_the_sweeper_repings_and_escalates_and_a_replay_of_the_store_agrees() -> None:
    store, clock = MemoryStore(), Clock()
    clock.ms = ms("2026-06-20T11:00:00+02:00")  # a Saturday: outside business hours
    runtime = Runtime(store, POLICY, EverythingToOneChannel(), clock=clock)
    await runtime.start()
    await waiting_conversation(runtime)
    assert await runtime.sweep_idle() == 0
    clock.ms += 16 * MINUTE
    assert await runtime.sweep_idle() == 1
    clock.ms += 45 * MINUTE
    assert await runtime.sweep_idle() == 1
    assert await runtime.sweep_idle() == 0
    types = [env.event.type for env in await store.load("c1")]
    assert types.count("ticket_repinged") == 1
    assert types.count("ticket_escalated") == 1
    sent = [
        item
        for item in await store.claim_due(10**15, 100, 1000)
        if item.channel in ("test:conversation", "test:escalation")
    ]
    texts = [item.payload["reply"]["text"] for item in sent]
    assert any("business hours: Monday to Friday, 09:00–18:00 (Europe/Paris)" in t for t in texts)
    assert any(item.payload["reply"].get("mention") == "on_call" for item in sent)

    stored = await store.inbounds("c1")
    timers = [INBOUND.validate_python(s.inbound) for s in stored]
    facts = [t.hours for t in timers if isinstance(t, TimerElapsed)]
    assert facts
    assert all(f is not None and not f.open_now for f in facts)
    assert facts[0] is not None
    assert facts[0].next_open_ms == ms("2026-06-22T09:00:00+02:00")
    recorded = [
        RecordedInbound(
            inbound=INBOUND.validate_python(s.inbound),
            received_at_ms=s.received_at_ms,
            policy_version=s.policy_version,
        )
        for s in stored
    ]
    with mock.patch.object(business_hours, "zone", side_effect=AssertionError("no zone lookup")):
        replayed = replay_conversation("c1", recorded, await store.load("c1"), lambda _v: POLICY)
    assert replayed.differences == ()


async def test_a_sweep_loads_only_the_conversations_that_are_due() -> None:
    store, clock = MemoryStore(), Clock()
    runtime = Runtime(store, POLICY, EverythingToOneChannel(), clock=clock)
    await runtime.start()
    await waiting_conversation(runtime, "waiting")
    for n in range(5):
        await runtime.handle(message("Hello there", f"quiet-{n}", f"quiet-{n}"))
    assert await runtime.sweep_idle() == 0  # the first sweep looks at all and schedules each
    loaded: list[str] = []
    load = store.load

    async def counted(conversation_id: str) -> list[EventEnvelope]:
        loaded.append(conversation_id)
        return await load(conversation_id)

    for conversation_id in await store.conversation_ids():
        runtime.state_cache.drop(conversation_id)
    with mock.patch.object(store, "load", counted):
        assert await runtime.sweep_idle() == 0
        assert loaded == []  # nothing due: nothing loaded
        clock.ms += 16 * MINUTE
        assert await runtime.sweep_idle() == 1
    assert loaded == ["waiting"]


async def test_a_claimed_ticket_is_never_swept_and_a_policy_without_the_ladder_has_no_timer() -> (
    None
):
    assert POLICY.handoff is not None
    off = POLICY.model_copy(
        update={
            "handoff": POLICY.handoff.model_copy(
                update={"unclaimed_reping_ms": None, "unclaimed_escalate_ms": None}
            )
        }
    )
    for policy, claim in ((POLICY, True), (off, False)):
        store, clock = MemoryStore(), Clock()
        runtime = Runtime(store, policy, EverythingToOneChannel(), clock=clock)
        await runtime.start()
        await waiting_conversation(runtime)
        if claim:
            rep = Actor(id="R", name="Rae", role="rep")
            await runtime.handle(
                MessagePosted(delivery_id="r1", conversation_id="c1", actor=rep, text="Rae here")
            )
        assert await runtime.sweep_idle() == 0
        assert await store.due_timers(10**15, 10) == []  # nothing will ever be due
        clock.ms += 30 * 24 * 60 * MINUTE
        assert await runtime.sweep_idle() == 0
        types = [env.event.type for env in await store.load("c1")]
        assert "ticket_repinged" not in types
        assert "ticket_escalated" not in types
