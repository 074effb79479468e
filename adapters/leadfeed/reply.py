"""The prospect hears back: the bot's replies to a lead, POSTed to its reply URL.

A lead may carry a `reply_url` (validated by the feed), or the source has one configured
(`SALESBOT_LEAD_REPLY_URL`). `LeadReplyRouter` sends each reply meant for the conversation
there (never the team's, handoff or approvers' messages), and `LeadReplySender` posts it
through the outbox as

    POST <url>
    Content-Type: application/json
    Idempotency-Key: <outbox key>
    X-Salesbot-Signature: sha256=<hex HMAC-SHA256(SALESBOT_LEAD_REPLY_SECRET, raw body)>

    {"lead_id": "lead-…", "text": "…", "card": {…} | null,
     "actions": [{"label", "url", "method": "POST", "action", "target"}, …],
     "reply_key": "<outbox key>", "schema_version": 2, "generator_version": "salesbot/…"}

`actions` are signed links that press the card's buttons a prospect may press (*Accept
quote*, *Talk to a person*; `adapters.leadfeed.links`), built when the reply is sent with the
action key and `SALESBOT_PUBLIC_URL`.

(`adapters.leadfeed.models.LeadReply`; its JSON Schema is `docs/schemas/lead_reply.schema.json`.)

The signature covers the raw body, which includes `reply_key`, so a receiver that verifies it
(`verify_signature`) knows both the content and the key are ours. There is no timestamp:
a replayed request is just a resend with the same key, which the receiver must dedupe
anyway.

**Receivers must dedupe by `Idempotency-Key`.** That is the contract that makes resending
safe: after an uncertain send (a timeout, a reset after the request went out) the outbox
resends the same delivery with the same key, and `find_sent` has nothing to look up —
there is no history to search on an arbitrary endpoint — so it always says "not found".

One send is one request: no retries, no redirects followed (a 3xx is a refusal — a reply URL
that moves is not one we were given), the outbox owns retries and `Retry-After`. Replies are
never sent unsigned: without a secret every send is rejected, loudly, by the outbox. Nothing
here logs the text, the URL's query or the secret.

A reply URL is attacker-controlled (whoever posts the lead chooses it): it is checked again
at send time against `adapters.outbound.OutboundPolicy` — the feed checked it at intake, but
rules, the allow-list and DNS answers change — and the request goes through
`adapters.outbound_http.checked_session`, which connects only to an address that passed the
check. A forbidden destination is a permanent `Rejected` (dead-lettered, with the reason),
never a retry; a name that does not resolve is retried.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import ssl
from collections.abc import Sequence
from typing import Any, TypedDict
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from adapters.action_binding import ActionKey
from adapters.ids import LEADS
from adapters.leadfeed.links import action_links
from adapters.leadfeed.models import LeadReply, check_reply_url
from adapters.outbound import OutboundPolicy, OutboundRefusedError
from adapters.outbound_http import checked_session
from adapters.ports import Delivery, Rejected, RetryLater, Route, SendOutcome, Sent, TimedOut
from adapters.retry_after import retry_after_ms
from domain.cards import Reply
from domain.inbound import Inbound
from domain.state import ConversationState

log = logging.getLogger(__name__)

CHANNEL_PREFIX = LEADS.channel_prefix
ADAPTER = LEADS.adapter
ADAPTER_VERSION = 2
"""The lead feed's reply adapter version: the version of what this adapter keeps in a route's `target` and of how its
sender renders a reply. Recorded in every outbox payload it routes; bump it when either
changes meaning. 2: the body carries the card's buttons as signed links (`actions`)."""
SIGNATURE_HEADER = "X-Salesbot-Signature"
SIGNATURE_PREFIX = "sha256="


