"""What a request to `/api/messages` must be before anything reads it, and the shape of the
activity after the token check.

Checked in this order, each answered with a one-line JSON reason (never a 5xx, nothing
stored), so the cheap checks run before any parsing that can fail and before the token
check, which needs the body's `serviceUrl` and `channelId`:

1. `Content-Type` is `application/json` (a charset other than UTF-8 is refused too): 415;
2. the body is at most `MAX_BODY_BYTES` (1 MiB, as the server's limit; decompressed, when
   sent with a Content-Encoding aiohttp decodes): 413; one that cannot be read as sent
   (bad gzip, broken chunks): 400;
3. it is UTF-8: 400;
4. its arrays and objects nest at most `MAX_DEPTH` deep, counted on the text *before* it is
   parsed (Python's parser recurses once per level: a few thousand `[` would exhaust it): 400;
5. it parses as JSON and holds no lone surrogate (`"\\ud800"`), which no store or encoder
   can write: 400;
then the token (401, `auth.py`), then `check_shape`:
6. the body is an object with a string `type` and `serviceUrl`: 400;
7. every field the adapter reads has the type the Bot Framework schema gives it (an account
   is an object, its `id` a string, `entities` a list, …) and ids a sane length
   (`MAX_ID`): 422 naming the first field.
Everything else about an activity (unknown fields, odd `value`s, other activity types) is
the translation's to ignore.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from adapters.json_text import nests_deeper_than, parsed_has_lone_surrogate

MAX_BODY_BYTES = 1024 * 1024
"""The largest activity accepted; Teams' own messages stay far below it."""
MAX_DEPTH = 64
"""Arrays and objects nested deeper are refused. An activity nests about six deep; an
Adaptive Card in an attachment, some twenty."""

# A JSON string, or an unterminated one up to the end of the text. The unrolled loop can only
# stop at a quote, at a backslash ending the text, or at the end, and each is accepted: every
# match attempt succeeds without backtracking, so removing strings takes linear time.


class RequestRefusedError(Exception):
    """The request is refused with `status`; `reason` is one line, safe to show and log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def response(self) -> web.Response:
        return web.json_response({"error": self.reason}, status=self.status)


async def read_json(request: web.Request) -> Any:
    """The parsed body (steps 1-5 of the module docstring), or `RequestRefusedError`."""
    if request.content_type != "application/json":
        raise RequestRefusedError(415, "the body must be JSON (Content-Type: application/json)")
    charset = request.charset
    if charset is not None and charset.lower().replace("-", "") != "utf8":
        raise RequestRefusedError(415, "the body must be UTF-8 JSON")
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise RequestRefusedError(413, f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise RequestRefusedError(413, f"the body is over {MAX_BODY_BYTES} bytes") from None
    except (web.RequestPayloadError, HttpProcessingError):
        # A body that does not decode as its Content-Encoding says (bad gzip), or a broken
        # chunked encoding: aiohttp reports it when the body is read.
        raise RequestRefusedError(400, "the body could not be read as sent") from None
    if len(raw) > MAX_BODY_BYTES:
        raise RequestRefusedError(413, f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestRefusedError(400, "the body is not UTF-8") from None
    if nests_deeper_than(text, MAX_DEPTH):
        raise RequestRefusedError(400, f"the JSON nests deeper than {MAX_DEPTH} levels")
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        raise RequestRefusedError(400, "the body is not JSON") from None
    if parsed_has_lone_surrogate(text, body):
        raise RequestRefusedError(400, "the JSON holds a lone surrogate (not valid Unicode)")
    return body


MAX_ID = 512
"""The longest id accepted (a conversation, an account, an activity, a tenant): Teams' are
under 200 characters; the bound keeps every key the adapter derives from one within what a
store holds (`book.py`)."""
MAX_WORD = 128
"""The longest activity type, invoke name, channel id, role, locale or conversation type."""

_Id = Annotated[str, StringConstraints(max_length=MAX_ID)]
_Word = Annotated[str, StringConstraints(max_length=MAX_WORD)]


class _Loose(BaseModel):
    """Fields of the Bot Framework schema that the adapter reads, with their types; any other
    field is allowed and left alone. Strict: a number is not a string."""

    model_config = ConfigDict(extra="allow", strict=True)


class _Account(_Loose):
    id: _Id | None = None
    name: _Id | None = None
    aadObjectId: _Id | None = None  # noqa: N815 - the wire name
    tenantId: _Id | None = None  # noqa: N815
    userRole: _Word | None = None  # noqa: N815
    role: _Word | None = None


class _Conversation(_Loose):
    id: _Id | None = None
    name: _Id | None = None
    conversationType: _Word | None = None  # noqa: N815
    tenantId: _Id | None = None  # noqa: N815
    isGroup: bool | None = None  # noqa: N815


class _Tenant(_Loose):
    id: _Id | None = None


class _ChannelData(_Loose):
    tenant: _Tenant | None = None
    userRole: _Word | None = None  # noqa: N815


class _Activity(_Loose):
    type: _Word
    serviceUrl: Annotated[str, StringConstraints(max_length=2048)]  # noqa: N815
    id: _Id | None = None
    name: _Word | None = None
    channelId: _Word | None = None  # noqa: N815
    sender: _Account | None = Field(None, alias="from")
    recipient: _Account | None = None
    conversation: _Conversation | None = None
    channelData: _ChannelData | None = None  # noqa: N815
    text: str | None = None
    locale: _Word | None = None
    entities: list[Any] | None = None
    membersAdded: list[Any] | None = None  # noqa: N815
    attachments: list[Any] | None = None


def check_shape(body: Any) -> dict[str, Any]:
    """The activity (steps 6-7 of the module docstring), or `RequestRefusedError`."""
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise RequestRefusedError(400, "the body is not a JSON activity")
    if not isinstance(body.get("serviceUrl"), str):
        raise RequestRefusedError(400, "the activity has no serviceUrl")
    try:
        _Activity.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "activity"
        raise RequestRefusedError(422, f"{where}: {first['msg']}") from None
    return body
