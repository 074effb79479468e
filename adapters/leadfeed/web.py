"""`POST /leads`, `POST /leads/{id}/messages`, `GET /leads/{id}/messages`: the lead feed.

Web forms, CRMs and mail relays post leads here; each lead becomes one conversation, whose id
is the lead id the feed returns. Every route needs `Authorization: Bearer
$SALESBOT_LEADS_TOKEN` (compared in constant time); without a configured token every request
is refused, so an unconfigured feed is closed, not open.

The token says whose lead it is. `SALESBOT_LEADS_TOKEN` is the first installation's; each
other installation (a workspace or tenant that installed the app) may have a token of its own
(`SALESBOT_INSTALLATION_LEADS_TOKENS`), and a lead posted with it belongs to that
installation (`Actor.installation`): its card goes to that installation's leads channel,
its audit and metrics are that installation's. A lead is only ever read or written with its
own installation's token — another's is answered 404, exactly as a lead that does not
exist — and an installation's idempotency keys are its own (two installations using the
same key get two leads).

Idempotency follows Stripe's model (RELIABILITY.md). The key is the `Idempotency-Key` header,
else the body's `external_id`; without either every POST is a new lead. The lead id and the
delivery id are derived from the key, so a retry lands on the same conversation:

    lead id     = "lead-" + sha256(key)[:16]
    delivery id = "lead:"  + sha256(key)

The inbound stored under that delivery id *is* the stored result: the same key with the same
lead (compared as the canonical `LeadDetails`) answers 200 with the original lead id; the same
key with a different lead answers 409. Duplicates racing each other in this process are
serialised per key here; the runtime's own dedupe by delivery id (a duplicate waits for the
first and is reported with `status == "duplicate"`) is the backstop. Keys live as long as the
store keeps the inbound — at least Stripe's 24 hours.

Hostile input is refused before anything parses it, each with a one-line JSON reason:
the Authorization header must be printable ASCII (else 401), the Idempotency-Key printable
text of 1 to 255 characters (422), the Content-Type absent or JSON in UTF-8 (415), the body
at most 64 KB (413), UTF-8 (400), nested at most MAX_DEPTH levels (400, counted on the text
before parsing), JSON (400), without unpaired surrogates (`"\\ud800"`, 400: such a string
cannot be stored or hashed), and then the models' fields (422). A `reply_url` must be one
the `OutboundPolicy` allows: checked without DNS with the other fields, then with one DNS
look-up (a name that does not resolve yet is accepted; the sender checks again).

Nothing here echoes the token, the body or a traceback: errors are JSON with a sentence,
422s list fields and messages without the rejected values, and unexpected failures are logged
by exception type only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import ValidationError

from adapters.action_binding import ActionKey
from adapters.ids import LEAD_DELIVERY, LEAD_MESSAGE_DELIVERY, LEADS, lead_actor_id
from adapters.json_text import nests_deeper_than, parsed_has_lone_surrogate
from adapters.leadfeed.links import PROSPECT_ACTIONS, SCOPE
from adapters.leadfeed.links import delivery_id as link_delivery_id
from adapters.leadfeed.models import LeadBody, MessageBody
from adapters.outbound import OutboundPolicy, OutboundRefusedError
from domain.inbound import (
    Actor,
    ButtonClicked,
    Inbound,
    LeadArrived,
    LeadDetails,
    MessagePosted,
)
from domain.state import ConversationState

log = logging.getLogger(__name__)

Handle = Callable[[Inbound], Awaitable[object]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_BODY_BYTES = 64 * 1024
MAX_KEY_LENGTH = 255
"""Stripe's limit for an idempotency key."""
MAX_DEPTH = 16
"""A lead is two levels deep (the body, its metadata); anything much deeper is hostile."""

LEAD_ID = re.compile(rf"^{re.escape(LEADS.conversation_id(''))}[0-9a-f]{{16}}$")
"""Only conversations the feed created are reachable through it: a chat thread's
conversation must not be readable by guessing its id."""

_DISABLED = "The lead feed is disabled until SALESBOT_LEADS_TOKEN is set."
INSTALLATION = web.RequestKey("installation", str)
"""The installation whose token a request presented ("" the first)."""
_UNAUTHORIZED = "A valid bearer token is required (Authorization: Bearer <SALESBOT_LEADS_TOKEN>)."


def lead_ids(key: str, installation: str = "") -> tuple[str, str]:
    """The lead (conversation) id and the delivery id for an idempotency key of an
    installation (the first installation's keys are hashed alone, as before)."""
    scoped = f"{installation}\x1f{key}" if installation else key
    digest = hashlib.sha256(scoped.encode("utf-8")).hexdigest()
    return LEADS.conversation_id(digest[:16]), LEADS.delivery_id(digest, kind=LEAD_DELIVERY)


