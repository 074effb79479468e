"""The checks a body to `/api/messages` passes before it is parsed, and an activity's shape
after the token: the nesting scan agrees with the parser, in linear time."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.teams.request_body import (
    MAX_DEPTH,
    MAX_ID,
    RequestRefusedError,
    check_shape,
    nests_deeper_than,
)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:', max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\ab', max_size=4), inner, max_size=3)
    ),
    max_leaves=40,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300)
@given(value=JSON, limit=st.integers(0, 12))
def test_the_scan_counts_nesting_as_the_parser_does_ignoring_brackets_in_strings(
    value: Any, limit: int
) -> None:
    assert nests_deeper_than(json.dumps(value), limit) == (depth(value) > limit)


@pytest.mark.parametrize(
    "text",
    [
        '"' + '\\"' * 300_000,  # an unterminated string of escaped quotes
        '"' + '\\"' * 300_000 + "\\",
        '"a' * 300_000,
        "[" * 500_000 + "]" * 500_000,
        '{"a":' * 200_000,
    ],
)
def test_the_scan_takes_linear_time_on_hostile_text(text: str) -> None:
    started = time.monotonic()
    nests_deeper_than(text, MAX_DEPTH)
    assert time.monotonic() - started < 1.5


def test_brackets_count_until_a_string_opens_and_not_after_an_unterminated_one() -> None:
    assert nests_deeper_than('["' + "[" * 100, MAX_DEPTH) is False  # inside the string
    assert nests_deeper_than("[" * (MAX_DEPTH + 1) + '"', MAX_DEPTH) is True


def activity(**changes: Any) -> dict[str, Any]:
    return {
        "type": "message",
        "serviceUrl": "https://smba.trafficmanager.net/amer/",
        "from": {"id": "29:pat", "name": "Pat"},
        "conversation": {"id": "19:x@thread.tacv2", "isGroup": True},
        "channelData": {"tenant": {"id": "t-1"}, "anything": [1, {"else": None}]},
        "value": {"whatever": ["shape", 1]},
        "unknownField": {"is": "kept"},
    } | changes


def test_an_activity_of_the_right_shape_passes_untouched() -> None:
    body = activity()
    assert check_shape(body) is body


@pytest.mark.parametrize(
    ("changes", "status", "reason"),
    [
        ({"type": 3}, 400, "not a JSON activity"),
        ({"serviceUrl": None}, 400, "no serviceUrl"),
        ({"from": []}, 422, "from:"),
        ({"from": {"id": 29}}, 422, "from.id:"),
        ({"conversation": {"id": "x" * (MAX_ID + 1)}}, 422, "conversation.id:"),
        ({"conversation": {"isGroup": "yes"}}, 422, "conversation.isGroup:"),
        ({"channelData": {"tenant": "t-1"}}, 422, "channelData.tenant:"),
        ({"text": ["hi"]}, 422, "text:"),
        ({"membersAdded": {"id": "28:bot"}}, 422, "membersAdded:"),
    ],
)
def test_a_misshapen_activity_is_refused_naming_the_first_field(
    changes: dict[str, Any], status: int, reason: str
) -> None:
    with pytest.raises(RequestRefusedError) as refused:
        check_shape(activity(**changes))
    assert refused.value.status == status
    assert reason in refused.value.reason
    assert "\n" not in refused.value.reason
