"""`fold` rebuilds a conversation's state in place instead of copying it per event; the
state it hands out must be the one `apply`, event by event, gives — every field and the
set of fields set — on every kind of log salesbot keeps."""

from __future__ import annotations

import asyncio
import typing
from pathlib import Path

import pytest

from domain import events as ev
from domain.events import EventEnvelope
from domain.state import _HANDLERS, UNCHANGING, ConversationState, apply, fold, initial_state
from storage.sqlite import SqliteStore
from tests.support.varied_stores import varied_stores


def event_types() -> set[type[object]]:
    union = typing.get_args(ev.Event)[0]
    return set(typing.get_args(union))


def test_every_event_type_either_changes_the_state_or_is_listed_as_not_changing_it() -> None:
    handled = set(_HANDLERS)
    assert handled | UNCHANGING == event_types()
    assert not handled & UNCHANGING


async def _logs(path: Path) -> list[list[EventEnvelope]]:
    async with await SqliteStore.open(path) as store:
        return [await store.load(cid) for cid in await store.conversation_ids()]


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> list[list[EventEnvelope]]:
    paths = varied_stores(tmp_path_factory.mktemp("varied"))
    return [log for path in paths for log in asyncio.run(_logs(path))]


def one_by_one(state: ConversationState, log: list[EventEnvelope]) -> ConversationState:
    for envelope in log:
        state = apply(state, envelope)
    return state


def test_the_logs_hold_most_kinds_of_event(logs: list[list[EventEnvelope]]) -> None:
    seen = {type(env.event) for log in logs for env in log}
    assert len(seen) >= 30
    assert ev.Erased in seen


def test_fold_equals_applying_each_event_in_turn_after_every_event(
    logs: list[list[EventEnvelope]],
) -> None:
    folded = 0
    for log in logs:
        start = initial_state(log[0].conversation_id, "start")
        state = start
        for count, envelope in enumerate(log, start=1):
            state = apply(state, envelope)
            rebuilt = fold(start, log[:count])
            assert rebuilt == state
            assert rebuilt.model_fields_set == state.model_fields_set
            assert rebuilt.model_dump_json() == state.model_dump_json()
            folded += 1
    assert folded > 1000


def test_fold_continues_from_any_state_and_leaves_it_unchanged(
    logs: list[list[EventEnvelope]],
) -> None:
    for log in logs:
        middle = len(log) // 2
        start = initial_state(log[0].conversation_id, "start")
        halfway = fold(start, log[:middle])
        before = halfway.model_dump_json()
        assert fold(halfway, log[middle:]) == one_by_one(start, log)
        assert halfway.model_dump_json() == before
    empty = initial_state("c", "start")
    assert fold(empty, []) is empty
