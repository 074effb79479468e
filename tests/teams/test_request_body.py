"""The checks a body to `/api/messages` passes before it is parsed, and an activity's shape
after the token (the nesting scan itself: tests/unit/test_json_text.py)."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.teams.request_body import (
    MAX_ID,
    RequestRefusedError,
    check_shape,
)


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
