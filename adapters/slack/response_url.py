"""Answering a slash command through its `response_url`.

A slash command carries a `response_url` that posts into the channel the command was run
in — also one the bot is not a member of (a channel it was never invited to, a DM between
two people), where chat.postMessage and chat.postEphemeral fail with `not_in_channel` or
`channel_not_found`. Slack allows it for 30 minutes and 5 uses
(https://docs.slack.dev/interactivity/handling-user-interaction#message_responses).

How it flows: the endpoint `remember`s the URL in the store's adapter state (its expiry and
use count, keyed by `ids.response_key(delivery_id)`) *before* the command is decided; the
router names that key on the routes of the command's replies; the sender `post`s through it
and counts every use (before the request: an answer lost on the way still used it). When
the URL has expired, is used up or turned away, `post` says so (None) and the sender takes
the chat.* path instead.

The URL is input, so it is checked when remembered and again before each post: only
`https://hooks.slack.com/…` — or, when `SLACK_API_URL` is a loopback address (tests with a
local fake Slack), only loopback URLs, since the real hooks.slack.com would not know that
Slack's commands — and redirects are never followed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp

from adapters.loopback import is_loopback_url
from adapters.ports import Rejected, RetryLater, SendOutcome, Sent, TimedOut
from adapters.retry_after import retry_after_ms
from adapters.slack import ids

log = logging.getLogger(__name__)

TTL_MS = 30 * 60 * 1000
MAX_USES = 5
SLACK_HOOKS_HOST = "hooks.slack.com"
MAX_URL_CHARS = 2000
_ANSWER_BYTES = 1024


class StateBook(Protocol):
    """The store's adapter state (`storage.ports.AdapterStateStore`), as used here."""

    async def put_state(self, key: str, value: Mapping[str, Any], at_ms: int) -> None: ...

    async def put_state_if_absent(
        self, key: str, value: Mapping[str, Any], at_ms: int
    ) -> dict[str, Any]: ...

    async def get_state(self, key: str) -> dict[str, Any] | None: ...

    async def delete_state(self, key: str) -> bool: ...


def allowed(url: object, *, loopback: bool) -> bool:
    """Whether the bot may post to `url` as a response URL (see the module docstring)."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.username is not None or parts.password is not None:
        return False
    if loopback:
        return parts.scheme in ("http", "https") and is_loopback_url(url)
    return (
        parts.scheme == "https"
        and parts.hostname == SLACK_HOOKS_HOST
        and port in (None, 443)
        and parts.path.startswith("/")
    )


class ResponseUrls:
    """The response URLs of slash commands: kept in adapter state, posted to by the sender."""

    def __init__(
        self,
        states: StateBook,
        clock: Callable[[], int],
        *,
        api_url: str,
        timeout_s: float = 10.0,
    ) -> None:
        self._states = states
        self._clock = clock
        self._loopback = is_loopback_url(api_url)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def remember(self, delivery_id: str, url: object) -> bool:
        """Keep a command's response URL for its replies; False (and nothing kept) when the
        delivery is not a command or the URL is not one the bot may post to. A redelivered
        command keeps the first record, and so its use count."""
        key = ids.response_key(delivery_id)
        if key is None or not allowed(url, loopback=self._loopback):
            if url:
                log.info("slash command %s: response_url not usable, replies use chat.*", key)
            return False
        now = self._clock()
        await self._states.put_state_if_absent(
            key, {"url": url, "expires_at_ms": now + TTL_MS, "uses": 0}, now
        )
        return True

    async def post(
        self, key: str, *, ephemeral: bool, text: str, blocks: list[dict[str, Any]]
    ) -> SendOutcome | None:
        """Post one reply through the URL kept under `key`: the outcome, or None when the
        URL cannot be used (unknown, expired, used up, refused, redirected) — then the
        caller posts with chat.* instead."""
        record = await self._states.get_state(key)
        if record is None:
            return None
        now = self._clock()
        url, expires, uses = record.get("url"), record.get("expires_at_ms"), record.get("uses")
        if (
            not isinstance(expires, int)
            or not isinstance(uses, int)
            or now >= expires
            or uses >= MAX_USES
            or not allowed(url, loopback=self._loopback)
        ):
            await self._states.delete_state(key)
            return None
        assert isinstance(url, str)  # checked by `allowed`
        await self._states.put_state(key, {**record, "uses": uses + 1}, now)
        body: dict[str, Any] = {
            "response_type": "ephemeral" if ephemeral else "in_channel",
            "text": text,
        }
        if blocks:
            body["blocks"] = blocks
        try:
            async with self._client().post(
                url,
                data=json.dumps(body),
                headers={"Content-Type": "application/json; charset=utf-8"},
                allow_redirects=False,
            ) as response:
                status = response.status
                answer = (await response.content.read(_ANSWER_BYTES)).decode("utf-8", "replace")
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            return RetryLater(
                reason=f"could not connect to the response_url ({type(exc).__name__})"
            )
        except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            return TimedOut(
                reason=f"no complete answer from the response_url ({type(exc).__name__})"
            )
        if 200 <= status < 300:
            return Sent(remote_id=None)
        if status == 429:
            return RetryLater(
                reason="rate limited on the response_url",
                retry_after_ms=retry_after_ms(retry_after),
            )
        if status >= 500:
            return RetryLater(reason=f"the response_url answered HTTP {status}")
        # A redirect (never followed), expired_url, used_url, or any other refusal: nothing
        # was posted, so the chat.* path may try.
        log.info("response_url refused (HTTP %s, %s): falling back to chat.*", status, answer[:60])
        await self._states.delete_state(key)
        return None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def rejected_for_membership(outcome: SendOutcome) -> bool:
    """A chat.* refusal that a response URL can get around: the bot is not in the channel."""
    return isinstance(outcome, Rejected) and outcome.reason in (
        "not_in_channel",
        "channel_not_found",
    )
