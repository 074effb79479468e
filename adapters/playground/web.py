"""The playground's HTTP side: the page, its static files, the live feed and two posts.

GET  /                          the page (`/?token=…` once, when a token is required)
GET  /playground/static/{name}  its stylesheet and script (only those; no listing)
GET  /playground/history        {"messages": [...]}: what a page shows when it (re)opens,
                                every card as it stands (rebuilt from the store at start)
GET  /playground/tickets        the open tickets, newest first, with their age and holder
                                (`desk`; read from the store at each request)
GET  /playground/ws             every message delivered from now on, as JSON
POST /playground/send           a line typed in the composer → CommandInvoked | MessagePosted
POST /playground/click          a card button (and the card's text box, if any) → ButtonClicked

Nobody logs in: the page says who acts — the prospect, the rep or the manager (both
trusted: approvers and auditors), as in `salesbot chat`. So every route first passes
`PlaygroundAccess` (loopback `Host` only, or the token; a same-origin `Origin`). The posts
only translate; the runtime decides. Like every adapter they answer after the injected
`handle` has committed, and the replies arrive later over the WebSocket, from the outbox.

The posts require `Content-Type: application/json` (a cross-site form or `text/plain` post
would otherwise be a "simple" request), and everything in them is checked before an
inbound is built — size, nesting, types, Unicode — so bad input is a 4xx with a one-line
JSON reason and never reaches the store. A click must carry the signature its button was
delivered with; one that does not is still handed on, marked (`binding`), for the domain
to record and refuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import re
import unicodedata
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, get_args

from aiohttp import WSCloseCode, web
from pydantic import ValidationError

from adapters.action_binding import ActionKey, Verdict
from adapters.json_text import nests_deeper_than
from adapters.playground.access import COOKIE, AccessDeniedError, PlaygroundAccess
from adapters.playground.desk import TicketSource, desk_json
from adapters.playground.hub import SIGNED_AS, PlaygroundHub
from adapters.playground.identities import IDENTITIES, MANAGER, PROSPECT, REP, ROLE_CHOICES
from adapters.playground.ids import SCHEME
from domain.commands import COMMANDS, command_spec
from domain.errors import CommandError
from domain.inbound import (
    MAX_MESSAGE_CHARS,
    NOTE_MAX_CHARS,
    ActionId,
    Actor,
    ButtonClicked,
    ClickBinding,
    CommandInvoked,
    Inbound,
    MessagePosted,
)

__all__ = ["MANAGER", "PROSPECT", "REP", "add_routes", "to_click", "to_inbound"]

log = logging.getLogger(__name__)

Handle = Callable[[Inbound], Awaitable[object]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ACTIONS: frozenset[str] = frozenset(get_args(ActionId))

MAX_BODY_BYTES = 64 * 1024
MAX_NESTING = 16
"""The posts are flat objects; deeper JSON is refused before it is parsed."""
MAX_TEXT_CHARS = MAX_MESSAGE_CHARS
MAX_ID_CHARS = 200
MAX_SIGNATURE_CHARS = 100
MAX_WS_MESSAGE_BYTES = 4096
"""The page only listens on its socket; anything larger sent to it closes the socket."""
STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {
    "playground.css": "text/css; charset=utf-8",
    "playground.js": "text/javascript; charset=utf-8",
}
COMMANDS_PLACEHOLDER = "<!-- commands -->"
USAGE_PLACEHOLDER = "<!-- command usage -->"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
}
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SIGNED_IN_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<meta http-equiv="refresh" content="0; url=/"><title>salesbot playground</title>'
    '</head><body><p>Token accepted. <a href="/">Open the playground</a>.</p></body></html>'
)
"""The answer to `/?token=…`: the cookie is set and the page moves on to `/`, so the
token leaves the address bar. A same-page refresh rather than a 3xx, so the cookie
(SameSite=Strict) is sent even when the link was opened from another site."""


class RequestError(Exception):
    """A request the page should never send: answered with its status and message."""

    def __init__(self, message: str, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra

    def response(self) -> web.Response:
        return web.json_response(
            {"error": str(self), **self.extra}, status=self.status, headers=SECURITY_HEADERS
        )


def new_conversation_id() -> str:
    return SCHEME.conversation_id(uuid.uuid4().hex[:12])


def new_delivery_id() -> str:
    return SCHEME.delivery_id(uuid.uuid4().hex)


def _actor(body: dict[str, Any], default: str | None = None) -> Actor:
    role = body.get("role", default)
    actor = IDENTITIES.get(role) if isinstance(role, str) else None
    if actor is None:
        raise RequestError(f'"role" must be {ROLE_CHOICES}.')
    return actor


def to_inbound(body: dict[str, Any]) -> tuple[Inbound, bool]:
    """A composer line as an inbound, and whether it is a command. A line starting with
    `/` must name a command from the one command list; anything else is a message — from
    the rep or the manager, words in the prospect's conversation (the prospect reads them),
    which under the policy's `[handoff]` take the conversation over."""
    actor = _actor(body)
    conversation = _conversation(body.get("conversation"), allow_new=True)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise RequestError('"text" must be a non-empty string.')
    text = text.strip()
    if len(text) > MAX_TEXT_CHARS:
        raise RequestError(f'"text" is longer than {MAX_TEXT_CHARS} characters.', status=413)
    _check_text(text, '"text"')
    if not text.startswith("/"):
        return _built(
            MessagePosted,
            delivery_id=new_delivery_id(),
            conversation_id=conversation,
            actor=actor,
            text=text,
            # The rep and the manager speak in the prospect's conversation (as in a shared
            # thread), not to the bot: their commands start with "/".
            addressed=actor.role != "rep",
        ), False
    head, _, rest = text.partition(" ")
    try:
        spec = command_spec(head)
    except CommandError as exc:
        raise RequestError(str(exc), commands=[f"/{spec.usage}" for spec in COMMANDS]) from exc
    return _built(
        CommandInvoked,
        delivery_id=new_delivery_id(),
        conversation_id=conversation,
        actor=actor,
        command=spec.name,
        args=rest.strip(),
    ), True