class LeadReplyTarget(TypedDict):
    """A reply route's `target`, as the outbox payload stores it: where to POST, for which
    lead."""

    url: str
    lead_id: str


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for `body`."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """For receivers (and tests): whether `header` signs exactly these bytes. Constant-time;
    verify the raw body before parsing it."""
    return hmac.compare_digest(sign(secret, body).encode("ascii"), header.strip().encode("utf-8"))


class LeadReplyRouter:
    """Implements `adapters.ports.Router`: a lead conversation's prospect-facing replies go to
    the lead's reply URL, else the configured default; conversations that are not leads,
    leads with nowhere to reply, and leads from a system with no way back to the prospect
    (`LeadDetails.reply_in`, a CRM's webhook) get no route here."""

    def __init__(self, *, default_reply_url: str | None, outbound: OutboundPolicy) -> None:
        if default_reply_url is not None:
            # Checked without DNS: a name's addresses may change, an address or a scheme not.
            try:
                check_reply_url(default_reply_url, outbound)
            except ValueError as exc:
                raise ValueError(f"SALESBOT_LEAD_REPLY_URL {exc}.") from None
        self._default = default_reply_url

    def route(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        if reply.audience != "conversation" or state.lead is None:
            return []
        if not state.lead.reachable:
            return []  # a lead from a CRM: no reply path, whatever the default says
        url = state.lead.reply_url or self._default
        if not url:
            return []
        lead_id = state.conversation_id
        target: LeadReplyTarget = {"url": url, "lead_id": lead_id}
        return [
            Route(
                channel=LEADS.channel(lead_id),
                target=dict(target),
                adapter=ADAPTER,
                adapter_version=ADAPTER_VERSION,
            )
        ]


class LeadReplySender:
    """Implements `adapters.ports.Sender` for reply URLs (see the module docstring).

    `outbound` decides where a reply may go (the session is built from it on first use,
    inside the running loop); `ssl_context` replaces the default verified TLS context (tests:
    a local certificate authority). `timeout_s` bounds one request, connect included.
    """

    def __init__(
        self,
        *,
        secret: str | None,
        outbound: OutboundPolicy,
        ssl_context: ssl.SSLContext | None = None,
        timeout_s: float = 10.0,
        action_key: ActionKey | None = None,
        public_url: str = "",
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive.")
        self._action_key = action_key
        self._public_url = public_url
        self._outbound = outbound
        self._ssl = ssl_context
        self._secret = secret or None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, delivery: Delivery) -> SendOutcome:
        if self._secret is None:
            return Rejected(
                reason="SALESBOT_LEAD_REPLY_SECRET is not set; replies are never sent unsigned"
            )
        target = delivery.target
        url = target.get("url")
        if not isinstance(url, str) or not url:
            return Rejected(reason="the delivery names no reply URL")
        try:
            checked = self._outbound.check_url(url).url
        except OutboundRefusedError as exc:
            return Rejected(reason=f"the reply URL {exc.reason}")
        lead_id = target.get("lead_id")
        reply = delivery.reply
        lead = lead_id if isinstance(lead_id, str) else delivery.conversation_id
        links = (
            action_links(self._action_key, self._public_url, lead, delivery.key, reply.card)
            if self._action_key is not None and self._action_key.loaded
            else ()
        )
        body = _body(
            LeadReply(
                lead_id=lead,
                text=reply.text,
                card=reply.card,
                actions=links,
                reply_key=delivery.key,
            ).model_dump(mode="json")
        )
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": delivery.key,
            SIGNATURE_HEADER: sign(self._secret, body),
        }
        outcome = await self._post(checked, body, headers)
        if not isinstance(outcome, Sent):
            level = logging.ERROR if isinstance(outcome, Rejected) else logging.WARNING
            log.log(level, "lead reply %s to %s: %s", delivery.key, _host(url), outcome)
        return outcome

    async def find_sent(self, delivery: Delivery) -> None:
        """Always None: an arbitrary endpoint has no history to search, and none is needed —
        receivers dedupe by the `Idempotency-Key` header, so the outbox's resend of an
        uncertain delivery (same key) is harmless."""

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, url: URL, body: bytes, headers: dict[str, str]) -> SendOutcome:
        if self._session is None or self._session.closed:
            self._session = checked_session(self._outbound, ssl_context=self._ssl)
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False, timeout=self._timeout
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, OutboundRefusedError):
                # Found at connect time, after the look-up: permanent, nothing was sent.
                return Rejected(reason=f"the reply URL {exc.os_error.reason}")
            return RetryLater(reason=f"could not connect to the reply URL ({type(exc).__name__})")
        except aiohttp.ConnectionTimeoutError as exc:
            # Before TimeoutError: a connect timeout is one too, but nothing was sent.
            return RetryLater(reason=f"could not connect to the reply URL ({type(exc).__name__})")
        except aiohttp.InvalidURL:
            return Rejected(reason="the reply URL is not a valid URL")
        except (TimeoutError, aiohttp.ClientError) as exc:
            # A read timeout, a reset or a cut-off answer after the request went out.
            return TimedOut(reason=f"no complete answer from the reply URL ({type(exc).__name__})")
        return _classify(status, retry_after)


def _classify(status: int, retry_after: str | None) -> SendOutcome:
    if 200 <= status < 300:
        return Sent()
    if status == 429:
        return RetryLater(
            reason="rate limited by the reply URL (HTTP 429)",
            retry_after_ms=retry_after_ms(retry_after),
        )
    if status >= 500 or status == 408:
        return RetryLater(
            reason=f"the reply URL answered HTTP {status}",
            retry_after_ms=retry_after_ms(retry_after),
        )
    if 300 <= status < 400:
        return Rejected(
            reason=f"the reply URL redirects (HTTP {status}); redirects are not followed"
        )
    return Rejected(reason=f"the reply URL refused the reply (HTTP {status})")


def _body(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _host(url: str) -> str:
    """For logs: the host only (a query string may carry a token)."""
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"
