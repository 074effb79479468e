"""The checks every JSON endpoint makes on the text before parsing it: the nesting scan
agrees with the parser and stays linear on hostile text; lone surrogates are found."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.json_text import (
    has_lone_surrogate,
    json_depth,
    nests_deeper_than,
    parsed_has_lone_surrogate,
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
    text = json.dumps(value)
    assert json_depth(text) == depth(value)
    assert nests_deeper_than(text, limit) == (depth(value) > limit)


@pytest.mark.parametrize(
    ("text", "deeper_than_16"),
    [
        ('"' + '\\"' * 300_000, False),  # an unterminated string of escaped quotes
        ('"' + '\\"' * 300_000 + "\\", False),
        ('"a' * 300_000, False),
        ("[" * 500_000 + "]" * 500_000, True),
        ('{"a":' * 200_000, True),
        ('"\\' * 350_000, False),
    ],
    ids=["escaped-quotes", "trailing-backslash", "many-strings", "deep", "deep-objects", "escapes"],
)
def test_hostile_text_of_a_megabyte_is_scanned_whole(text: str, deeper_than_16: bool) -> None:
    # The string pattern is possessive, so no input makes it backtrack: a regression here
    # shows as this test taking minutes, not as a flaky timing assertion.
    assert nests_deeper_than(text, 16) is deeper_than_16


def test_brackets_count_until_a_string_opens_and_not_after_an_unterminated_one() -> None:
    assert nests_deeper_than('["' + "[" * 100, 16) is False  # inside the string
    assert nests_deeper_than("[" * 17 + '"', 16) is True
    assert json_depth('{"text": "[[[[{{{{\\"[[["}') == 1
    assert json_depth('[[{"a": [1]}]]') == 4
    assert json_depth("") == 0


@pytest.mark.parametrize(
    ("text", "lone"),
    [
        ('"\\ud800"', True),
        ('{"\\udfff": 1}', True),
        ('[1, ["a", "\\ud83d"]]', True),
        ('"\\ud83d\\ude00"', False),  # a pair is one character
        ('{"text": "Grüße ✓"}', False),
        ('{"text": "\\uD800 upper case"}', True),
        ('{"text": "\\\\ud800 an escaped backslash, then letters"}', False),
        ('{"text": "\\u00e9t\\u00e9", "n": [1, {"k": "\\udc00"}]}', True),
        ('{"text": "plain ascii"}', False),
    ],
)
def test_lone_surrogates_are_found_in_keys_values_and_lists(text: str, lone: bool) -> None:
    assert has_lone_surrogate(json.loads(text)) is lone
    # The endpoints look at the text first and walk the parsed value only when it could
    # spell one: the same answer either way.
    assert parsed_has_lone_surrogate(text, json.loads(text)) is lone