_BINDING_OF: dict[Verdict, ClickBinding] = {
    "ok": "ok",
    "retired": "unsigned",
    "bad": "bad_signature",
}


def to_click(body: dict[str, Any], action_key: ActionKey) -> ButtonClicked:
    """A card button. The page says who clicked (the chooser's identity; without a role it
    is the rep) and sends back the signature the button was delivered with. A click
    without one is "unsigned" (a page from before buttons were signed); one whose
    signature does not cover exactly this conversation, action, target, card and nonce is
    "bad_signature". Either way it is recorded in the conversation posted, by the domain."""
    actor = _actor(body, default="rep")
    action = body.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        raise RequestError(f'"action" must be one of: {", ".join(sorted(ACTIONS))}.')
    conversation = _conversation(body.get("conversation"), allow_new=False)
    target = _short_string(body, "target")
    ref = _short_string(body, "ref")
    nonce = _short_string(body, "nonce")
    note = _note(body)
    signature = body.get("signature")
    binding: ClickBinding
    if signature is None:
        binding = "unsigned"
    elif not isinstance(signature, str) or len(signature) > MAX_SIGNATURE_CHARS:
        raise RequestError(
            f'"signature" must be a string of at most {MAX_SIGNATURE_CHARS} characters.'
        )
    else:
        verdict = action_key.verdict(signature, SIGNED_AS, conversation, action, target, ref, nonce)
        # A card signed before a rotation is ours but out of date, as an unsigned one is.
        binding = _BINDING_OF[verdict]
    return _built(
        ButtonClicked,
        delivery_id=new_delivery_id(),
        conversation_id=conversation,
        actor=actor,
        action=action,
        target=target,
        binding=binding,
        note=note,
    )


def _note(body: dict[str, Any]) -> str:
    """What the clicker typed in the card's text box (absent or "" when it has none)."""
    value = body.get("note", "")
    if not isinstance(value, str) or len(value) > NOTE_MAX_CHARS:
        raise RequestError(f'"note" must be a string of at most {NOTE_MAX_CHARS} characters.')
    _check_text(value, '"note"')
    return value.strip()


_InboundT = TypeVar("_InboundT", MessagePosted, CommandInvoked, ButtonClicked)


def _built(kind: type[_InboundT], **fields: Any) -> _InboundT:
    """The inbound, or a 4xx naming the field the domain refuses (never a 500 later)."""
    try:
        return kind(**fields)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "body"
        raise RequestError(f'"{where}": {error["msg"]}.', status=422) from None


