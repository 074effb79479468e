"""A fake Bot Framework connector (what a Teams activity's `serviceUrl` points at) on
127.0.0.1, port 0, for pointing the real SDK `ConnectorClient` at.

    async with FakeConnector(members={"29:ada": {"name": "Ada", "aadObjectId": "aad-ada"}}) as c:
        client = ConnectorClient(c.base_url, token="")
        await client.conversations.send_to_conversation(CHANNEL, Activity(type="message", text="hi"))
        assert c.posted(CHANNEL)[0]["text"] == "hi"

It speaks the Connector REST API v3 as the SDK calls it (conversation ids URL-encoded or not):

    POST /v3/conversations/{conv}/activities               send     -> 201 {"id": new id}
    POST /v3/conversations/{conv}/activities/{replyTo}     send     -> 201 {"id": new id}
    PUT  /v3/conversations/{conv}/activities/{id}          update   -> 200 {"id": id} | 404
    POST /v3/conversations                                 create   -> 201 {"id": "a:…", …}
    GET  /v3/conversations/{conv}/members/{member}         member   -> 200 account | 404

Teams' thread scheme is kept: posting to a channel (`19:…@thread.tacv2`) starts a top-level
post whose id N makes the thread `19:…@thread.tacv2;messageid=N` (see `thread_id`); posting
there is a reply. `?isTargetedActivity=true` (a message only its recipient sees) is recorded.
Errors have the service's shape, `{"error": {"code": …, "message": …}}`, and each call can be
scripted to fail, by the names in the table above:

    connector.fail_next("send", status=429, retry_after=3)   # throttled, with Retry-After
    connector.fail_next("send", status=403, code="BotNotInConversationRoster")
    release = connector.hang_next("send")  # stores the activity, answers once released
    connector.drop_next("send")  # stores the activity, then closes the connection

A hung call answers only when the test sets the returned event (or the fake shuts down), so
"posted but the answer never came" needs no sleeps: the client's own timeout fires. Waiting
for the app to post (`wait_for_posts`) wakes on each change instead of polling.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from tests.fakes.local import serve_locally

FIRST_ACTIVITY_ID = 1_700_000_000_001
"""Teams channel post ids are epoch-millisecond-like integers; the fake counts up from here."""

_DEFAULT_CODES = {
    400: "BadArgument",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    412: "PreconditionFailed",
    429: "Throttled",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def thread_id(channel_conversation_id: str, message_id: str) -> str:
    """The conversation id of the thread under top-level post `message_id` of a channel."""
    return f"{channel_conversation_id.split(';', 1)[0]};messageid={message_id}"


MAX_INLINE_IMAGE = 150 * 1024
"""An inline image (a `data:` URI attachment) larger than this is refused, as Teams does."""


@dataclass(frozen=True)
class Call:
    """One HTTP request the fake received. `kind` is the scriptable name ("send", "update",
    "create", "member") or "" for a path it does not serve; `activity_id` is the new id for
    a post, the updated one for an update, the member id for a lookup; `reply_to` is the
    activity a post answered (POST …/activities/{id}); `status` is 0 when the connection
    was dropped instead of answered. The token itself is never kept, only whether an
    `Authorization` header came along."""

    method: str
    path: str
    kind: str
    conversation_id: str | None
    activity_id: str | None
    status: int
    targeted: bool = False
    authorization: bool = False
    reply_to: str | None = None
    body: Any = None


@dataclass(frozen=True)
class Update:
    """One accepted PUT: the new version of an activity."""

    conversation_id: str
    activity_id: str
    activity: dict[str, Any]


@dataclass(frozen=True)
class Creation:
    """One accepted POST /v3/conversations: the conversation it answered with, for whom."""

    conversation_id: str
    member_id: str
    tenant_id: str
    parameters: dict[str, Any]


@dataclass
class _Fault:
    status: int = 0
    code: str = ""
    message: str = ""
    retry_after: int | None = None
    hang: asyncio.Event | None = None
    drop: bool = False


@dataclass
class _Stored:
    conversation_id: str
    activity: dict[str, Any]
    targeted: bool


@dataclass
class _Outcome:
    """What a handler decided: the answer, and what the Call record should say."""

    status: int
    body: dict[str, Any]
    conversation_id: str | None = None
    activity_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


class ConnectorError(Exception):
    """An answer in the service's error shape, raised by the handlers."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class FakeConnector:
    def __init__(
        self,
        *,
        token: str | None = None,
        members: Mapping[str, Mapping[str, Any]] | None = None,
        tenant_id: str = "tenant-0001",
    ) -> None:
        """`token`, when set, is the only bearer token accepted (others get 401); when None
        any or no `Authorization` header passes. `members` is the roster the member lookup
        answers from, keyed by a 29: id or an AAD object id (see `add_member`)."""
        self.token = token
        self.tenant_id = tenant_id
        self.calls: list[Call] = []
        self.peers: list[tuple[str, object]] = []
        """(kind, the client's address and port) per request: which connection carried it,
        so a test can tell a kept-alive connection from a new one per call."""
        self.updates: list[Update] = []
        self.creations: list[Creation] = []
        self.base_url = ""
        self._members: list[dict[str, Any]] = []
        for key, fields in (members or {}).items():
            self.add_member(key, **dict(fields))
        self._activities: dict[str, _Stored] = {}  # by activity id, in post order
        self._faults: dict[str, deque[_Fault]] = {}
        self._hangs: list[asyncio.Event] = []
        self._changed = asyncio.Event()
        self._seq = FIRST_ACTIVITY_ID - 1
        self._runner: web.AppRunner | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> FakeConnector:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner, port = await serve_locally(app)
        self.base_url = f"http://127.0.0.1:{port}/"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for event in self._hangs:  # let hung handlers finish, or shutdown would wait for them
            event.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- scripting -------------------------------------------------------------------------

    def fail_next(
        self,
        kind: str,
        *,
        status: int,
        code: str | None = None,
        message: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` calls of `kind` ("send", "update", "create", "member") fail
        without effect, answering `status` with `{"error": {"code", "message"}}` (the code
        defaults to the usual one for the status) and `Retry-After` when `retry_after` is
        given (Teams does not always send one on 429)."""
        _check_kind(kind)
        fault = _Fault(
            status=status,
            code=code or _DEFAULT_CODES.get(status, "ServiceError"),
            message=message or f"Scripted failure ({status}).",
            retry_after=retry_after,
        )
        self._faults.setdefault(kind, deque()).extend(copy.copy(fault) for _ in range(times))

    def hang_next(self, kind: str, *, times: int = 1) -> asyncio.Event:
        """The next `times` calls of `kind` take effect (the activity is stored) but answer
        only once the returned event is set: the client sees a timeout."""
        _check_kind(kind)
        event = asyncio.Event()
        self._hangs.append(event)
        self._faults.setdefault(kind, deque()).extend(_Fault(hang=event) for _ in range(times))
        return event

    def drop_next(self, kind: str, *, times: int = 1) -> None:
        """The next `times` calls of `kind` take effect (the activity is stored), then the
        connection is closed without an answer: the client sees a disconnect."""
        _check_kind(kind)
        self._faults.setdefault(kind, deque()).extend(_Fault(drop=True) for _ in range(times))

    def add_member(self, key: str, **fields: Any) -> None:
        """A person the member lookup knows, found by its 29: `id` or its `aadObjectId`.
        `key` fills whichever of the two `fields` lacks (a "29:" key is the id); `fields` use
        the wire names (`name`, `email`, `userPrincipalName`, `tenantId`, `userRole` —
        "user", "guest" or "anonymous", as Teams reports it — and anything else)."""
        fields = dict(fields)
        fields.setdefault("id" if key.startswith("29:") else "aadObjectId", key)
        aad = str(fields.get("aadObjectId") or f"aad-{len(self._members) + 1:04d}")
        short = str(fields.get("name") or aad).split()[0].lower()
        email = fields.get("email") or f"{short}@example.com"
        self._members.append(
            {
                "id": f"29:fake-{aad}",
                "name": short,
                "aadObjectId": aad,
                "email": email,
                "userPrincipalName": email,
                "tenantId": self.tenant_id,
                "userRole": "user",
                **fields,
            }
        )

    # --- inspection ------------------------------------------------------------------------

    def posted(self, conversation_id: str, *, targeted: bool | None = None) -> list[dict[str, Any]]:
        """What was posted to `conversation_id` (exactly that id: a thread's replies are under
        `thread_id(channel, root)`), oldest first, each with its assigned "id", as it stands
        now (after any updates); copies. `targeted` filters private / public messages."""
        return [
            copy.deepcopy(stored.activity)
            for stored in self._activities.values()
            if stored.conversation_id == conversation_id
            and (targeted is None or stored.targeted == targeted)
        ]

    def activity(self, conversation_id: str, activity_id: str) -> dict[str, Any] | None:
        """The latest version of one activity, looked up as an update would find it."""
        stored = self._find(conversation_id, activity_id)
        return None if stored is None else copy.deepcopy(stored.activity)

    def is_targeted(self, activity_id: str) -> bool:
        stored = self._activities.get(activity_id)
        return stored is not None and stored.targeted

    def all_posts(self) -> list[tuple[str, dict[str, Any]]]:
        """Every stored activity as (conversation id, activity), in post order."""
        return [(s.conversation_id, copy.deepcopy(s.activity)) for s in self._activities.values()]

    def calls_of(self, kind: str) -> list[Call]:
        return [call for call in self.calls if call.kind == kind]

    async def wait_for_posts(
        self, conversation_id: str, n: int, *, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Return `posted(conversation_id)` once it has at least `n` activities; wakes on each
        post, never polls. TimeoutError says what was posted instead."""
        await self._wait_until(
            lambda: len(self.posted(conversation_id)) >= n,
            timeout,
            lambda: (
                f"expected {n} post(s) in {conversation_id!r}, "
                f"got {len(self.posted(conversation_id))}"
            ),
        )
        return self.posted(conversation_id)

    async def wait_for_updates(self, n: int, *, timeout: float = 5.0) -> list[Update]:
        """Return `updates` once there are at least `n`; wakes on each change."""
        await self._wait_until(
            lambda: len(self.updates) >= n,
            timeout,
            lambda: f"expected {n} update(s), got {len(self.updates)}",
        )
        return list(self.updates)

    async def _wait_until(
        self, done: Callable[[], bool], timeout: float, shortfall: Callable[[], str]
    ) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not done():
                    await self._changed.wait()
        except TimeoutError:
            posts = "\n".join(
                f"  {conv}: {act.get('id')} {act.get('type')} {_summary(act)}"
                for conv, act in self.all_posts()
            )
            raise TimeoutError(
                f"{shortfall()} after {timeout}s; everything posted:\n{posts or '  (nothing)'}"
            ) from None

    def _notify(self) -> None:
        """Wake every waiter (each re-checks its condition) and arm a fresh event."""
        self._changed.set()
        self._changed = asyncio.Event()

    # --- the HTTP side ---------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw_path = request.rel_url.raw_path
        # Split before decoding, so an encoded conversation id stays one segment.
        parts = [unquote(p) for p in raw_path.strip("/").split("/")]
        kind, conversation_id, activity_id = _route(request.method, parts)
        transport = request.transport
        self.peers.append((kind, transport.get_extra_info("peername") if transport else None))
        targeted = request.query.get("isTargetedActivity", "").lower() == "true"
        header = request.headers.get("Authorization")
        body: Any = None
        if request.can_read_body:
            text = await request.text()
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = text

        def record(status: int, conv: str | None = None, act: str | None = None) -> None:
            self.calls.append(
                Call(
                    method=request.method,
                    path=raw_path,
                    kind=kind,
                    conversation_id=conv if conv is not None else conversation_id,
                    activity_id=act if act is not None or kind == "send" else activity_id,
                    status=status,
                    targeted=targeted,
                    authorization=header is not None,
                    reply_to=activity_id if kind == "send" else None,
                    body=copy.deepcopy(body),
                )
            )
            self._notify()

        if self.token is not None and header != f"Bearer {self.token}":
            record(401)
            return _error(401, "Unauthorized", "Authorization has been denied for this request.")
        if not kind:
            record(404)
            return _error(404, "NotFound", f"{request.method} {raw_path} is not served here.")

        queue = self._faults.get(kind)
        fault = queue.popleft() if queue else None
        if fault is not None and fault.status:
            record(fault.status)
            headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            return _error(fault.status, fault.code, fault.message, headers)

        try:
            outcome = self._dispatch(kind, conversation_id, activity_id, body, targeted)
        except ConnectorError as error:
            record(error.status)
            return _error(error.status, error.code, error.message)

        if fault is not None and fault.drop:
            record(0, outcome.conversation_id, outcome.activity_id)
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable  # never reaches the client: the socket is gone
        record(outcome.status, outcome.conversation_id, outcome.activity_id)
        if fault is not None and fault.hang is not None:
            await fault.hang.wait()
        return web.json_response(outcome.body, status=outcome.status, headers=outcome.headers)

    def _dispatch(
        self,
        kind: str,
        conversation_id: str | None,
        activity_id: str | None,
        body: Any,
        targeted: bool,
    ) -> _Outcome:
        if kind == "member":
            return self._member(str(activity_id))
        if not isinstance(body, dict):
            raise ConnectorError(400, "BadSyntax", "The request body must be a JSON object.")
        if kind == "create":
            return self._create(body)
        if kind == "update":
            return self._update(str(conversation_id), str(activity_id), body)
        return self._send(str(conversation_id), body, targeted)

    # --- the operations --------------------------------------------------------------------

    def _send(self, conversation_id: str, activity: dict[str, Any], targeted: bool) -> _Outcome:
        if not conversation_id:
            raise ConnectorError(400, "BadArgument", "Conversation id is required.")
        if targeted and not (activity.get("recipient") or {}).get("id"):
            raise ConnectorError(
                400, "BadArgument", "A targeted activity needs the recipient it is meant for."
            )
        for attachment in activity.get("attachments") or []:
            url = attachment.get("contentUrl") if isinstance(attachment, dict) else None
            if isinstance(url, str) and url.startswith("data:") and len(url) > MAX_INLINE_IMAGE:
                raise ConnectorError(413, "MessageSizeTooBig", "The inline image is too large.")
        new_id = self._store(conversation_id, activity, targeted)
        return _Outcome(201, {"id": new_id}, conversation_id, new_id)

    def _update(self, conversation_id: str, activity_id: str, activity: dict[str, Any]) -> _Outcome:
        stored = self._find(conversation_id, activity_id)
        if stored is None:
            raise ConnectorError(
                404, "ActivityNotFoundInConversation", "The activity was not found."
            )
        stored.activity = {**copy.deepcopy(activity), "id": activity_id}
        self.updates.append(Update(conversation_id, activity_id, copy.deepcopy(stored.activity)))
        return _Outcome(200, {"id": activity_id})

    def _create(self, parameters: dict[str, Any]) -> _Outcome:
        members = parameters.get("members") or []
        if parameters.get("isGroup"):
            raise ConnectorError(400, "BadArgument", "The fake creates only 1:1 conversations.")
        if len(members) != 1 or not isinstance(members[0], dict) or not members[0].get("id"):
            raise ConnectorError(400, "BadArgument", "A 1:1 conversation needs one member.")
        channel_data = parameters.get("channelData") or {}
        tenant = parameters.get("tenantId") or (channel_data.get("tenant") or {}).get("id")
        if not tenant:
            raise ConnectorError(400, "BadArgument", "Tenant id is required.")
        requested = str(members[0]["id"])
        known = self._member_record(requested)
        member_id = known["id"] if known is not None else requested
        digest = hashlib.sha256(f"{tenant}|{member_id}".encode()).digest()[:24]
        conversation_id = "a:1" + base64.urlsafe_b64encode(digest).decode().rstrip("=")
        self.creations.append(
            Creation(conversation_id, member_id, str(tenant), copy.deepcopy(parameters))
        )
        answer: dict[str, Any] = {"id": conversation_id, "serviceUrl": self.base_url}
        activity = parameters.get("activity")
        new_id = None
        if isinstance(activity, dict):
            new_id = self._store(conversation_id, activity, targeted=False)
            answer["activityId"] = new_id
        return _Outcome(201, answer, conversation_id, new_id)

    def _member(self, member_id: str) -> _Outcome:
        member = self._member_record(member_id)
        if member is None:
            raise ConnectorError(
                404, "MemberNotFoundInConversation", "Member not found in conversation."
            )
        return _Outcome(200, copy.deepcopy(member))

    def _member_record(self, member_id: str) -> dict[str, Any] | None:
        for member in self._members:
            if member_id in (member["id"], member["aadObjectId"]):
                return member
        return None

    def _store(self, conversation_id: str, activity: dict[str, Any], targeted: bool) -> str:
        self._seq += 1
        new_id = str(self._seq)
        stored = {**copy.deepcopy(activity), "id": new_id}
        self._activities[new_id] = _Stored(conversation_id, stored, targeted)
        return new_id

    def _find(self, conversation_id: str, activity_id: str) -> _Stored | None:
        """An activity in this conversation or in the same channel (a top-level post can be
        addressed through its thread's id, as Teams allows)."""
        stored = self._activities.get(activity_id)
        if stored is None:
            return None
        same_channel = stored.conversation_id.split(";")[0] == conversation_id.split(";")[0]
        return stored if same_channel else None


_KINDS = ("send", "update", "create", "member")


def _check_kind(kind: str) -> None:
    if kind not in _KINDS:
        raise ValueError(f"unknown call {kind!r}; one of {', '.join(_KINDS)}")


def _route(method: str, parts: list[str]) -> tuple[str, str | None, str | None]:
    """(kind, conversation id, activity or member id) for a decoded path, or ("", …) when
    the fake does not serve it."""
    if len(parts) < 2 or parts[:2] != ["v3", "conversations"]:
        return "", None, None
    rest = parts[2:]
    if not rest and method == "POST":
        return "create", None, None
    if len(rest) == 2 and rest[1] == "activities" and method == "POST":
        return "send", rest[0], None
    if len(rest) == 3 and rest[1] == "activities":
        if method == "POST":
            return "send", rest[0], rest[2]  # reply to an activity: a post all the same
        if method == "PUT":
            return "update", rest[0], rest[2]
    if len(rest) == 3 and rest[1] == "members" and method == "GET":
        return "member", rest[0], rest[2]
    return "", rest[0] if rest else None, None


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


def _summary(activity: dict[str, Any]) -> str:
    text = activity.get("text")
    if text:
        return repr(text if len(text) <= 60 else text[:57] + "...")
    attachments = activity.get("attachments") or []
    return f"({len(attachments)} attachment(s))" if attachments else ""
