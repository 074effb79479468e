"""A fake Slack Web API on 127.0.0.1, port 0, for pointing the real SDK client at.

    async with FakeSlackApi(token="xoxb-test") as api:
        client = AsyncWebClient(token="xoxb-test", base_url=api.base_url, retry_handlers=[])
        ...
        assert api.messages("C1")[0]["text"] == "hello"

It speaks the wire format the SDK uses (JSON or form bodies, query strings for GET methods,
`Authorization: Bearer`), keeps what was posted per channel, and can be scripted to fail:

    api.fail_next("chat.postMessage", status=429, retry_after=7)   # rate limited
    api.fail_next("chat.postMessage", status=500)                  # Slack having a bad day
    api.fail_next("chat.postMessage", error="channel_not_found")   # ok:false, HTTP 200
    release = api.hang_next("chat.postMessage")  # stores the message, answers once released
    api.drop_next("chat.postMessage")  # stores the message, then closes the connection

A hung call answers only when the test sets the returned event (or the fake shuts down), so a
"posted but the answer never came" scenario needs no sleeps: the client's own timeout fires.
Methods it does not know answer `unknown_method`; `api.on(method, handler)` adds one.

Channels the bot is not a member of answer `not_in_channel` to chat.* and history calls:

    api.not_a_member("C0ELSEWHERE")

The bot token can be revoked (the app uninstalled): every Web API call with it answers
`{"ok": false, "error": "token_revoked"}` until it is restored (a reinstall):

    api.revoke_token()
    api.restore_token()

Files arrive as `files_upload_v2` sends them: `files.getUploadURLExternal` (a file id and an
upload URL on this server), a POST of the bytes to that URL (its length must match), then
`files.completeUploadExternal`, which shares the uploaded files in `channel_id` (and
`thread_ts`), or with the users and channels listed in `channels` (a user id: the bot's DM
with them, kept as channel "D" + the user id), as one message with `files` and the
`initial_comment` as its text:

    api.files()                         # [{"id", "name", "title", "alt_txt", "content", …}]
    api.messages("DU0REP")              # the DM, with the file's message

More workspaces (the OAuth install flow): `grant` makes a code that `oauth.v2.access` (with
the fake's `client_id` and `client_secret` as HTTP Basic credentials, as slack_sdk sends
them) exchanges once for a new workspace's bot token; that token's calls then act as its
workspace (`auth.test` names it, posted messages carry its team):

    api.grant("code-1", token="xoxb-globex", team_id="T0002", team="Globex")
    api.add_workspace("xoxb-initech", team_id="T0003")   # installed already
    api.revoke_token(token="xoxb-globex")

Slash commands' response URLs live on the same server, as Slack's do on hooks.slack.com:
each posts into its channel (an ephemeral message for its user, or `in_channel` a message
everyone sees) — whether or not the bot is a member — for 5 uses, and records what it got:

    url = api.response_url("C0ELSEWHERE", "U0REP")
    api.response_posts(url)             # [{"response_type": "ephemeral", "text": …}, …]
    api.expire(url)                     # answers 404 expired_url from now on
    api.response_url(c, u, redirect_to="http://127.0.0.1:1/")   # answers 302
    api.fail_next("response_url", status=500)
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from tests.fakes.local import serve_locally

Handler = Callable[[dict[str, Any]], dict[str, Any]]

_JSON_FIELDS = ("blocks", "attachments", "metadata", "view", "files")


@dataclass(frozen=True)
class Call:
    """One HTTP request the fake received (the token is never kept); status 0 when the
    connection was dropped instead of answered."""

    method: str
    params: dict[str, Any]
    status: int


@dataclass
class _ResponseUrl:
    channel: str
    user: str
    redirect_to: str | None = None
    uses: int = 0
    expired: bool = False


MAX_RESPONSE_URL_USES = 5


@dataclass(frozen=True)
class Workspace:
    """A workspace a bot token acts for."""

    team_id: str
    team: str
    bot_user_id: str
    bot_id: str


@dataclass(frozen=True)
class _Grant:
    token: str
    workspace: Workspace
    installer: str
    scope: str


@dataclass
class _Fault:
    status: int = 200
    error: str | None = None
    retry_after: int | None = None
    hang: asyncio.Event | None = None
    drop: bool = False


class FakeSlackApi:
    def __init__(
        self,
        *,
        token: str = "xoxb-test",
        app_token: str = "xapp-test",
        team_id: str = "T0001",
        team: str = "Acme",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        app_id: str = "A0001",
        users: Mapping[str, Mapping[str, Any]] | None = None,
        channels: Iterable[str] | None = None,
        client_id: str = "1111.2222",
        client_secret: str = "fake-client-secret",
    ) -> None:
        """`channels`, when given, are the only channels that exist (others answer
        `channel_not_found`); by default every channel exists."""
        self.token = token
        self.client_id = client_id
        self.client_secret = client_secret
        self._workspaces: dict[str, Workspace] = {}
        self._grants: dict[str, _Grant] = {}
        self._revoked_tokens: dict[str, str] = {}
        self._caller: Workspace | None = None
        self.app_token = app_token
        self.team_id = team_id
        # Socket Mode: the app opens a WebSocket (apps.connections.open) and acks envelopes.
        self.socket_connected = asyncio.Event()
        self._sockets: list[web.WebSocketResponse] = []
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ws_url = ""
        self.team = team
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.calls: list[Call] = []
        self.peers: list[tuple[str, object]] = []
        """(method, the client's address and port) per Web API request: which connection
        carried it, so a test can tell a kept-alive connection from a new one per call."""
        self.views: list[dict[str, Any]] = []
        self._users: dict[str, dict[str, Any]] = {}
        for user_id, fields in (users or {}).items():
            self.add_user(user_id, **dict(fields))
        self._channels = set(channels) if channels is not None else None
        self._outside: set[str] = set()
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._response_posts: dict[str, list[dict[str, Any]]] = {}
        self._root = ""
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._ephemerals: dict[str, list[dict[str, Any]]] = {}
        self._faults: dict[str, deque[_Fault]] = {}
        self._hangs: list[asyncio.Event] = []
        self._extra: dict[str, Handler] = {}
        self._revoked: str | None = None
        self._uploads: dict[str, dict[str, Any]] = {}
        self._seq = 0
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> FakeSlackApi:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle)
        app.router.add_get("/link", self._socket)
        app.router.add_post("/response/{id}", self._respond)
        app.router.add_post("/upload/{file_id}", self._upload)
        self._runner, port = await serve_locally(app)
        self._root = f"http://127.0.0.1:{port}"
        self.base_url = f"{self._root}/api/"
        self._ws_url = f"ws://127.0.0.1:{port}/link"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for event in self._hangs:  # let hung handlers finish, or shutdown would wait for them
            event.set()
        for socket in self._sockets:
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- scripting and inspection ----------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        status: int = 200,
        error: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` calls of `method` fail without doing anything: HTTP 429 (with
        `Retry-After`, default 1 s), another status (5xx answer with an HTML body, as a
        proxy would), or HTTP 200 with `{"ok": false, "error": error}`."""
        if status == 429:
            error = error or "ratelimited"
            retry_after = 1 if retry_after is None else retry_after
        elif status == 200 and error is None:
            raise ValueError("fail_next needs an error for an HTTP 200 answer")
        queue = self._faults.setdefault(method, deque())
        queue.extend(_Fault(status, error, retry_after) for _ in range(times))

    def hang_next(self, method: str, *, times: int = 1) -> asyncio.Event:
        """The next `times` calls of `method` take effect (a message is stored) but answer
        only once the returned event is set: the client sees a timeout."""
        event = asyncio.Event()
        self._hangs.append(event)
        queue = self._faults.setdefault(method, deque())
        queue.extend(_Fault(hang=event) for _ in range(times))
        return event

    def drop_next(self, method: str, *, times: int = 1) -> None:
        """The next `times` calls of `method` take effect (a message is stored), then the
        connection is closed without an answer: the client sees a disconnect."""
        queue = self._faults.setdefault(method, deque())
        queue.extend(_Fault(drop=True) for _ in range(times))

    def revoke_token(self, error: str = "token_revoked", *, token: str | None = None) -> None:
        """From now on every Web API call with the bot token (or `token`, another
        workspace's) answers `ok: false, error` (Slack answers `token_revoked` once a bot
        token is revoked or the app uninstalled)."""
        if token is None:
            self._revoked = error
        else:
            self._revoked_tokens[token] = error

    def restore_token(self) -> None:
        """The bot token works again (the app was installed again with it)."""
        self._revoked = None

    def add_workspace(
        self,
        token: str,
        *,
        team_id: str,
        team: str | None = None,
        bot_user_id: str | None = None,
        bot_id: str | None = None,
    ) -> Workspace:
        """Another workspace, whose bot token is `token` (the app installed there)."""
        workspace = Workspace(
            team_id,
            team or f"Team {team_id}",
            bot_user_id or f"UBOT{team_id}",
            bot_id or f"B{team_id}",
        )
        self._workspaces[token] = workspace
        return workspace

    def grant(
        self,
        code: str,
        *,
        token: str,
        team_id: str,
        team: str | None = None,
        installer: str = "U0ADMIN",
        scope: str = "chat:write,commands",
    ) -> None:
        """An authorization code, as Slack hands one to the redirect URL after someone
        approved the install: `oauth.v2.access` exchanges it once for `token`."""
        workspace = Workspace(team_id, team or f"Team {team_id}", f"UBOT{team_id}", f"B{team_id}")
        self._grants[code] = _Grant(token, workspace, installer, scope)

    def _oauth_v2_access(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        """oauth.v2.access: HTTP Basic client credentials (or form fields), a code used once."""
        client_id, client_secret = params.pop("client_id", None), params.pop("client_secret", None)
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            basic = aiohttp.BasicAuth.decode(header)
            client_id, client_secret = basic.login, basic.password
        method = "oauth.v2.access"
        if client_id != self.client_id:
            return self._answer(method, params, {"ok": False, "error": "invalid_client_id"})
        if client_secret != self.client_secret:
            return self._answer(method, params, {"ok": False, "error": "bad_client_secret"})
        queue = self._faults.get(method)
        fault = queue.popleft() if queue else None
        if fault is not None and fault.status != 200:
            self.calls.append(Call(method, params, fault.status))
            return web.Response(
                status=fault.status, text="<html>Server error</html>", content_type="text/html"
            )
        if fault is not None:
            return self._answer(method, params, {"ok": False, "error": fault.error})
        grant = self._grants.pop(str(params.get("code")), None)
        if grant is None:
            return self._answer(method, params, {"ok": False, "error": "invalid_code"})
        self._workspaces[grant.token] = grant.workspace
        return self._answer(
            method,
            params,
            {
                "ok": True,
                "access_token": grant.token,
                "token_type": "bot",
                "scope": grant.scope,
                "bot_user_id": grant.workspace.bot_user_id,
                "app_id": self.app_id,
                "team": {"name": grant.workspace.team, "id": grant.workspace.team_id},
                "enterprise": None,
                "authed_user": {"id": grant.installer},
                "is_enterprise_install": False,
            },
        )

    def not_a_member(self, channel: str) -> None:
        """The bot is not in `channel`: chat.* and history answer `not_in_channel` there."""
        self._outside.add(channel)

    def response_url(self, channel: str, user: str, *, redirect_to: str | None = None) -> str:
        """A slash command's response URL for `user` in `channel` (see the module docstring)."""
        token = f"R{len(self._response_urls) + 1:06d}"
        self._response_urls[token] = _ResponseUrl(channel, user, redirect_to)
        return f"{self._root}/response/{token}"

    def response_posts(self, url: str) -> list[dict[str, Any]]:
        """The JSON bodies posted to `url` that it accepted, oldest first."""
        return copy.deepcopy(self._response_posts.get(url.rsplit("/", 1)[-1], []))

    def expire(self, url: str) -> None:
        self._response_urls[url.rsplit("/", 1)[-1]].expired = True

    def on(self, method: str, handler: Handler) -> None:
        """Answer `method` with `handler(params)` (the `ok` key defaults to true)."""
        self._extra[method] = handler

    def add_user(
        self,
        user_id: str,
        *,
        team_id: str | None = None,
        name: str | None = None,
        is_bot: bool = False,
        is_restricted: bool = False,
        is_ultra_restricted: bool = False,
        **extra: Any,
    ) -> None:
        """A user `users.info` knows; `is_restricted` / `is_ultra_restricted` make a guest."""
        self._users[user_id] = {
            "id": user_id,
            "team_id": team_id or self.team_id,
            "name": name or user_id.lower(),
            "deleted": False,
            "is_bot": is_bot,
            "is_restricted": is_restricted,
            "is_ultra_restricted": is_ultra_restricted,
            **extra,
        }

    def add_message(
        self, channel: str, text: str, *, user: str = "U0HUMAN", thread_ts: str | None = None
    ) -> str:
        """A message someone else wrote (a prospect opening a thread); returns its ts."""
        message: dict[str, Any] = {
            "type": "message",
            "ts": self._next_ts(),
            "user": user,
            "team": self.team_id,
            "text": text,
        }
        if thread_ts is not None:
            message["thread_ts"] = thread_ts
        self._messages.setdefault(channel, []).append(message)
        return str(message["ts"])

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Everything posted to `channel` (thread replies included), oldest first, with
        metadata, as stored (copies)."""
        return copy.deepcopy(self._messages.get(channel, []))

    def ephemerals(self, channel: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self._ephemerals.get(channel, []))

    def files(self) -> list[dict[str, Any]]:
        """Every file whose upload was completed, in order, with its bytes (`content`)."""
        return [copy.deepcopy(f) for f in self._uploads.values() if f["completed"]]

    def calls_of(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    # --- the HTTP side ---------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        transport = request.transport
        self.peers.append((method, transport.get_extra_info("peername") if transport else None))
        params = await _params(request)
        if method == "oauth.v2.access":
            return self._oauth_v2_access(request, params)
        token = params.pop("token", None)
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth.removeprefix("Bearer ")
        if not token:
            return self._answer(method, params, {"ok": False, "error": "not_authed"})
        if method == "apps.connections.open":
            if token != self.app_token:
                return self._answer(method, params, {"ok": False, "error": "invalid_auth"})
            return self._answer(method, params, {"ok": True, "url": self._ws_url})
        if token != self.token and token not in self._workspaces:
            return self._answer(method, params, {"ok": False, "error": "invalid_auth"})
        revoked = self._revoked if token == self.token else self._revoked_tokens.get(token)
        if revoked is not None:
            return self._answer(method, params, {"ok": False, "error": revoked})
        self._caller = self._workspaces.get(token) if token != self.token else None

        queue = self._faults.get(method)
        fault = queue.popleft() if queue else None
        if fault is not None and fault.hang is None and not fault.drop:
            if fault.status == 200:
                return self._answer(method, params, {"ok": False, "error": fault.error})
            if fault.status == 429:
                return self._answer(
                    method,
                    params,
                    {"ok": False, "error": fault.error},
                    status=429,
                    headers={"Retry-After": str(fault.retry_after)},
                )
            self.calls.append(Call(method, params, fault.status))
            return web.Response(
                status=fault.status, text="<html>Server error</html>", content_type="text/html"
            )

        body = self._dispatch(method, params)
        if fault is not None and fault.drop:
            self.calls.append(Call(method, params, 0))
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable  # never reaches the client: the socket is gone
        if fault is not None and fault.hang is not None:
            self.calls.append(Call(method, params, 200))
            await fault.hang.wait()
            return web.json_response(body)
        return self._answer(method, params, body)

    async def _upload(self, request: web.Request) -> web.Response:
        """An upload URL from files.getUploadURLExternal, as files.slack.com answers one:
        `OK - <length>`, or 404 for an unknown or already used URL, 400 for a wrong length."""
        pending = self._uploads.get(request.match_info["file_id"])
        body = await request.read()
        queue = self._faults.get("upload")
        fault = queue.popleft() if queue else None
        if fault is not None:
            self.calls.append(Call("upload", {}, fault.status))
            return web.Response(status=fault.status, text="upload failed")
        if pending is None or pending["content"] is not None:
            self.calls.append(Call("upload", {}, 404))
            return web.Response(status=404, text="not found")
        if len(body) != pending["length"]:
            self.calls.append(Call("upload", {"length": len(body)}, 400))
            return web.Response(status=400, text="length mismatch")
        pending["content"] = body
        self.calls.append(Call("upload", {"file_id": pending["id"], "length": len(body)}, 200))
        return web.Response(text=f"OK - {len(body)}")

    async def _respond(self, request: web.Request) -> web.Response:
        """A response URL, as hooks.slack.com answers one: plain-text `ok` or an error."""
        token = request.match_info["id"]
        try:
            body = await request.json()
        except ValueError:
            body = None
        queue = self._faults.get("response_url")
        fault = queue.popleft() if queue else None
        self.calls.append(Call("response_url", {"id": token, "body": body}, 0))
        if fault is not None:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else None
            return web.Response(
                status=fault.status, text=fault.error or "server_error", headers=headers
            )
        hook = self._response_urls.get(token)
        if hook is None:
            return web.Response(status=404, text="no_service")
        if hook.redirect_to is not None:
            raise web.HTTPFound(hook.redirect_to)
        if hook.expired:
            return web.Response(status=404, text="expired_url")
        if hook.uses >= MAX_RESPONSE_URL_USES:
            return web.Response(status=404, text="used_url")
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return web.Response(status=400, text="no_text")
        hook.uses += 1
        self._response_posts.setdefault(token, []).append(body)
        shown = {"text": body.get("text", ""), "blocks": body.get("blocks") or []}
        if body.get("response_type") == "in_channel":
            message = {
                "type": "message",
                "ts": self._next_ts(),
                "user": self.bot_user_id,
                "bot_id": self.bot_id,
                "app_id": self.app_id,
                "team": self.team_id,
                **shown,
            }
            self._messages.setdefault(hook.channel, []).append(message)
        else:
            self._ephemerals.setdefault(hook.channel, []).append(
                {"ts": self._next_ts(), "user": hook.user, "thread_ts": None, **shown}
            )
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_json({"type": "hello", "num_connections": 1, "debug_info": {}})
        self.socket_connected.set()
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            future = self._acks.pop(str(data.get("envelope_id")), None)
            if future is not None and not future.done():
                future.set_result(data)
        return socket

    async def push(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Deliver one Socket Mode envelope (`events_api`, `slash_commands`, `interactive`)
        and return the app's acknowledgement."""
        await self.socket_connected.wait()
        envelope_id = f"env-{self._next_ts()}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = future
        await self._sockets[-1].send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": kind != "events_api",
            }
        )
        return await future

    def _answer(
        self,
        method: str,
        params: dict[str, Any],
        body: dict[str, Any],
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        self.calls.append(Call(method, params, status))
        return web.json_response(body, status=status, headers=headers)

    def _dispatch(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method in self._extra:
            return {"ok": True, **self._extra[method](params)}
        handler = _METHODS.get(method)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        channel = params.get("channel")
        if self._channels is not None and channel is not None and channel not in self._channels:
            return {"ok": False, "error": "channel_not_found"}
        if channel in self._outside and method in _MEMBERS_ONLY:
            return {"ok": False, "error": "not_in_channel"}
        return handler(self, params)

    # --- the methods -----------------------------------------------------------------------

    def _next_ts(self) -> str:
        self._seq += 1
        return f"{1_700_000_000 + self._seq // 1_000_000}.{self._seq % 1_000_000:06d}"

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        caller = self._caller
        if caller is not None:
            return {
                "ok": True,
                "url": f"https://{caller.team_id.lower()}.slack.com/",
                "team": caller.team,
                "user": "salesbot",
                "team_id": caller.team_id,
                "user_id": caller.bot_user_id,
                "bot_id": caller.bot_id,
                "is_enterprise_install": False,
            }
        return {
            "ok": True,
            "url": f"https://{self.team.lower()}.slack.com/",
            "team": self.team,
            "user": "salesbot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not params.get("text") and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        metadata = params.get("metadata")
        if metadata is not None and not _valid_metadata(metadata):
            return {"ok": False, "error": "invalid_metadata_format"}
        message: dict[str, Any] = {
            "type": "message",
            "ts": self._next_ts(),
            "user": self._caller.bot_user_id if self._caller else self.bot_user_id,
            "bot_id": self._caller.bot_id if self._caller else self.bot_id,
            "app_id": self.app_id,
            "team": self._caller.team_id if self._caller else self.team_id,
            "text": params.get("text", ""),
            "blocks": params.get("blocks") or [],
        }
        if params.get("thread_ts"):
            message["thread_ts"] = str(params["thread_ts"])
            if _true(params.get("reply_broadcast")):
                message["subtype"] = "thread_broadcast"
        if metadata is not None:
            message["metadata"] = metadata
        self._messages.setdefault(channel, []).append(message)
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": _public(message)}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params.get("channel"), params.get("ts")
        message = self._find(channel, ts)
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if "text" in params:
            message["text"] = params["text"]
        if "blocks" in params:
            message["blocks"] = params["blocks"] or []
        if params.get("metadata") is not None:
            if not _valid_metadata(params["metadata"]):
                return {"ok": False, "error": "invalid_metadata_format"}
            message["metadata"] = params["metadata"]
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": message["text"],
            "message": _public(message),
        }

    def _post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, user = params.get("channel"), params.get("user")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not user:
            return {"ok": False, "error": "user_not_in_channel"}
        if not params.get("text") and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        ts = self._next_ts()
        self._ephemerals.setdefault(channel, []).append(
            {
                "ts": ts,
                "user": user,
                "thread_ts": params.get("thread_ts"),
                "text": params.get("text", ""),
                "blocks": params.get("blocks") or [],
            }
        )
        return {"ok": True, "message_ts": ts}

    def _history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        stored = self._messages.get(channel, [])
        top = [m for m in stored if "thread_ts" not in m or m.get("subtype") == "thread_broadcast"]
        latest = params.get("latest")
        if latest is not None:  # Slack's time range: up to `latest`, itself only if inclusive
            inclusive = _true(params.get("inclusive"))
            top = [
                m
                for m in top
                if float(m["ts"]) < float(latest) or (inclusive and m["ts"] == latest)
            ]
        newest_first = [self._listed(m, params) for m in reversed(top)]
        return _page(newest_first, params)

    def _replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params.get("channel"), params.get("ts")
        parent = self._find(channel, ts)
        if parent is None or ("thread_ts" in parent and parent["thread_ts"] != parent["ts"]):
            return {"ok": False, "error": "thread_not_found"}
        thread = [parent] + [
            m
            for m in self._messages.get(str(channel), [])
            if m.get("thread_ts") == ts and m is not parent
        ]
        return _page([self._listed(m, params) for m in thread], params)

    def _listed(self, message: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """A stored message as history shows it: metadata only when asked for; a parent
        carries its own ts as thread_ts and its reply count."""
        shown = _public(message) if not _true(params.get("include_all_metadata")) else dict(message)
        replies = [
            m
            for m in self._messages.get(str(params.get("channel")), [])
            if m.get("thread_ts") == message["ts"] and m is not message
        ]
        if replies:
            shown["thread_ts"] = message["ts"]
            shown["reply_count"] = len(replies)
        return copy.deepcopy(shown)

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self._users.get(str(params.get("user")))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": copy.deepcopy(user)}

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        view = params.get("view")
        if not params.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        opened = {**view, "id": f"V{len(self.views) + 1:06d}", "team_id": self.team_id}
        self.views.append(opened)
        return {"ok": True, "view": copy.deepcopy(opened)}

    def _get_upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        filename = params.get("filename")
        try:
            length = int(params.get("length") or 0)
        except ValueError:
            length = 0
        if not filename or length < 1:
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{len(self._uploads) + 1:08d}"
        self._uploads[file_id] = {
            "id": file_id,
            "name": str(filename),
            "length": length,
            "alt_txt": params.get("alt_txt"),
            "content": None,
            "completed": False,
        }
        return {"ok": True, "file_id": file_id, "upload_url": f"{self._root}/upload/{file_id}"}

    def _complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files")
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        found = []
        for entry in files:
            upload = self._uploads.get(str(entry.get("id"))) if isinstance(entry, dict) else None
            if upload is None or upload["content"] is None or upload["completed"]:
                return {"ok": False, "error": "file_not_found"}
            found.append((upload, entry))
        destinations = [str(params["channel_id"])] if params.get("channel_id") else []
        destinations += [c for c in str(params.get("channels") or "").split(",") if c]
        if len(destinations) > 1 and params.get("thread_ts"):
            return {"ok": False, "error": "invalid_arguments"}
        shared_in = []
        for destination in destinations:
            if destination.startswith("U"):
                shared_in.append(f"D{destination}")
                continue
            if self._channels is not None and destination not in self._channels:
                return {"ok": False, "error": "channel_not_found"}
            if destination in self._outside:
                return {"ok": False, "error": "not_in_channel"}
            shared_in.append(destination)
        for upload, entry in found:
            upload["completed"] = True
            upload["title"] = entry.get("title") or upload["name"]
            upload["channels"] = shared_in
        for channel in shared_in:
            message: dict[str, Any] = {
                "type": "message",
                "ts": self._next_ts(),
                "user": self.bot_user_id,
                "bot_id": self.bot_id,
                "text": params.get("initial_comment") or "",
                "files": [
                    {"id": u["id"], "name": u["name"], "title": u["title"], "mimetype": "image/png"}
                    for u, _ in found
                ],
                "upload": True,
            }
            if params.get("thread_ts"):
                message["thread_ts"] = str(params["thread_ts"])
            self._messages.setdefault(channel, []).append(message)
        return {"ok": True, "files": [{"id": u["id"], "title": u["title"]} for u, _ in found]}

    def _find(self, channel: Any, ts: Any) -> dict[str, Any] | None:
        for message in self._messages.get(str(channel), []):
            if message["ts"] == ts:
                return message
        return None


_METHODS: dict[str, Callable[[FakeSlackApi, dict[str, Any]], dict[str, Any]]] = {
    "auth.test": FakeSlackApi._auth_test,
    "chat.postMessage": FakeSlackApi._post_message,
    "chat.update": FakeSlackApi._update,
    "chat.postEphemeral": FakeSlackApi._post_ephemeral,
    "conversations.history": FakeSlackApi._history,
    "conversations.replies": FakeSlackApi._replies,
    "users.info": FakeSlackApi._users_info,
    "views.open": FakeSlackApi._views_open,
    "files.getUploadURLExternal": FakeSlackApi._get_upload_url,
    "files.completeUploadExternal": FakeSlackApi._complete_upload,
}


_MEMBERS_ONLY = frozenset(
    {
        "chat.postMessage",
        "chat.postEphemeral",
        "chat.update",
        "conversations.history",
        "conversations.replies",
    }
)


async def _params(request: web.Request) -> dict[str, Any]:
    """Query string and body merged; JSON-valued form fields (blocks, metadata, view)
    decoded, as Slack does."""
    params: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
        else:
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
    for field in _JSON_FIELDS:
        value = params.get(field)
        if isinstance(value, str):
            try:
                params[field] = json.loads(value)
            except ValueError:
                params[field] = None
    return params


def _page(messages: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """Cursor pagination: the cursor is the offset of the next page."""
    try:
        limit = max(1, min(int(params.get("limit") or 100), 999))
        start = int(params.get("cursor") or 0)
    except ValueError:
        return {"ok": False, "error": "invalid_cursor"}
    page = messages[start : start + limit]
    more = start + limit < len(messages)
    return {
        "ok": True,
        "messages": page,
        "has_more": more,
        "response_metadata": {"next_cursor": str(start + limit) if more else ""},
    }


def _public(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k != "metadata"}


def _valid_metadata(metadata: Any) -> bool:
    return (
        isinstance(metadata, dict)
        and isinstance(metadata.get("event_type"), str)
        and isinstance(metadata.get("event_payload"), dict)
    )


def _true(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")
