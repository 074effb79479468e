"""The playground's HTTP side: the page, its static files, the live feed and two posts.

GET  /                          the page
GET  /playground/static/{name}  its stylesheet and script (only those; no listing)
GET  /playground/history        {"messages": [...]}: what a page shows when it (re)opens
GET  /playground/ws             every message delivered from now on, as JSON
POST /playground/send           a line typed in the composer → CommandInvoked | MessagePosted
POST /playground/click          a card button → ButtonClicked

The local user is trusted (auditor and approver), as in `salesbot chat`. The posts only
translate; the runtime decides. Like every adapter they answer after the injected `handle`
has committed, and the replies arrive later over the WebSocket, from the outbox.

The posts require `Content-Type: application/json` and, from a browser, a same-origin
`Origin`: another site open in the same browser must not be able to speak as the rep
(a cross-site form or `text/plain` post would otherwise be a "simple" request).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, web

from adapters.playground.hub import PlaygroundHub
from domain.commands import COMMANDS, command_spec
from domain.errors import CommandError
from domain.inbound import (
    ActionId,
    Actor,
    ButtonClicked,
    CommandInvoked,
    Inbound,
    MessagePosted,
)

log = logging.getLogger(__name__)

Handle = Callable[[Inbound], Awaitable[object]]

REP = Actor(id="playground-rep", name="You (rep)", role="rep", approver=True, auditor=True)
PROSPECT = Actor(id="playground-prospect", name="", role="prospect")
ACTORS = {"rep": REP, "prospect": PROSPECT}
ACTIONS: frozenset[str] = frozenset(get_args(ActionId))

MAX_BODY_BYTES = 64 * 1024
MAX_TEXT_CHARS = 40_000
MAX_ID_CHARS = 200
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


class RequestError(Exception):
    """A request the page should never send: answered with its status and message."""

    def __init__(self, message: str, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra

    def response(self) -> web.Response:
        return web.json_response({"error": str(self), **self.extra}, status=self.status)


def new_conversation_id() -> str:
    return f"playground:{uuid.uuid4().hex[:12]}"


def new_delivery_id() -> str:
    return f"playground:{uuid.uuid4().hex}"


def to_inbound(body: dict[str, Any]) -> tuple[Inbound, bool]:
    """A composer line as an inbound, and whether it is a command. A line starting with
    `/` must name a command from the one command list; anything else is a message."""
    role = body.get("role")
    actor = ACTORS.get(role) if isinstance(role, str) else None
    if actor is None:
        raise RequestError('"role" must be "prospect" or "rep".')
    conversation = _conversation(body.get("conversation"), allow_new=True)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise RequestError('"text" must be a non-empty string.')
    text = text.strip()
    if len(text) > MAX_TEXT_CHARS:
        raise RequestError(f'"text" is longer than {MAX_TEXT_CHARS} characters.', status=413)
    if not text.startswith("/"):
        message = MessagePosted(
            delivery_id=new_delivery_id(),
            conversation_id=conversation,
            actor=actor,
            text=text,
            addressed=True,
        )
        return message, False
    head, _, rest = text.partition(" ")
    try:
        spec = command_spec(head)
    except CommandError as exc:
        raise RequestError(str(exc), commands=[f"/{spec.usage}" for spec in COMMANDS]) from exc
    command = CommandInvoked(
        delivery_id=new_delivery_id(),
        conversation_id=conversation,
        actor=actor,
        command=spec.name,
        args=rest.strip(),
    )
    return command, True


def to_click(body: dict[str, Any]) -> ButtonClicked:
    """A card button. The page says who clicked: the composer's role in a thread, the rep
    in the handoff channel; without a role it is the rep, who may press every button."""
    role = body.get("role", "rep")
    actor = ACTORS.get(role) if isinstance(role, str) else None
    if actor is None:
        raise RequestError('"role" must be "prospect" or "rep".')
    action = body.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        raise RequestError(f'"action" must be one of: {", ".join(sorted(ACTIONS))}.')
    target = body.get("target", "")
    if not isinstance(target, str) or len(target) > MAX_ID_CHARS:
        raise RequestError(f'"target" must be a string of at most {MAX_ID_CHARS} characters.')
    return ButtonClicked(
        delivery_id=new_delivery_id(),
        conversation_id=_conversation(body.get("conversation"), allow_new=False),
        actor=actor,
        action=action,  # type: ignore[arg-type]  # checked against ActionId above
        target=target,
    )


def _conversation(value: object, *, allow_new: bool) -> str:
    if value is None and allow_new:
        return new_conversation_id()
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_CHARS:
        raise RequestError(
            f'"conversation" must be a conversation id (at most {MAX_ID_CHARS} characters)'
            + (", or null for a new one." if allow_new else ".")
        )
    return value


def is_same_origin(request: web.Request) -> bool:
    """Browsers send `Origin` on posts and WebSocket handshakes; tools usually do not."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == request.host.lower()


async def read_json_object(request: web.Request) -> dict[str, Any]:
    if not is_same_origin(request):
        raise RequestError("Cross-origin requests are not accepted.", status=403)
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
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError("The body is not valid JSON.") from exc
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
) -> None:
    """Mount the playground on `app`. `clock` (epoch ms) stamps the lines typed here."""
    sockets: set[web.WebSocketResponse] = set()

    async def page(request: web.Request) -> web.Response:
        return web.Response(
            text=render_page(),
            content_type="text/html",
            charset="utf-8",
            headers={**SECURITY_HEADERS, "Content-Security-Policy": PAGE_CSP},
        )

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        content_type = STATIC_FILES.get(name)
        if content_type is None:
            raise web.HTTPNotFound(text="Not found.")
        body = (STATIC_DIR / name).read_bytes()
        return web.Response(body=body, headers={**SECURITY_HEADERS, "Content-Type": content_type})

    async def history(request: web.Request) -> web.Response:
        return web.json_response({"messages": hub.history()}, headers=SECURITY_HEADERS)

    async def websocket(request: web.Request) -> web.StreamResponse:
        if not is_same_origin(request):
            return web.json_response(
                {"error": "Cross-origin connections are not accepted."}, status=403
            )
        ws = web.WebSocketResponse(heartbeat=30.0)
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

    async def send(request: web.Request) -> web.Response:
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
        )
        return await _handled(handle, inbound, {"conversation": inbound.conversation_id})

    async def click(request: web.Request) -> web.Response:
        try:
            inbound = to_click(await read_json_object(request))
        except RequestError as exc:
            return exc.response()
        return await _handled(handle, inbound, {"conversation": inbound.conversation_id})

    async def close_sockets(app: web.Application) -> None:
        for ws in list(sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    app.on_shutdown.append(close_sockets)
    app.router.add_get("/", page)
    app.router.add_get("/playground/static/{name}", static)
    app.router.add_get("/playground/history", history)
    app.router.add_get("/playground/ws", websocket)
    app.router.add_post("/playground/send", send)
    app.router.add_post("/playground/click", click)


async def _handled(handle: Handle, inbound: Inbound, answer: dict[str, Any]) -> web.Response:
    """Answer after the runtime has committed; a failure is logged, never shown raw."""
    try:
        await handle(inbound)
    except Exception:
        log.exception("playground inbound %s failed", inbound.delivery_id)
        return web.json_response(
            {"error": "The bot could not handle that; the server log has the details."},
            status=500,
        )
    return web.json_response(answer)


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