def _check_text(text: str, name: str) -> None:
    """Refuse what cannot be stored or shown: lone surrogates (not Unicode text at all) and
    control characters other than tab and line breaks."""
    for char in text:
        category = unicodedata.category(char)
        if category == "Cs":
            raise RequestError(f"{name} is not valid Unicode (a lone surrogate).")
        if category == "Cc" and char not in "\t\n\r":
            raise RequestError(f"{name} contains a control character (U+{ord(char):04X}).")


def _is_id(value: str) -> bool:
    return bool(value.strip()) and len(value) <= MAX_ID_CHARS and value.isprintable()


def _short_string(body: dict[str, Any], name: str) -> str:
    value = body.get(name, "")
    if not isinstance(value, str) or (value and not _is_id(value)):
        raise RequestError(
            f'"{name}" must be a string of at most {MAX_ID_CHARS} printable characters.'
        )
    return value


def _conversation(value: object, *, allow_new: bool) -> str:
    if value is None and allow_new:
        return new_conversation_id()
    if not isinstance(value, str) or not _is_id(value):
        raise RequestError(
            f'"conversation" must be a conversation id (at most {MAX_ID_CHARS} printable '
            "characters)" + (", or null for a new one." if allow_new else ".")
        )
    return value


async def read_json_object(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise RequestError("Send a JSON body with Content-Type: application/json.", status=415)
    too_large = RequestError(f"The body is larger than {MAX_BODY_BYTES // 1024} KB.", status=413)
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large
    raw = bytearray()
    # Read it ourselves: the application's own limit is larger (Slack's bodies share it).
    while chunk := await request.content.read(MAX_BODY_BYTES + 1 - len(raw)):
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise too_large
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError("The body is not valid JSON (UTF-8).") from exc
    if nests_deeper_than(text, MAX_NESTING):
        raise RequestError(f"The body nests deeper than {MAX_NESTING} levels.")
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RequestError("The body is not valid JSON (UTF-8).") from exc
    if not isinstance(body, dict):
        raise RequestError("The body must be a JSON object.")
    return body


def render_page() -> str:
    """The page, with the commands from the one command list (escaped)."""
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    names = ", ".join(f"<code>/{html.escape(spec.name)}</code>" for spec in COMMANDS)
    usage = "".join(
        f"<li><code>/{html.escape(spec.usage)}</code> — {html.escape(spec.summary)}</li>"
        for spec in COMMANDS
    )
    return page.replace(COMMANDS_PLACEHOLDER, names).replace(USAGE_PLACEHOLDER, usage)


def add_routes(
    app: web.Application,
    hub: PlaygroundHub,
    handle: Handle,
    *,
    clock: Callable[[], int],
    action_key: ActionKey,
    access: PlaygroundAccess | None = None,
    tickets: TicketSource | None = None,
) -> None:
    """Mount the playground on `app`. `clock` (epoch ms) stamps the lines typed here and
    ages the tickets; `action_key` checks clicks (the hub's, which signed the buttons);
    `access` is the mode decided at start (default: local only); `tickets` reads the open
    tickets from the store (none without it)."""
    gate = access or PlaygroundAccess()
    sockets: set[web.WebSocketResponse] = set()

    def guarded(handler: Handler) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            try:
                gate.check(request)
            except AccessDeniedError as exc:
                return _denied(exc)
            return await handler(request)

        return checked

    async def page(request: web.Request) -> web.StreamResponse:
        if gate.token_required and "token" in request.query:
            return sign_in(request)
        return await guarded(show_page)(request)

    def sign_in(request: web.Request) -> web.StreamResponse:
        """`/?token=…`: the token for a cookie, then on to `/` without it in the URL."""
        headers = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
        try:
            gate.check(request, with_token=False)
            if not gate.token_matches(request.query.get("token", "")):
                raise AccessDeniedError("That is not this playground's token.", 401)
        except AccessDeniedError as exc:
            return _denied(exc)
        response = web.Response(
            text=SIGNED_IN_PAGE,
            content_type="text/html",
            charset="utf-8",
            headers={**headers, "Content-Security-Policy": PAGE_CSP},
        )
        response.set_cookie(
            COOKIE,
            gate.cookie_value(),
            path="/",
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
        return response

    async def show_page(request: web.Request) -> web.StreamResponse:
        return web.Response(
            text=render_page(),
            content_type="text/html",
            charset="utf-8",
            headers={**SECURITY_HEADERS, "Content-Security-Policy": PAGE_CSP},
        )

    async def static(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        content_type = STATIC_FILES.get(name)
        if content_type is None:
            return web.json_response({"error": "Not found."}, status=404, headers=SECURITY_HEADERS)
        body = (STATIC_DIR / name).read_bytes()
        return web.Response(body=body, headers={**SECURITY_HEADERS, "Content-Type": content_type})

    async def history(request: web.Request) -> web.StreamResponse:
        return web.json_response({"messages": hub.history()}, headers=SECURITY_HEADERS)

    async def open_tickets(request: web.Request) -> web.StreamResponse:
        found = await tickets() if tickets is not None else ()
        return web.json_response(desk_json(found, hub, clock()), headers=SECURITY_HEADERS)

    async def websocket(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_WS_MESSAGE_BYTES)
        if not _is_handshake(request, ws):
            return web.json_response(
                {"error": "This is a WebSocket: connect with a WebSocket handshake."},
                status=400,
                headers=SECURITY_HEADERS,
            )
        # Subscribe before the handshake completes, so nothing sent after the client's
        # connect returns can be missed.
        queue = hub.subscribe()
        try:
            await ws.prepare(request)
            sockets.add(ws)
            writer = asyncio.create_task(_push(ws, queue))
            try:
                async for _message in ws:
                    pass  # the page only listens; its actions are posts
            finally:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
        finally:
            hub.unsubscribe(queue)
            sockets.discard(ws)
        return ws

    async def send(request: web.Request) -> web.StreamResponse:
        try:
            body = await read_json_object(request)
            inbound, is_command = to_inbound(body)
        except RequestError as exc:
            return exc.response()
        hub.post_typed(
            conversation=inbound.conversation_id,
            actor=inbound.actor,
            text=str(body["text"]).strip(),
            command=is_command,
            at=clock(),
            delivery_id=inbound.delivery_id,
        )
        return await _handled(handle, inbound, {"conversation": inbound.conversation_id})

    async def click(request: web.Request) -> web.StreamResponse:
        try:
            inbound = to_click(await read_json_object(request), action_key)
        except RequestError as exc:
            return exc.response()
        return await _handled(handle, inbound, {"conversation": inbound.conversation_id})

    async def close_sockets(app: web.Application) -> None:
        for ws in list(sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    app.on_shutdown.append(close_sockets)
    app.router.add_get("/", page)
    app.router.add_get("/playground/static/{name}", guarded(static))
    app.router.add_get("/playground/history", guarded(history))
    app.router.add_get("/playground/tickets", guarded(open_tickets))
    app.router.add_get("/playground/ws", guarded(websocket))
    app.router.add_post("/playground/send", guarded(send))
    app.router.add_post("/playground/click", guarded(click))


WS_KEY = re.compile(r"[A-Za-z0-9+/]{22}==")


def _is_handshake(request: web.Request, ws: web.WebSocketResponse) -> bool:
    """A well-formed WebSocket handshake. The key's format is checked first: aiohttp's own
    check raises a bare ValueError (a 500) on a key that is not ASCII."""
    if not WS_KEY.fullmatch(request.headers.get("Sec-WebSocket-Key", "").strip()):
        return False
    try:
        return ws.can_prepare(request).ok
    except ValueError:
        return False


def _denied(exc: AccessDeniedError) -> web.Response:
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="salesbot playground"'
    return web.json_response({"error": str(exc)}, status=exc.status, headers=headers)


async def _handled(handle: Handle, inbound: Inbound, answer: dict[str, Any]) -> web.Response:
    """Answer after the runtime has committed. Everything a request can get wrong was
    refused (4xx) before this point, so a failure here is the server's own (the store):
    logged, answered 500 in one line, never shown raw."""
    try:
        await handle(inbound)
    except Exception:
        log.exception("playground inbound %s failed", inbound.delivery_id)
        return web.json_response(
            {"error": "The bot could not handle that; the server log has the details."},
            status=500,
            headers=SECURITY_HEADERS,
        )
    return web.json_response(answer, headers=SECURITY_HEADERS)


async def _push(ws: web.WebSocketResponse, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
    while True:
        message = await queue.get()
        if message is None:
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"reconnect")
            return
        try:
            await ws.send_json(message)
        except ConnectionError:
            return
