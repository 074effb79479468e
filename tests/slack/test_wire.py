"""Slack bodies checked and parsed before anything acts on them (`adapters/slack/wire.py`)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from adapters.slack.wire import (
    FORM,
    JSON,
    CommandForm,
    EventBody,
    InteractionPayload,
    Refused,
    SslCheck,
    parse,
    signature_headers,
)

SIGNATURE = "v0=" + "ab" * 32


@pytest.mark.parametrize(
    "field",
    ["text", "channel_name", "user_name", "team_domain", "command_extra"],
)
def test_a_form_with_a_command_is_a_command_whatever_else_says_payload(field: str) -> None:
    fields = {"command": "/quote", "text": "10 pro", "channel_name": "sales"}
    fields[field] = 'payload={"type":"block_actions"}'

    parsed = parse(urlencode(fields).encode(), FORM, None)

    assert parsed == CommandForm(fields=fields)


def test_a_command_with_a_payload_field_too_is_still_a_command() -> None:
    parsed = parse(b"payload=%7B%7D&command=%2Flead&text=hi", FORM, None)

    assert isinstance(parsed, CommandForm)
    assert parsed.fields["command"] == "/lead"


def test_a_form_whose_field_is_payload_is_an_interaction() -> None:
    payload = {"type": "block_actions", "actions": [{"value": "payload"}]}

    parsed = parse(urlencode({"payload": json.dumps(payload)}).encode(), FORM, None)

    assert parsed == InteractionPayload(payload=payload)


def test_json_is_an_event_body_and_ssl_check_is_acknowledged() -> None:
    assert parse(b'{"type": "event_callback"}', JSON, "utf-8") == EventBody(
        body={"type": "event_callback"}
    )
    assert parse(b"ssl_check=1&token=x", FORM, None) == SslCheck()


@pytest.mark.parametrize(
    ("raw", "content_type", "charset", "status"),
    [
        (b"{}", "text/plain", None, 415),
        (b"{}", JSON, "latin-1", 415),
        (b'{"a": "\xff"}', JSON, None, 400),
        (b"command=%ff", FORM, None, 400),
        (b"command", FORM, None, 400),
        (b"command=a&command=b", FORM, None, 400),
        (b"nothing=here", FORM, None, 400),
        (b"payload=%5B1%5D", FORM, None, 400),
        (b'"\\ud800"', JSON, None, 400),
        (b'{"text": "\\udc00 alone"}', JSON, None, 400),
        (b"[" * 65 + b"]" * 65, JSON, None, 400),
        (b"{}" + b"}", JSON, None, 400),
        (b"1" * 5000, JSON, None, 400),
        ("&".join(f"f{n}=1" for n in range(200)).encode() + b"&command=x", FORM, None, 400),
    ],
)
def test_what_cannot_be_handled_is_refused_with_a_one_line_reason(
    raw: bytes, content_type: str, charset: str | None, status: int
) -> None:
    parsed = parse(raw, content_type, charset)

    assert isinstance(parsed, Refused)
    assert parsed.status == status
    assert parsed.reason
    assert "\n" not in parsed.reason


def test_a_field_name_in_a_reason_stays_on_one_line() -> None:
    parsed = parse(b"a%0Ab=1&a%0Ab=2", FORM, None)

    assert isinstance(parsed, Refused)
    assert "\n" not in parsed.reason


def test_a_pair_of_surrogates_is_one_character_and_fine() -> None:
    assert parse(b'{"t": "\\ud83d\\ude00"}', JSON, None) == EventBody(body={"t": "\U0001f600"})


@pytest.mark.parametrize(
    ("headers", "ok"),
    [
        ({"X-Slack-Request-Timestamp": "1700000000", "X-Slack-Signature": SIGNATURE}, True),
        ({"X-Slack-Signature": SIGNATURE}, False),
        ({"X-Slack-Request-Timestamp": "1700000000"}, False),
        ({"X-Slack-Request-Timestamp": "17e8", "X-Slack-Signature": SIGNATURE}, False),
        ({"X-Slack-Request-Timestamp": "-1", "X-Slack-Signature": SIGNATURE}, False),
        ({"X-Slack-Request-Timestamp": "١٧٠٠", "X-Slack-Signature": SIGNATURE}, False),
        ({"X-Slack-Request-Timestamp": "1" * 40, "X-Slack-Signature": SIGNATURE}, False),
        ({"X-Slack-Request-Timestamp": "1", "X-Slack-Signature": "v0=" + "é" * 64}, False),
        ({"X-Slack-Request-Timestamp": "1", "X-Slack-Signature": SIGNATURE.upper()}, False),
        ({"X-Slack-Request-Timestamp": "1", "X-Slack-Signature": "v1=" + "ab" * 32}, False),
    ],
)
def test_signature_headers_must_be_well_formed_before_any_check(
    headers: dict[str, str], ok: bool
) -> None:
    result = signature_headers(headers)

    assert isinstance(result, tuple) is ok
    if not ok:
        assert isinstance(result, Refused)
        assert result.status == 401
