"""The state cache is bounded by size (issue 11): `SALESBOT_STATE_CACHE_MB` of serialised
state, least recently used evicted first. Its cheap estimate of a state's size agrees with
the exact serialisation, and a conversation decides the same however small the cache."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from adapters.ports import Route
from bot.policy_loader import load_policy
from bot.runtime import Runtime
from bot.server import build_app
from bot.service import Service, build_service
from bot.settings import Settings
from bot.state_cache import MIB, REMEASURE_EVERY, StateCache, exact_size
from domain.cards import Reply
from domain.decide import new_conversation
from domain.events import Event
from domain.inbound import Actor, Inbound, MessagePosted
from domain.policy import Policy
from domain.state import ConversationState
from storage.memory import MemoryStore

POLICY: Policy = load_policy("default")
PROSPECT = Actor(id="P", name="Pat", role="prospect")
TEXTS = [
    "Hi, we are evaluating CRMs",
    "Budget is €5000 — the CTO signs, next month 🚀",
    'She said "call me" \\ tomorrow',
    "数据 " * 200,
    "x" * 5_000,
]


class OneChannel:
    def route(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        return [Route(channel="test:one")]


def state_with(conversation_id: str, texts: Sequence[str]) -> ConversationState:
    state = new_conversation(conversation_id, POLICY)
    return state.model_copy(
        update={
            "prospect_texts": tuple(texts),
            "transcript": tuple(("prospect", text) for text in texts[-50:]),
        }
    )


def escapes(texts: Sequence[str]) -> int:
    """Characters JSON writes as two (a quote, a backslash), which the estimate counts once."""
    return sum(text.count('"') + text.count("\\") for text in texts)


def test_the_estimate_follows_the_exact_serialised_size() -> None:
    for count in (0, 1, 2, len(TEXTS)):
        texts = TEXTS[:count]
        state = state_with("c1", texts)
        cache = StateCache()
        cache.put(state)
        exact = exact_size(state)
        # Over by at most two list-closing commas; under by the escapes, in both tuples.
        assert exact - 2 * escapes(texts) <= cache.nbytes <= exact + 2


def test_a_growing_conversation_is_measured_incrementally_and_stays_exact() -> None:
    cache = StateCache()
    texts: list[str] = []
    state = state_with("c1", texts)
    for n in range(300):
        texts.append(f"message {n}: " + TEXTS[n % len(TEXTS)])
        # As decide does: a new tuple that shares the earlier strings.
        state = state.model_copy(
            update={
                "prospect_texts": (*state.prospect_texts, texts[-1]),
                "transcript": (*state.transcript, ("prospect", texts[-1]))[-50:],
            }
        )
        cache.put(state)
    fresh = StateCache()
    fresh.put(state)
    assert cache.nbytes == fresh.nbytes
    exact = exact_size(state)
    assert exact - 2 * escapes(texts) <= cache.nbytes <= exact + 2


def test_the_part_without_texts_is_measured_again_every_few_versions() -> None:
    cache = StateCache()
    state = state_with("c1", TEXTS[:2]).model_copy(update={"version": 3})
    cache.put(state)
    measured = cache.nbytes
    # The part without texts grows (a long owner name) while the version stays close: the
    # estimate keeps its last measurement of that part until REMEASURE_EVERY versions on.
    grown = state.model_copy(update={"owner_name": "n" * 4_000, "version": 3 + REMEASURE_EVERY - 1})
    cache.put(grown)
    assert cache.nbytes == measured
    later = grown.model_copy(update={"version": 3 + REMEASURE_EVERY})
    cache.put(later)
    exact = exact_size(later)
    assert exact - 2 * escapes(TEXTS[:2]) <= cache.nbytes <= exact + 2
    assert cache.nbytes > measured + 3_900
    # A state that went back (a re-fold after a failed commit) is measured at once.
    back = state.model_copy(update={"version": 2})
    cache.put(back)
    assert cache.nbytes == measured


def test_the_cache_holds_no_more_than_its_bytes_and_evicts_the_least_recently_used() -> None:
    one = StateCache()
    one.put(state_with("probe", ["y" * 10_000]))
    size = one.nbytes
    cache = StateCache(max_bytes=3 * size + size // 2)
    for name in ("a", "b", "c"):
        cache.put(state_with(name, ["y" * 10_000]))
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put(state_with("d", ["y" * 10_000]))
    assert cache.nbytes <= 3 * size + size // 2
    assert len(cache) == 3
    assert cache.get("b") is None  # the least recently used went first
    assert all(cache.get(name) is not None for name in ("a", "c", "d"))


def test_a_state_larger_than_the_whole_cache_is_not_kept() -> None:
    cache = StateCache(max_bytes=MIB)
    cache.put(state_with("small", ["hello"]))
    cache.put(state_with("huge", ["z" * (2 * MIB)]))
    assert cache.get("huge") is None
    assert cache.get("small") is not None
    # A conversation that outgrows the cache leaves it, and its old size with it.
    cache.put(state_with("small", ["z" * (2 * MIB)]))
    assert (len(cache), cache.nbytes) == (0, 0)


def test_the_count_still_bounds_many_small_states() -> None:
    cache = StateCache(max_entries=10)
    for n in range(25):
        cache.put(state_with(f"c{n}", ["hi"]))
    assert len(cache) == 10
    assert cache.get("c24") is not None
    assert cache.get("c0") is None


async def _conversation(cache_bytes: int) -> tuple[list[Event], int]:
    store = MemoryStore()
    ticks = itertools.count()
    runtime = Runtime(
        store,
        POLICY,
        OneChannel(),
        clock=lambda: 1_790_000_000_000 + 1000 * next(ticks),
        cache_bytes=cache_bytes,
    )
    await runtime.start()
    lines = ["Hi there", "We have a $5000 budget", "I am the CTO", "x" * 30_000, "next month"]
    for n, text in enumerate(lines * 4):
        for conversation in ("c1", "c2"):
            await runtime.handle(
                MessagePosted(
                    delivery_id=f"{conversation}-{n}",
                    conversation_id=conversation,
                    actor=PROSPECT,
                    text=text,
                )
            )
    events = [e.event for c in ("c1", "c2") for e in await store.load(c)]
    return events, runtime.state_cache.nbytes


async def test_a_small_cache_changes_nothing_but_memory() -> None:
    generous, _ = await _conversation(cache_bytes=256 * MIB)
    small, held = await _conversation(cache_bytes=200_000)
    nothing, _ = await _conversation(cache_bytes=0)
    assert small == generous == nothing  # the store is the truth; the cache only saves folds
    assert held <= 200_000


async def _metrics(service: Service) -> dict[str, float]:
    """The service's `/metrics` samples by name."""
    async with TestClient(TestServer(build_app(service), host="127.0.0.1")) as client:
        text = await (await client.get("/metrics")).text()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_the_configured_megabytes_bound_the_cache_and_metrics_show_it() -> None:
    settings = Settings(salesbot_state_cache_mb=1)
    store = MemoryStore()
    service = build_service(settings, POLICY, store, clock=lambda: 1_790_000_000_000)
    await service.runtime.start()
    for n in range(40):  # ~40 × 30 KB of prospect text in one conversation: over 1 MiB
        await service.handle(
            MessagePosted(
                delivery_id=f"d{n}", conversation_id="long", actor=PROSPECT, text="w" * 30_000
            )
        )
        await service.handle(
            MessagePosted(delivery_id=f"s{n}", conversation_id="short", actor=PROSPECT, text="hi")
        )
    cache = service.runtime.state_cache
    assert 0 < cache.nbytes <= MIB
    assert len(cache) == 1  # the long one outgrew the cache; the short one stays
    samples = await _metrics(service)
    assert samples["salesbot_state_cache_entries"] == 1
    assert samples["salesbot_state_cache_bytes"] == cache.nbytes


async def test_the_dedupe_view_is_bounded_still_refuses_what_it_forgot_and_metrics_count_it() -> (
    None
):
    store = MemoryStore()
    runtime = Runtime(
        store, POLICY, OneChannel(), clock=lambda: 1_790_000_000_000, recent_capacity=3
    )
    await runtime.start()
    for n in range(5):
        message = MessagePosted(delivery_id=f"d{n}", conversation_id="c", actor=PROSPECT, text="hi")
        assert (await runtime.handle(message)).status == "committed"
    assert runtime.remembered_deliveries == 3  # the two oldest were let go
    again = MessagePosted(delivery_id="d0", conversation_id="c", actor=PROSPECT, text="hi")
    assert (await runtime.handle(again)).status == "duplicate"  # the store still knows it
    service = build_service(Settings(), POLICY, MemoryStore(), clock=lambda: 1_790_000_000_000)
    await service.runtime.start()
    for n in range(4):
        await service.handle(
            MessagePosted(delivery_id=f"e{n}", conversation_id="c", actor=PROSPECT, text="hi")
        )
    samples = await _metrics(service)
    assert samples["salesbot_dedupe_view_entries"] == 4