def message_delivery_id(lead_id: str, message_id: str) -> str:
    """Scoped by lead, so two leads' clients may number their messages alike."""
    digest = hashlib.sha256(f"{lead_id}\x1f{message_id}".encode()).hexdigest()
    return LEADS.delivery_id(digest, kind=LEAD_MESSAGE_DELIVERY)


def prospect(lead_id: str, lead: LeadDetails, installation: str = "") -> Actor:
    return Actor(
        id=lead_actor_id(lead_id), name=lead.name, role="prospect", installation=installation
    )


class _EarlyAnswer(Exception):  # noqa: N818  # control flow, not an error
    """Ends a request early with a ready answer."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass
class _KeyLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class LeadFeed:
    """The feed's routes. `handle` is the runtime's (it returns once the inbound is
    committed); `conversation` gives a conversation's folded state, or None when it has no
    events; `first_inbound` gives the inbound stored under a delivery id, or None;
    `outbound` says which reply URLs a lead may carry; `installation_tokens` maps each
    other installation to its own bearer token."""

    def __init__(
        self,
        *,
        token: str | None,
        handle: Handle,
        installation_tokens: Mapping[str, str] | None = None,
        conversation: Callable[[str], Awaitable[ConversationState | None]],
        first_inbound: Callable[[str], Awaitable[Inbound | None]],
        outbound: OutboundPolicy,
        action_key: ActionKey | None = None,
    ) -> None:
        self._token = token.encode("utf-8") if token else None
        self._tokens = [("", self._token)] if self._token is not None else []
        self._tokens += [
            (installation, value.encode("utf-8"))
            for installation, value in (installation_tokens or {}).items()
        ]
        self._action_key = action_key
        self._outbound = outbound
        self._handle = handle
        self._conversation = conversation
        self._first_inbound = first_inbound
        self._locks: dict[str, _KeyLock] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/leads", self._guarded(self._post_lead))
        app.router.add_post("/leads/{id}/messages", self._guarded(self._post_message))
        app.router.add_get("/leads/{id}/messages", self._guarded(self._get_messages))
        # A signed link is its own credential (`adapters.leadfeed.links`): no bearer token.
        app.router.add_post("/leads/{id}/actions", self._guarded(self._post_action, token=False))

    def _guarded(self, handler: Handler, *, token: bool = True) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if token:
                refusal = self._refuse_unauthorized(request)
            elif self._token is None:
                refusal = _error(401, _DISABLED, headers=_CHALLENGE)
            else:
                refusal = None
            if refusal is not None:
                return refusal
            try:
                return await handler(request)
            except _EarlyAnswer as bad:
                return bad.response
            except web.HTTPException:
                raise
            except Exception as exc:
                # The type only: messages of validation or database errors can carry PII.
                log.error(
                    "lead feed: unexpected %s on %s %s",
                    type(exc).__name__,
                    request.method,
                    request.match_info.route.resource.canonical
                    if request.match_info.route.resource
                    else "?",
                )
                return _error(500, "Something went wrong on our side; please retry later.")

        return guarded

    def _refuse_unauthorized(self, request: web.Request) -> web.Response | None:
        """None, with the installation whose token was presented kept on the request
        (`INSTALLATION`), or the 401 to answer."""
        if self._token is None:
            return _error(401, _DISABLED, headers=_CHALLENGE)
        header = request.headers.get("Authorization", "")
        if not (header.isascii() and header.isprintable()):
            # Not a token we issued; and a byte aiohttp could not decode is a surrogate here.
            return _error(401, _UNAUTHORIZED, headers=_CHALLENGE)
        scheme, _, credentials = header.partition(" ")
        presented = credentials.strip().encode("ascii")
        # Every token is compared (in constant time each), so the time taken does not say
        # which installation's token came closest.
        matched = [inst for inst, token in self._tokens if hmac.compare_digest(presented, token)]
        if scheme.lower() != "bearer" or not matched:
            return _error(401, _UNAUTHORIZED, headers=_CHALLENGE)
        request[INSTALLATION] = matched[0]
        return None

    async def _post_lead(self, request: web.Request) -> web.Response:
        header_key = _idempotency_key(request)
        body = _validated(LeadBody, await _json_body(request), outbound=self._outbound)
        if body.reply_url is not None:
            try:
                await self._outbound.check_resolved(body.reply_url)
            except OutboundRefusedError as refused:
                raise _EarlyAnswer(_field_error("reply_url", refused.reason)) from None
        try:
            details = body.details()
        except ValidationError as exc:  # the models mirror LeadDetails: should not happen
            raise _EarlyAnswer(_invalid(exc)) from None
        key = header_key if header_key is not None else body.external_id
        installation = request[INSTALLATION]
        if key is None:
            lead_id = LEADS.conversation_id(uuid.uuid4().hex[:16])
            delivery_id = LEADS.delivery_id(uuid.uuid4().hex, kind=LEAD_DELIVERY)
        else:
            lead_id, delivery_id = lead_ids(key, installation)
        inbound = LeadArrived(
            delivery_id=delivery_id,
            conversation_id=lead_id,
            actor=prospect(lead_id, details, installation),
            lead=details,
        )

        def same(stored: Inbound) -> bool:
            return isinstance(stored, LeadArrived) and stored.lead == details

        return await self._submit(inbound, idempotent=key is not None, same=same)

    async def _post_message(self, request: web.Request) -> web.Response:
        lead_id = request.match_info["id"]
        state = await self._lead_state(lead_id, request[INSTALLATION])
        if state is None or state.lead is None:
            return _unknown_lead()
        body = _validated(MessageBody, await _json_body(request))
        if body.message_id is not None:
            delivery_id = message_delivery_id(lead_id, body.message_id)
        else:
            delivery_id = LEADS.delivery_id(uuid.uuid4().hex, kind=LEAD_MESSAGE_DELIVERY)
        inbound = MessagePosted(
            delivery_id=delivery_id,
            conversation_id=lead_id,
            actor=prospect(lead_id, state.lead, state.installation),
            text=body.text,
        )

        def same(stored: Inbound) -> bool:
            return (
                isinstance(stored, MessagePosted)
                and stored.conversation_id == lead_id
                and stored.text == body.text
            )

        return await self._submit(inbound, idempotent=body.message_id is not None, same=same)

    async def _post_action(self, request: web.Request) -> web.Response:
        """A signed link pressed (`adapters.leadfeed.links`): the button it stands for, clicked
        by the lead's prospect, once per link. The body, if any, is not read."""
        lead_id = request.match_info["id"]
        fields = {name: _link_field(request, name) for name in _LINK_FIELDS}
        named, target, link, signature = (fields[name] for name in _LINK_FIELDS)
        action = next((a for a in PROSPECT_ACTIONS if a == named), None)
        if action is None:
            return _field_error("action", "must be one of: " + ", ".join(sorted(PROSPECT_ACTIONS)))
        state = await self._lead_state(lead_id)
        if state is None or state.lead is None:
            return _unknown_lead()
        key = self._action_key
        if key is None or not key.loaded:
            return _error(503, "Links cannot be checked yet; please retry shortly.")
        verdict = key.verdict(signature, SCOPE, lead_id, action, target, link)
        if verdict != "ok":
            log.warning("lead feed: refused a %s action link on %s", verdict, lead_id)
            return _error(
                403,
                "This link is out of date; use the one in the latest message."
                if verdict == "retired"
                else "This link is not valid for this lead.",
            )
        inbound = ButtonClicked(
            delivery_id=link_delivery_id(lead_id, action, target, link),
            conversation_id=lead_id,
            actor=prospect(lead_id, state.lead, state.installation),
            action=action,
            target=target,
        )

        def same(stored: Inbound) -> bool:
            return isinstance(stored, ButtonClicked) and stored.conversation_id == lead_id

        return await self._submit(inbound, idempotent=True, same=same)

    async def _get_messages(self, request: web.Request) -> web.Response:
        lead_id = request.match_info["id"]
        state = await self._lead_state(lead_id, request[INSTALLATION])
        if state is None:
            return _unknown_lead()
        # The state keeps the latest TRANSCRIPT_LIMIT lines; the full log stays in the store.
        messages = [{"from": speaker, "text": text} for speaker, text in state.transcript]
        return web.json_response(
            {"lead_id": lead_id, "state": state.flow_state, "messages": messages},
            headers={"Cache-Control": "no-store"},
        )

    async def _lead_state(
        self, lead_id: str, installation: str | None = None
    ) -> ConversationState | None:
        """The lead's state; None for an id that is no lead, or (`installation` given: the
        token's) a lead of another installation."""
        if not LEAD_ID.match(lead_id):
            return None
        state = await self._conversation(lead_id)
        if state is None or state.lead is None:
            return None
        if installation is not None and state.installation != installation:
            return None
        return state

    async def _submit(
        self, inbound: Inbound, *, idempotent: bool, same: Callable[[Inbound], bool]
    ) -> web.Response:
        """Hand `inbound` to the runtime once per delivery id; a replay gets the first
        result (200) or, when its content differs, a 409."""
        if not idempotent:
            await self._handle(inbound)
            return _result(inbound, created=True)
        async with self._exclusive(inbound.delivery_id):
            stored = await self._first_inbound(inbound.delivery_id)
            if stored is None:
                result = await self._handle(inbound)
                if getattr(result, "status", None) != "duplicate":
                    return _result(inbound, created=True)
                # Another process or an earlier restart got there first.
                stored = await self._first_inbound(inbound.delivery_id)
            if stored is not None and not same(stored):
                return _error(
                    409,
                    "This idempotency key was already used with a different body; "
                    "use a new key for a different request.",
                )
            return _result(stored or inbound, created=False)

    @contextlib.asynccontextmanager
    async def _exclusive(self, key: str) -> AsyncIterator[None]:
        entry = self._locks.setdefault(key, _KeyLock())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[key]


