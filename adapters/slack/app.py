"""`POST /slack/events`: one request URL for events, slash commands and interactivity.

Slack needs a 2xx within 3 seconds or it retries (https://api.slack.com/apis/events-api#retries),
and treats 4xx/5xx as failures. So:
- the body is checked and parsed by `wire.py` before anything acts on it: size (413), the
  signature headers' format and the signature itself on the raw bytes, by slack-sdk's
  `SignatureVerifier` (v0 HMAC, constant-time compare, 5-minute window) (401), the media
  type (415), UTF-8, form and JSON structure and JSON nesting (400) — nothing is stored
  from a refused request;
- a correctly signed payload whose fields have values Slack never sends (a translation the
  domain's models refuse) is 422 with the field's name;
- everything else is answered 2xx: the inbound is decided and committed by the runtime
  *before* the HTTP answer (the ack follows the commit); sending happens later in the
  outbox, which keeps this well inside 3 s; a well-formed request nobody handles (an event
  type we do not subscribe to, a shortcut) is 200 and ignored, so Slack never retries it.

Why HTTP requests do not go through slack-bolt: bolt's body parser reads any form body that
contains the substring "payload" — in a slash command's text, channel name, user name or
workspace domain — as an interactivity payload, and the command is acknowledged and
dropped. So `wire.py` parses Slack's bodies itself (a form with a `command` field is a slash
command, whatever its other fields say) and this module routes them to its own handlers.
bolt remains for Socket Mode only, where envelopes arrive as already-parsed JSON objects
(`AsyncBoltRequest(body=dict)`: nothing to misparse) and its listeners call the same
handlers as HTTP.

`tokens_revoked` and `app_uninstalled` are reported to the installation's state
(`installation.py`): a revoked user token changes nothing, a revoked bot token or an
uninstall pauses that workspace's replies; any other signed request from a paused workspace
prompts a check of the token. A workspace installed through "Add to Slack" (`oauth.py`)
loses its stored installation instead (`workspaces.py`), and each request is read with
the directory of the workspace it names (its own bot token).

Slash commands are answered where they were run, also in channels the bot is not in:
before a command is decided, its `response_url` is kept (`response_url.py`), and the
command's replies go through it when chat.* cannot reach the channel.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

from aiohttp import web
from pydantic import ValidationError
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from adapters.action_binding import ActionKey
from adapters.slack import wire
from adapters.slack.directory import SlackDirectory
from adapters.slack.ids import ButtonSigner
from adapters.slack.inbound import (
    CommandUsage,
    Ignored,
    from_action,
    from_command,
    from_event,
    from_view_submission,
)
from adapters.slack.installation import SlackInstallation
from adapters.slack.manifest import SLASH_NAMES
from adapters.slack.modal import quote_modal
from adapters.slack.response_url import ResponseUrls
from adapters.slack.workspaces import Workspaces
from domain.commands import COMMANDS
from domain.inbound import ButtonClicked, Inbound

log = logging.getLogger(__name__)

Handle = Callable[[Inbound], Awaitable[object]]
SLASH_COMMANDS = tuple(f"/{SLASH_NAMES.get(spec.name, spec.name)}" for spec in COMMANDS)
_MESSAGE_EVENTS = frozenset({"message", "app_mention"})
_CHUNK = 64 * 1024
NOT_INSTALLED_TEXT = "salesbot is not installed in this workspace: ask an admin to add it."


class Ack(NamedTuple):
    """A 200 answer; `body` is what Slack shows the person (a slash command's usage)."""

    body: dict[str, Any] | None = None


Answer = Ack | wire.Refused


class SlackEndpoint:
    def __init__(
        self,
        *,
        signing_secret: str | None,
        client: AsyncWebClient,
        directory: SlackDirectory,
        handle: Handle,
        installation: SlackInstallation,
        action_key: ActionKey,
        responses: ResponseUrls | None = None,
        workspaces: Workspaces | None = None,
        installation_store: AsyncInstallationStore | None = None,
    ) -> None:
        """`installation_store`: Socket Mode without a configured bot token authorises each
        envelope from the workspace's own installation (bolt's `authorize`)."""
        # Without a signing secret only Socket Mode can deliver (no HTTP route is mounted).
        self._verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self._client = client
        self._directory = directory
        self._workspaces = workspaces
        self._handle = handle
        self._installation = installation
        self._action_key = action_key
        self._responses = responses
        # Socket Mode only (see the module docstring): HTTP is verified and parsed above.
        self.app = AsyncApp(
            client=client,
            signing_secret=signing_secret,
            request_verification_enabled=False,
            process_before_response=True,
            logger=logging.getLogger("slack_bolt"),
            installation_store=installation_store if not client.token else None,
        )
        self._register()

    @property
    def accepts_http(self) -> bool:
        return self._verifier is not None

    async def handle_request(self, request: web.Request) -> web.StreamResponse:
        if self._verifier is None:
            return web.json_response({"error": "HTTP delivery is not configured"}, status=404)
        raw = await _read_limited(request, wire.MAX_BODY_BYTES)
        if raw is None:
            return _refusal(
                wire.Refused(status=413, reason=f"body over {wire.MAX_BODY_BYTES} bytes")
            )
        headers = wire.signature_headers(request.headers)
        if isinstance(headers, wire.Refused):
            return _refusal(headers)
        timestamp, signature = headers
        if not wire.is_utf8(raw):
            # Slack's bodies are UTF-8, and slack-sdk's verifier decodes before it hashes.
            return _refusal(wire.Refused(status=400, reason="the body is not UTF-8"))
        if not self._verifier.is_valid(body=raw, timestamp=timestamp, signature=signature):
            return _refusal(wire.Refused(status=401, reason="invalid or stale signature"))
        parsed = wire.parse(raw, request.content_type, request.charset)
        if isinstance(parsed, wire.Refused):
            return _refusal(parsed)
        try:
            answer = await self._route(parsed)
        except ValidationError as exc:
            return _refusal(_unusable(exc))
        if isinstance(answer, wire.Refused):
            return _refusal(answer)
        if answer.body is None:
            return web.Response(status=200)
        return web.json_response(answer.body)

    async def connect_socket_mode(
        self, app_token: str, client: AsyncWebClient
    ) -> AsyncSocketModeHandler:
        """Socket Mode: Slack delivers over a WebSocket the app opens, so no public URL is
        needed. Envelopes run through bolt's listeners into the same handlers as HTTP."""
        handler = AsyncSocketModeHandler(self.app, app_token, web_client=client)
        await handler.connect_async()  # type: ignore[no-untyped-call]  # untyped in slack-bolt
        return handler

    # --- the handlers, shared by HTTP and Socket Mode --------------------------------------

    async def _route(self, parsed: wire.SlackBody) -> Answer:
        match parsed:
            case wire.EventBody(body=body):
                return await self.on_event_body(body)
            case wire.CommandForm(fields=fields):
                return await self.on_command(fields)
            case wire.InteractionPayload(payload=payload):
                return await self.on_interaction(payload)
        return Ack()  # ssl_check

    async def on_event_body(self, body: Mapping[str, Any]) -> Answer:
        kind = body.get("type")
        if kind == "url_verification":
            challenge = body.get("challenge")
            if not isinstance(challenge, str):
                return wire.Refused(status=400, reason="url_verification without a challenge")
            return Ack({"challenge": challenge})
        event = body.get("event")
        if kind != "event_callback" or not isinstance(event, Mapping):
            return Ack()
        event_type = event.get("type")
        if not isinstance(event_type, str):
            return Ack()
        team = body.get("team_id")
        team = team if isinstance(team, str) and team else None
        if event_type in ("tokens_revoked", "app_uninstalled"):
            await self._revoked(event_type, team, event)
            return Ack()
        self._installation.heard_from(team)
        if event_type in _MESSAGE_EVENTS:
            directory = await self._directory_for(team)
            if directory is None:
                return Ack()
            context = await directory.context()
            await self._dispatch(
                await from_event(body, context, directory.is_guest, directory.thread_owner),
                directory,
            )
        return Ack()

    async def _revoked(self, event_type: str, team: str | None, event: Mapping[str, Any]) -> None:
        """A workspace with an installation of its own loses it (all of it when the app
        was uninstalled, its bot when the bot's token was revoked); the configured token's
        workspace is paused (`installation.py`)."""
        tokens = event.get("tokens")
        tokens = tokens if isinstance(tokens, Mapping) else {}
        bot = _ids(tokens.get("bot"))
        workspaces = self._workspaces
        if workspaces is not None and team is not None and await workspaces.has_own(team):
            if event_type == "app_uninstalled" or bot:
                await workspaces.removed(team, uninstalled=event_type == "app_uninstalled")
            return
        if event_type == "tokens_revoked":
            await self._installation.tokens_revoked(
                team, bot=bot, users=len(_ids(tokens.get("oauth")))
            )
        else:
            await self._installation.uninstalled(team)

    async def _directory_for(self, team: object) -> SlackDirectory | None:
        """The directory of the request's workspace; None (the request is acknowledged and
        ignored) when no bot serves it: no SLACK_BOT_TOKEN and no installation of its own."""
        if self._workspaces is None:
            return self._directory
        directory = await self._workspaces.directory_for(team)
        if directory is None:
            log.info("slack request from workspace %s, which has not installed the app", team)
        return directory

    async def on_command(self, form: Mapping[str, str]) -> Answer:
        self._installation.heard_from(form.get("team_id"))
        directory = await self._directory_for(form.get("team_id"))
        if directory is None:
            return Ack({"response_type": "ephemeral", "text": NOT_INSTALLED_TEXT})
        result = await from_command(form, await directory.context(), directory.is_guest)
        if isinstance(result, CommandUsage):
            return Ack({"response_type": "ephemeral", "text": result.text})
        if isinstance(result, Ignored):
            return wire.Refused(status=400, reason=result.reason)
        if self._responses is not None:
            # Kept before the command is decided: its replies are routed to it.
            await self._responses.remember(result.delivery_id, form.get("response_url"))
        await self._dispatch(result, directory)
        return Ack()

    async def on_interaction(self, payload: Mapping[str, Any]) -> Answer:
        kind = payload.get("type")
        team = payload.get("team")
        team_id = team.get("id") if isinstance(team, Mapping) else None
        self._installation.heard_from(team_id)
        directory = await self._directory_for(team_id)
        if directory is None:
            return Ack()
        context = await directory.context()
        if kind == "block_actions":
            signer = ButtonSigner(self._action_key, context.team_id)
            result = await from_action(payload, context, directory.is_guest, signer)
            if (
                isinstance(result, ButtonClicked)
                and result.action == "open_quote_form"
                and result.binding == "ok"
            ):
                # A form is UI, not a decision: open it; its submission is the decision.
                await self._open_quote_form(
                    directory.client, payload.get("trigger_id"), result.conversation_id
                )
                return Ack()
            await self._dispatch(result, directory)
        elif kind == "view_submission":
            await self._dispatch(
                await from_view_submission(payload, context, directory.is_guest), directory
            )
        return Ack()

    async def _open_quote_form(
        self, client: AsyncWebClient, trigger: object, conversation: str
    ) -> None:
        if not isinstance(trigger, str) or not trigger:
            return
        try:
            await client.views_open(trigger_id=trigger, view=quote_modal(conversation))
        except SlackApiError as exc:  # an expired trigger: the person clicks again
            log.warning("views.open failed: %s", exc.response.get("error"))

    async def _dispatch(self, result: Inbound | Ignored, directory: SlackDirectory) -> None:
        if isinstance(result, Ignored):
            log.debug("slack payload ignored: %s", result.reason)
            return
        name = await directory.display_name(result.actor.id)
        if name and result.actor.role != "system":
            result = result.model_copy(
                update={"actor": result.actor.model_copy(update={"name": name})}
            )
        await self._handle(result)

    # --- Socket Mode -----------------------------------------------------------------------

    def _register(self) -> None:
        app = self.app
        anything = re.compile(".*")

        async def on_event(body: dict[str, Any]) -> None:
            await self._socket_answer(self.on_event_body, body)

        app.event(anything)(on_event)

        async def on_command(ack: Any, body: dict[str, Any]) -> None:
            fields = {key: value for key, value in body.items() if isinstance(value, str)}
            answer = await self._socket_answer(self.on_command, fields)
            await ack(**(answer.body if isinstance(answer, Ack) and answer.body else {}))

        app.command(anything)(on_command)

        async def on_interaction(ack: Any, body: dict[str, Any]) -> None:
            await self._socket_answer(self.on_interaction, body)
            await ack()

        app.action(anything)(on_interaction)
        app.view(anything)(on_interaction)

    async def _socket_answer(
        self, handler: Callable[[Any], Awaitable[Answer]], body: Mapping[str, Any]
    ) -> Answer:
        """A handler's answer over Socket Mode, where a refusal can only be logged."""
        try:
            answer = await handler(body)
        except ValidationError as exc:
            answer = _unusable(exc)
        if isinstance(answer, wire.Refused):
            log.warning("slack envelope refused: %s", answer.reason)
        return answer


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The body, or None when it is longer than `limit` (read no further than that)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _ids(value: object) -> list[str]:
    """A `tokens_revoked` list of user ids; anything else in its place names nobody."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str) and item]


def _unusable(exc: ValidationError) -> wire.Refused:
    """A signed payload whose values the domain's models refuse: which field (never the
    value: it may be a prospect's text)."""
    errors = exc.errors(include_url=False, include_input=False)
    where = ".".join(str(part) for part in errors[0]["loc"]) if errors else "?"
    return wire.Refused(status=422, reason=f"unusable value in the payload ({where[:80]})")


def _refusal(refused: wire.Refused) -> web.Response:
    return web.json_response({"error": refused.reason}, status=refused.status)
