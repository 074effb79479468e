"""JSON bodies checked as text, before and right after parsing.

Every endpoint takes JSON from outside (Slack, Teams, the lead feed, the playground), and
two things about it must be refused before they cost a 500: nesting so deep that the parser
recurses out of its stack (found on the text, without parsing), and escapes that spell a
lone surrogate (`"\\ud800"`), which `json.loads` accepts but no UTF-8 store or platform can
hold. Each endpoint chooses its own limit and words for the refusal.
"""

from __future__ import annotations

import re
from itertools import accumulate

# A string literal, escapes included; an unclosed one runs to the end of the text. Possessive
# quantifiers keep the match linear however the text is crafted.
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE = re.compile("[\ud800-\udfff]")
# The escape of a surrogate half, \ud800 to \udfff in any case. An escaped backslash
# before a "u" matches too: then the parsed value is searched, so the gate stays exact.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def json_depth(text: str) -> int:
    """How deeply `text`'s arrays and objects nest, counted outside strings: exact for JSON,
    an upper bound for text that is not JSON (which the parser then refuses anyway).
    Linear time."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(_STEP[char] for char in brackets), default=0)


def nests_deeper_than(text: str, limit: int) -> bool:
    """Whether `text` nests deeper than `limit` (see `json_depth`)."""
    if text.count("[") + text.count("{") <= limit:
        return False  # it cannot nest deeper than it opens
    return json_depth(text) > limit


def has_lone_surrogate(value: object) -> bool:
    """Whether parsed JSON holds a string with a surrogate half in it (keys included)."""
    if isinstance(value, str):
        # ASCII (a flag on the string, O(1)) holds no surrogate; otherwise one C-level scan.
        return not value.isascii() and _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(
            has_lone_surrogate(key) or has_lone_surrogate(item) for key, item in value.items()
        )
    if isinstance(value, list):
        return any(has_lone_surrogate(item) for item in value)
    return False


def parsed_has_lone_surrogate(text: str, value: object) -> bool:
    """`has_lone_surrogate(value)` for `value = json.loads(text)`, without walking `value`
    when `text` cannot spell a surrogate: parsing makes one only from a `\\uD800`-style
    escape (or from one already in the text, which UTF-8 decoding never leaves), and most
    bodies have none. A request's body is a few dozen strings: the walk was the cost."""
    if _SURROGATE_ESCAPE.search(text) is None and (
        text.isascii() or _SURROGATE.search(text) is None
    ):
        return False
    return has_lone_surrogate(value)
