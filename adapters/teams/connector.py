"""The Bot Framework Connector REST API (v3): the four calls the bot makes to Teams.

    POST {serviceUrl}/v3/conversations/{id}/activities             post (a channel id: a new post)
    PUT  {serviceUrl}/v3/conversations/{id}/activities/{activity}  update a card in place
    POST {serviceUrl}/v3/conversations                            open a personal chat
    GET  {serviceUrl}/v3/conversations/{id}/members/{user}        roster look-up (`userRole`)

Each call is one request: no retries, no redirects followed; the outbox owns retries and
`Retry-After`. The answers are classified into the outbox's outcomes here, once.

Why not the SDK's `ConnectorClient`: its conversation operations cut every conversation id
to 150 characters without saying so (Teams' personal-chat ids come close to that), and it
binds one token to one session for its lifetime. The SDK does what is hard to get right —
acquiring the bot's own token from Entra with MSAL, off the event loop — in
`MsalTokenProvider`; these four requests are plain JSON.

The bot's token is sent only to service URLs the endpoint accepted (`check_service_url`):
https, or loopback while unauthenticated local mode is on. A forged `serviceUrl` therefore
never receives it.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import aiohttp

from adapters.loopback import is_loopback_host
from adapters.ports import Rejected, RetryLater, SendOutcome, Sent, TimedOut
from adapters.retry_after import retry_after_ms

log = logging.getLogger(__name__)

BOT_FRAMEWORK_SCOPE = "https://api.botframework.com/.default"


class TokenProvider(Protocol):
    """The bot's bearer token for the connector; None sends no Authorization header (local
    unauthenticated mode, where the connector is a tool on this machine)."""

    async def token(self) -> str | None: ...


class NoToken:
    async def token(self) -> str | None:
        return None


class MsalTokenProvider:
    """Client-credentials tokens for the bot's Entra app, from the Agents SDK's `MsalAuth`
    (which caches them and runs MSAL's blocking calls in a thread). Single-tenant bots get
    tokens from their own tenant; multi-tenant ones from `botframework.com`."""

    def __init__(self, *, app_id: str, password: str, tenant_id: str | None) -> None:
        from microsoft_agents.authentication.msal import MsalAuth
        from microsoft_agents.hosting.core.authorization import (
            AgentAuthConfiguration,
            AuthTypes,
        )

        self._auth = MsalAuth(
            AgentAuthConfiguration(
                auth_type=AuthTypes.client_secret,
                client_id=app_id,
                client_secret=password,
                tenant_id=tenant_id or "botframework.com",
            )
        )

    async def token(self) -> str | None:
        return await self._auth.get_access_token(
            "https://api.botframework.com", [BOT_FRAMEWORK_SCOPE]
        )


@functools.lru_cache(maxsize=1024)
def check_service_url(url: str, *, allow_loopback_http: bool) -> str:
    """The service URL with one trailing `/`, or ValueError: https only, except http to a
    loopback address while local unauthenticated mode is on. Memoized: every activity
    carries one, and a tenant's is the same on every message (a refused one is not kept)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError("serviceUrl is not a URL") from None
    host = parts.hostname or ""
    if parts.username or parts.password or parts.query or parts.fragment or not host:
        raise ValueError("serviceUrl must be a plain https URL")
    if parts.scheme == "http" and allow_loopback_http and is_loopback_host(host):
        pass
    elif parts.scheme != "https":
        raise ValueError("serviceUrl must use https")
    return url if url.endswith("/") else url + "/"


class Gone(Rejected):
    """The activity to update no longer exists (HTTP 404): post the card anew instead."""


class ConnectorError(Exception):
    """A look-up (roster, personal chat) that failed; `outcome` says whether to retry."""

    def __init__(self, outcome: SendOutcome) -> None:
        super().__init__(getattr(outcome, "reason", "connector error"))
        self.outcome = outcome


CONNECTIONS = 16
"""The most connector connections one client keeps open (every service URL together)."""


class Connector:
    """One aiohttp session for every service URL; the token is fetched per request (MSAL
    caches it), so a refreshed token is used as soon as it exists.

    The session's pool holds at most `CONNECTIONS`, as Slack's does (`adapters.slack.sender`,
    `SharedSession`): aiohttp's default bound (100) let a burst of sends while the connector
    was slow leave dozens of connections (descriptors) open for good. Teams allows a bot a
    few messages per second per conversation, and a call takes a fraction of a second, so 16
    is several times what the outbox's sends need; a send that must wait for a connection
    waits inside its own timeout."""

    def __init__(self, tokens: TokenProvider, *, timeout_s: float = 10.0) -> None:
        self._tokens = tokens
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(
        self, service_url: str, conversation: str, activity: Mapping[str, Any]
    ) -> SendOutcome:
        url = f"{service_url}v3/conversations/{_segment(conversation)}/activities"
        return await self._send("POST", url, activity)

    async def update(
        self, service_url: str, conversation: str, activity_id: str, activity: Mapping[str, Any]
    ) -> SendOutcome:
        url = (
            f"{service_url}v3/conversations/{_segment(conversation)}"
            f"/activities/{_segment(activity_id)}"
        )
        return await self._send("PUT", url, {**activity, "id": activity_id}, gone_on_404=True)

    async def open_personal_chat(
        self, service_url: str, *, bot: Mapping[str, Any], user_id: str, tenant_id: str | None
    ) -> str:
        """The id of the bot's personal chat with `user_id` (Teams answers the same chat
        every time). Raises ConnectorError."""
        body: dict[str, Any] = {"isGroup": False, "bot": dict(bot), "members": [{"id": user_id}]}
        if tenant_id:
            body["tenantId"] = tenant_id
            body["channelData"] = {"tenant": {"id": tenant_id}}
        status, data, headers = await self._request("POST", f"{service_url}v3/conversations", body)
        outcome = _classify(status, headers)
        conversation = data.get("id") if isinstance(data, Mapping) else None
        if not isinstance(outcome, Sent) or not isinstance(conversation, str) or not conversation:
            raise ConnectorError(outcome if not isinstance(outcome, Sent) else _unreadable())
        return conversation

    async def member(self, service_url: str, conversation: str, user_id: str) -> dict[str, Any]:
        """The roster entry of `user_id` in `conversation` (with `userRole`). Raises
        ConnectorError; a 404 (not a member) is a `Rejected` outcome."""
        url = f"{service_url}v3/conversations/{_segment(conversation)}/members/{_segment(user_id)}"
        status, data, headers = await self._request("GET", url, None)
        outcome = _classify(status, headers)
        if not isinstance(outcome, Sent):
            raise ConnectorError(outcome)
        if not isinstance(data, dict):
            raise ConnectorError(_unreadable())
        return data

    async def _send(
        self,
        method: str,
        url: str,
        activity: Mapping[str, Any],
        *,
        gone_on_404: bool = False,
    ) -> SendOutcome:
        try:
            status, data, headers = await self._request(method, url, activity)
        except ConnectorError as exc:
            return exc.outcome
        if status == 404 and gone_on_404:
            return Gone(reason="the activity to update is gone (HTTP 404)")
        outcome = _classify(status, headers)
        if isinstance(outcome, Sent):
            remote = data.get("id") if isinstance(data, Mapping) else None
            return Sent(remote_id=str(remote) if remote else None)
        return outcome

    async def _request(
        self,
        method: str,
        url: str,
        body: Mapping[str, Any] | None,
    ) -> tuple[int, Any, Mapping[str, str]]:
        try:
            token = await self._tokens.token()
        except Exception as exc:  # MSAL and its network: nothing was sent
            log.warning("teams token acquisition failed: %s", type(exc).__name__)
            raise ConnectorError(
                RetryLater(reason=f"could not get the bot's token ({type(exc).__name__})")
            ) from None
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONNECTIONS), json_serialize=_utf8_json
            )
        try:
            async with self._session.request(
                method,
                url,
                json=dict(body) if body is not None else None,
                headers=headers,
                allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                try:
                    data: Any = await response.json(content_type=None)
                except ValueError:
                    data = None
                return response.status, data, response.headers
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # Checked first: a connect timeout is a TimeoutError too, but nothing was sent.
            raise ConnectorError(
                RetryLater(reason=f"could not connect to Teams ({type(exc).__name__})")
            ) from None
        except aiohttp.InvalidURL:
            raise ConnectorError(Rejected(reason="the service URL is not a valid URL")) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ConnectorError(
                TimedOut(reason=f"no complete answer from Teams ({type(exc).__name__})")
            ) from None


def _utf8_json(body: Any) -> str:
    """A body as UTF-8 JSON, as `cards.MAX_CARD_BYTES` is measured: `\\uXXXX` escapes (json's
    default) make a non-ASCII card up to twice as large on the wire, past Teams' limit. Text
    with a lone surrogate (a broken emoji a user sent) cannot be UTF-8: it is escaped instead."""
    text = json.dumps(body, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(body)
    return text


def _segment(value: str) -> str:
    """A conversation or activity id as one path segment. Teams ids hold `:`, `;`, `@` and
    `=`, which are legal in a path and sent as they are; `/`, `?`, `#` and `%` are escaped."""
    return quote(value, safe=":;@=,!$&'()*+-._~")


def _classify(status: int, headers: Mapping[str, str]) -> SendOutcome:
    """The connector's answer as an outbox outcome (learn.microsoft.com/microsoftteams/platform,
    "Optimize your bot: rate limiting", and the Bot Framework REST API reference)."""
    if 200 <= status < 300:
        return Sent()
    if status == 429:
        return RetryLater(
            reason="rate limited by Teams (HTTP 429)",
            retry_after_ms=retry_after_ms(headers.get("Retry-After")),
        )
    if status in (408, 412) or status >= 500:
        # 412 is Teams' "precondition failed" during service upgrades.
        return RetryLater(
            reason=f"Teams answered HTTP {status}",
            retry_after_ms=retry_after_ms(headers.get("Retry-After")),
        )
    if 300 <= status < 400:
        return Rejected(reason=f"Teams redirected (HTTP {status}); redirects are not followed")
    return Rejected(reason=f"Teams refused the request (HTTP {status})")


def _unreadable() -> SendOutcome:
    return RetryLater(reason="Teams' answer could not be read")
