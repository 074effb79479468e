"""Taking a record's personal values out and putting them back (`domain.personal`): the
round trip gives the record back, nothing given to it is changed, and an erased record
reads `[erased]` exactly where the personal values were."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from domain.personal import ERASED, SEALED, erased, event_paths, join, key_of, split

texts = st.text(max_size=20).filter(lambda t: t not in (SEALED, ERASED))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def lead_started(draw: st.DrawFn) -> dict[str, Any]:
    """A `conversation_started` event's object: the lead's details, some absent or empty."""
    lead: dict[str, Any] = {"source": draw(texts), "company_size": draw(st.integers(0, 999))}
    for name in ("name", "company", "email", "message", "external_id", "reply_url"):
        if draw(st.booleans()):
            lead[name] = draw(st.sampled_from(["", None]) | texts)
    if draw(st.booleans()):
        lead["credit_score"] = draw(st.none() | st.integers(300, 850))
    return {"type": "conversation_started", "lead": lead, "extra": draw(json_values)}


@st.composite
def read_message(draw: st.DrawFn) -> dict[str, Any]:
    """A `message_read` event's object: evidence and entities masked as a whole."""
    return {
        "type": "message_read",
        "features": draw(st.dictionaries(texts, st.integers(0, 3), max_size=4)),
        "evidence": draw(st.dictionaries(texts, st.lists(texts, max_size=3), max_size=3)),
        "entities": draw(json_values),
    }


records = lead_started() | read_message()


def strings_at(record: dict[str, Any], key: str) -> set[str]:
    """Every string value (not object keys) at the path `key` names."""
    node: Any = record
    for step in key.split("/"):
        if step != "*":
            node = node[step]
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(node)
    return found


@given(records)
def test_split_then_join_gives_the_record_back_and_changes_neither_input(
    record: dict[str, Any],
) -> None:
    before = copy.deepcopy(record)
    masked, taken = split(record, event_paths(record["type"]))
    assert record == before
    masked_before = copy.deepcopy(masked)
    assert join(masked, taken) == record
    assert masked == masked_before
    # Where a personal value was, the masked record holds only placeholders.
    for key in taken:
        assert strings_at(masked, key) <= {SEALED}


@given(records)
def test_without_the_key_every_personal_value_reads_erased(record: dict[str, Any]) -> None:
    masked, taken = split(record, event_paths(record["type"]))
    masked_before = copy.deepcopy(masked)
    opened = join(masked, None)
    assert masked == masked_before
    assert SEALED not in json.dumps(opened)
    again, _ = split(opened, event_paths(record["type"]))
    assert join(again, None) == opened  # only placeholders changed, nothing else
    for key in taken:
        assert strings_at(opened, key) <= {ERASED}


@given(lead_started())
def test_a_record_written_before_sealing_reads_erased_and_is_not_changed(
    record: dict[str, Any],
) -> None:
    before = copy.deepcopy(record)
    paths = event_paths("conversation_started")
    result = erased(record, paths)
    assert record == before
    _, taken = split(record, paths)
    for key in taken:
        name = key.split("/")[-1]
        assert result["lead"][name] == (None if name == "credit_score" else ERASED)
    assert {k: v for k, v in result.items() if k != "lead"} == {
        k: v for k, v in record.items() if k != "lead"
    }
    assert key_of(("lead", "name")) == "lead/name"
