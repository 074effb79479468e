"""`Sparse`: a field added later stays out of the stored JSON while unused, so values
written before it existed keep their bytes (and policies their version hashes)."""

from __future__ import annotations

import json
from typing import ClassVar

from domain.events import EventEnvelope, HeadExplanation, RepMessageRecorded
from domain.model import Frozen, Sparse


class Price(Sparse):
    ADDED_LATER: ClassVar[tuple[str, ...]] = ("discount", "tags")
    cents: int
    discount: int | None = None
    tags: tuple[str, ...] = ()


class AlwaysHadDiscount(Price):
    """A child that names no later field: its values always carried `discount`."""

    ADDED_LATER: ClassVar[tuple[str, ...]] = ()


class Basket(Frozen):
    items: tuple[Price, ...]


def test_a_later_field_at_its_default_is_left_out_of_both_dumps() -> None:
    price = Price(cents=1890)
    assert price.model_dump_json() == '{"cents":1890}'
    assert price.model_dump(mode="json") == {"cents": 1890}
    assert Price.model_validate_json(price.model_dump_json()) == price


def test_a_later_field_in_use_is_written() -> None:
    price = Price(cents=1890, discount=5, tags=("q4",))
    assert json.loads(price.model_dump_json()) == {"cents": 1890, "discount": 5, "tags": ["q4"]}
    assert Price(cents=1, tags=()).model_dump() == {"cents": 1}


def test_nested_values_are_left_sparse_too() -> None:
    basket = Basket(items=(Price(cents=1), Price(cents=2, discount=0)))
    assert basket.model_dump_json() == '{"items":[{"cents":1},{"cents":2,"discount":0}]}'


def test_a_child_that_always_had_the_field_writes_it() -> None:
    assert json.loads(AlwaysHadDiscount(cents=3).model_dump_json()) == {
        "cents": 3,
        "discount": None,
        "tags": [],
    }
    # …and the parent is unchanged by its child.
    assert Price(cents=3).model_dump_json() == '{"cents":3}'


def test_stored_events_keep_their_shape() -> None:
    explanation = HeadExplanation.model_validate(
        {"head": "band:hot", "terms": [], "bias": "0", "total": "0.5", "threshold": "0"}
    )
    assert "probability" not in explanation.model_dump_json()
    event = RepMessageRecorded(actor_id="R", text="hello")
    envelope = EventEnvelope(
        conversation_id="c", seq=1, at_ms=1, policy_version="p", delivery_id="d", event=event
    )
    dumped = json.loads(envelope.model_dump_json())
    assert "sealed" not in dumped
    assert "name" not in dumped["event"]
    named = RepMessageRecorded(actor_id="R", text="hello", name="Rae")
    assert json.loads(named.model_dump_json())["name"] == "Rae"
