"""`POST /slack/events`: one request URL for events, slash commands and interactivity.

Slack needs a 2xx within 3 seconds or it retries (https://api.slack.com/apis/events-api#retries),
and treats 4xx/5xx as failures. So:
- the signature is verified first, on the raw bytes, by slack-sdk's `SignatureVerifier`
  (v0 HMAC, constant-time compare, 5-minute window): failure → 401, nothing stored;
- a correctly signed body that is neither JSON nor form data → 400 (bolt alone says 500,
  and Slack would retry a request that can never succeed);
- bolt runs with `process_before_response=True`, so a listener finishes — the inbound is
  decided and committed by the runtime — *before* the HTTP answer: the ack follows the
  commit. Sending happens later in the outbox, which keeps this well inside 3 s;
- a request no listener wants is answered 200 and ignored (bolt alone says 404, and Slack
  would retry it).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.directory import SlackDirectory
from adapters.slack.ids import parse_button_value
from adapters.slack.inbound import (
    CommandUsage,
    Ignored,
    from_action,
    from_command,
    from_event,
    from_view_submission,
)
from adapters.slack.manifest import SLASH_NAMES
from adapters.slack.modal import quote_modal
from domain.commands import COMMANDS
from domain.inbound import Inbound

log = logging.getLogger(__name__)

Handle = Callable[[Inbound], Awaitable[object]]
SLASH_COMMANDS = tuple(f"/{SLASH_NAMES.get(spec.name, spec.name)}" for spec in COMMANDS)


class SlackEndpoint:
    def __init__(
        self,
        *,
        signing_secret: str | None,
        client: AsyncWebClient,
        directory: SlackDirectory,
        handle: Handle,
        on_uninstalled: Callable[[], Awaitable[None]],
    ) -> None:
        # Without a signing secret only Socket Mode can deliver (no HTTP route is mounted).
        self._verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self._directory = directory
        self._handle = handle
        self._on_uninstalled = on_uninstalled
        self.app = AsyncApp(
            client=client,
            signing_secret=signing_secret,
            request_verification_enabled=signing_secret is not None,
            process_before_response=True,
            logger=logging.getLogger("slack_bolt"),
        )
        self._register()

    async def handle_request(self, request: web.Request) -> web.StreamResponse:
        if self._verifier is None:
            return web.json_response({"error": "HTTP delivery is not configured"}, status=404)
        raw = await request.read()
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not self._verifier.is_valid(body=raw, timestamp=timestamp, signature=signature):
            return web.json_response({"error": "invalid or stale signature"}, status=401)
        if not _well_formed(raw, request.content_type):
            return web.json_response({"error": "malformed body"}, status=400)
        response = await self.app.async_dispatch(await to_bolt_request(request))
        if response.status == 404:
            return web.Response(status=200)  # nothing here wants it: acknowledged, ignored
        return await to_aiohttp_response(response)

    @property
    def accepts_http(self) -> bool:
        return self._verifier is not None

    async def connect_socket_mode(
        self, app_token: str, client: AsyncWebClient
    ) -> AsyncSocketModeHandler:
        """Socket Mode: Slack delivers over a WebSocket the app opens, so no public URL is
        needed. Envelopes run through the same bolt listeners (and runtime) as HTTP."""
        handler = AsyncSocketModeHandler(self.app, app_token, web_client=client)
        await handler.connect_async()  # type: ignore[no-untyped-call]  # untyped in slack-bolt
        return handler

    def _register(self) -> None:
        app = self.app

        async def on_event(body: dict[str, Any]) -> None:
            context = await self._directory.context()
            await self._dispatch(
                await from_event(
                    body, context, self._directory.is_guest, self._directory.thread_owner
                )
            )

        app.event("message")(on_event)
        app.event("app_mention")(on_event)

        async def on_uninstall(body: dict[str, Any]) -> None:
            log.warning("slack installation inactive: %s", body.get("event", {}).get("type"))
            await self._on_uninstalled()

        app.event("app_uninstalled")(on_uninstall)
        app.event("tokens_revoked")(on_uninstall)

        async def on_command(ack: Any, body: dict[str, Any]) -> None:
            result = await from_command(
                body, await self._directory.context(), self._directory.is_guest
            )
            if isinstance(result, CommandUsage):
                await ack(text=result.text)
                return
            await self._dispatch(result)
            await ack()

        for command in SLASH_COMMANDS:
            app.command(command)(on_command)

        async def on_action(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
            actions = body.get("actions") or [{}]
            if actions[0].get("action_id") == "open_quote_form":
                # A form is UI, not a decision: open it; its submission is the decision.
                value = parse_button_value(str(actions[0].get("value", "")))
                if value is not None and body.get("trigger_id"):
                    await client.views_open(
                        trigger_id=body["trigger_id"], view=quote_modal(value.conversation)
                    )
                await ack()
                return
            context = await self._directory.context()
            await self._dispatch(await from_action(body, context, self._directory.is_guest))
            await ack()

        app.action(re.compile(".*"))(on_action)

        async def on_view(ack: Any, body: dict[str, Any]) -> None:
            await self._dispatch(
                await from_view_submission(
                    body, await self._directory.context(), self._directory.is_guest
                )
            )
            await ack()

        app.view(re.compile(".*"))(on_view)

    async def _dispatch(self, result: Inbound | Ignored) -> None:
        if isinstance(result, Ignored):
            log.debug("slack payload ignored: %s", result.reason)
            return
        name = await self._directory.display_name(result.actor.id)
        if name and result.actor.role != "system":
            result = result.model_copy(
                update={"actor": result.actor.model_copy(update={"name": name})}
            )
        await self._handle(result)


def _well_formed(raw: bytes, content_type: str) -> bool:
    try:
        text = raw.decode("utf-8")
        if content_type == "application/json":
            return isinstance(json.loads(text), dict)
        form = parse_qs(text, strict_parsing=True, keep_blank_values=True)
        if "payload" in form:
            return isinstance(json.loads(form["payload"][0]), dict)
        return "command" in form or "ssl_check" in form
    except (UnicodeDecodeError, ValueError):
        return False