_M = TypeVar("_M", LeadBody, MessageBody)

_LINK_FIELDS = ("action", "target", "link", "sig")
MAX_LINK_FIELD = 200


def _link_field(request: web.Request, name: str) -> str:
    """A link's query field: present once, printable, at most MAX_LINK_FIELD characters."""
    values = request.query.getall(name, [])
    value = values[0] if len(values) == 1 else None
    if value is None or len(value) > MAX_LINK_FIELD or not (value.isprintable() and value):
        if name == "target" and values == [""]:
            return ""
        raise _EarlyAnswer(
            _field_error(name, f"must be given once, 1 to {MAX_LINK_FIELD} printable characters")
        )
    return value


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="salesbot-leads"'}


def _error(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _unknown_lead() -> web.Response:
    return _error(404, "No lead has this id.")


def _result(inbound: Inbound, *, created: bool) -> web.Response:
    lead_id = inbound.conversation_id
    return web.json_response(
        {"lead_id": lead_id, "status": "created" if created else "existing"},
        status=201 if created else 200,
        headers={"Location": f"/leads/{lead_id}/messages"} if created else None,
    )


def _field_error(name: str, message: str) -> web.Response:
    return web.json_response(
        {"error": "The request is not valid.", "errors": [{"field": name, "message": message}]},
        status=422,
    )


def _idempotency_key(request: web.Request) -> str | None:
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        return None
    key = raw.strip()
    # isprintable() is False for control characters and for the surrogates aiohttp uses for
    # bytes that are not UTF-8: such a key could not be hashed into a lead id.
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise _EarlyAnswer(
            _field_error("Idempotency-Key", f"must be 1 to {MAX_KEY_LENGTH} printable characters")
        )
    return key


_JSON_TYPE = re.compile(r"^application/(?:[a-z0-9.+-]+\+)?json$")
_UNSUPPORTED_TYPE = "The body must be JSON in UTF-8 (Content-Type: application/json)."


def _check_content_type(request: web.Request) -> None:
    """No Content-Type, or JSON with no charset but UTF-8's; anything else is a 415."""
    header = request.headers.get("Content-Type")
    if header is None:
        return
    media_type, *params = header.split(";")
    if not _JSON_TYPE.match(media_type.strip().lower()):
        raise _EarlyAnswer(_error(415, _UNSUPPORTED_TYPE))
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in {
            "utf-8",
            "utf8",
        }:
            raise _EarlyAnswer(_error(415, _UNSUPPORTED_TYPE))


async def _json_body(request: web.Request) -> Any:
    """The body parsed as JSON, after the checks that need no parsing (module docstring);
    more than MAX_BODY_BYTES is refused whatever the headers say."""
    _check_content_type(request)
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise _EarlyAnswer(_too_large())
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _EarlyAnswer(_too_large())
        chunks.append(chunk)
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise _EarlyAnswer(
            _error(400, "The body must be JSON in UTF-8; it is not valid UTF-8.")
        ) from None
    if nests_deeper_than(text, MAX_DEPTH):
        raise _EarlyAnswer(
            _error(400, f"The body must be JSON nested at most {MAX_DEPTH} levels deep.")
        )
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise _EarlyAnswer(_error(400, "The body must be a JSON object in UTF-8.")) from None
    if parsed_has_lone_surrogate(text, data):
        raise _EarlyAnswer(
            _error(
                400,
                "The body's strings must be valid Unicode: no unpaired surrogate escapes (\\ud800-\\udfff).",
            )
        )
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _too_large() -> web.Response:
    return _error(413, f"The body must be at most {MAX_BODY_BYTES // 1024} KB.")


def _validated(model: type[_M], data: Any, *, outbound: OutboundPolicy | None = None) -> _M:
    try:
        return model.model_validate(data, context={"outbound": outbound} if outbound else None)
    except ValidationError as exc:
        raise _EarlyAnswer(_invalid(exc)) from None


def _invalid(exc: ValidationError) -> web.Response:
    errors = [
        {
            "field": ".".join(str(part) for part in error["loc"]),
            "message": error["msg"].removeprefix("Value error, "),
        }
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    return web.json_response({"error": "The request is not valid.", "errors": errors}, status=422)
