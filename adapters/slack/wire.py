"""What arrives at `POST /slack/events`, checked and parsed before anything acts on it.

One request URL takes three kinds of body (https://docs.slack.dev/apis/events-api,
"Handling slash commands", "Handling user interaction"):
- Events API: a JSON object (`Content-Type: application/json`);
- a slash command: a form (`application/x-www-form-urlencoded`) with a `command` field;
- interactivity (clicks, modal submissions): a form whose one field is `payload`, a JSON
  object.

Everything is checked in the order that lets nothing fail later: body size (413), the
signature headers' format (401: a missing or non-integer timestamp, or a signature that is
not `v0=` and 64 hex digits, cannot be a request from Slack; checking the format first
also keeps slack-sdk's verifier from raising on them), UTF-8 (400: Slack's bodies are, and
the verifier decodes the body before hashing it), the signature on the raw bytes (401),
the media type (415), then the structure: form fields (strict: every
field has a `=`, no field twice, percent-escapes decode to UTF-8) and JSON (no nesting
deeper than `MAX_JSON_DEPTH` — measured on the text *before* parsing, so a hostile
`[[[[…` never reaches the parser's recursion — no lone surrogate such as `\\ud800`, an
object at the top) (400). Each refusal is one short reason for a JSON body.

Parsing the forms here, not in slack-bolt, is deliberate: bolt reads any form body that
contains the substring "payload" — in a command's text, a channel or user name, a
workspace domain — as an interactivity payload, and drops the command. Here a form with a
`command` field is a slash command whatever its other fields say.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from adapters.json_text import nests_deeper_than, parsed_has_lone_surrogate
from domain.model import Frozen

MAX_BODY_BYTES = 1024 * 1024
"""Slack's own payloads are far smaller (a message is cut at 40,000 characters); a block
actions payload repeats the clicked message's blocks, hence the room."""
MAX_JSON_DEPTH = 64
"""Slack's deepest payloads (rich text inside a clicked message) nest about a dozen levels."""
MAX_FORM_FIELDS = 100

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


class Refused(Frozen):
    """A request that cannot succeed: answered `status` with `{"error": reason}`."""

    status: int
    reason: str


class EventBody(Frozen):
    """An Events API body (`event_callback`, `url_verification`, …)."""

    body: dict[str, Any]


class CommandForm(Frozen):
    """A slash command's form fields."""

    fields: dict[str, str]


class InteractionPayload(Frozen):
    """An interactivity payload (`block_actions`, `view_submission`, …)."""

    payload: dict[str, Any]


class SslCheck(Frozen):
    """Slack checking the certificate of a slash command's URL: answered 200."""


SlackBody = EventBody | CommandForm | InteractionPayload | SslCheck


def signature_headers(headers: Mapping[str, str]) -> tuple[str, str] | Refused:
    """The timestamp and signature, when both are well-formed."""
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature", "")
    if not _TIMESTAMP.fullmatch(timestamp):
        return Refused(status=401, reason="missing or malformed X-Slack-Request-Timestamp")
    if not _SIGNATURE.fullmatch(signature):
        return Refused(status=401, reason="missing or malformed X-Slack-Signature")
    return timestamp, signature


def is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def parse(raw: bytes, content_type: str, charset: str | None) -> SlackBody | Refused:
    """A verified body as what it is, or why it cannot be handled."""
    if content_type not in (JSON, FORM):
        return Refused(status=415, reason=f"unsupported media type (use {JSON} or {FORM})")
    if charset is not None and charset.lower().replace("-", "") != "utf8":
        return Refused(status=415, reason="unsupported charset (use utf-8)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Refused(status=400, reason="the body is not UTF-8")
    if content_type == JSON:
        body = json_object(text)
        return body if isinstance(body, Refused) else EventBody(body=body)
    return _form(text)


def json_object(text: str) -> dict[str, Any] | Refused:
    """`text` as a JSON object, checked for depth before parsing and for lone surrogates
    after (they cannot be stored or sent on as UTF-8)."""
    if nests_deeper_than(text, MAX_JSON_DEPTH):
        return Refused(status=400, reason=f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return Refused(status=400, reason="malformed JSON")
    if not isinstance(value, dict):
        return Refused(status=400, reason="the JSON body is not an object")
    if parsed_has_lone_surrogate(text, value):
        return Refused(status=400, reason="JSON with a lone surrogate (not Unicode text)")
    return value


def _form(text: str) -> SlackBody | Refused:
    try:
        parsed = parse_qs(
            text,
            keep_blank_values=True,
            strict_parsing=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError:  # UnicodeDecodeError is one too
        return Refused(status=400, reason="malformed form body")
    twice = sorted(name for name, values in parsed.items() if len(values) > 1)
    if twice:
        return Refused(status=400, reason=f"form field given twice: {twice[0][:40]!r}")
    fields = {name: values[0] for name, values in parsed.items()}
    if "command" in fields:
        return CommandForm(fields=fields)
    if "payload" in fields:
        payload = json_object(fields["payload"])
        return payload if isinstance(payload, Refused) else InteractionPayload(payload=payload)
    if "ssl_check" in fields:
        return SslCheck()
    return Refused(status=400, reason="a form that is neither a slash command nor a payload")
