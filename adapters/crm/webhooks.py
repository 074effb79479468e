"""`POST /crm/hubspot` and `POST /crm/salesforce/<secret>`: records created in the CRM arrive
as leads, through the same runtime call as `POST /leads` (`handle`: decide, commit, then
answer), deduped by the CRM's id (`adapters.crm.leads`).

Each request is checked before anything is read or stored — HubSpot's signature v3
(`adapters.crm.hubspot_webhook`), Salesforce's URL secret and organization id
(`adapters.crm.salesforce_outbound`) — and a refusal stores nothing:

| answer | HubSpot | Salesforce |
|---|---|---|
| 401 | no `HUBSPOT_CLIENT_SECRET`; signature or timestamp missing, malformed, stale or wrong | no `SALESFORCE_WEBHOOK_SECRET`/`SALESFORCE_ORG_ID`; the URL's secret missing or wrong |
| 403 | — | a message from another org |
| 413, 415, 400 | over 256 KB; not JSON; not a list of events | over 1 MiB; not XML; not a `notifications` envelope |
| 503 | HubSpot could not be read now (it redelivers) | — |
| 200 | every event handled: `{"leads": [{"lead_id", "status"}], "skipped": [...]}` | the `Ack` envelope |

A lead is committed before the answer, so an acknowledged delivery is never lost; a
delivery again after a failure (either vendor retries) lands on the same leads, committed
once. Records salesbot wrote are skipped (`adapters.crm.leads.is_salesbot_record`).

Errors are one-line JSON (HubSpot) or a SOAP-less plain line (Salesforce: it only looks at
the Ack); nothing echoes the body, a secret or a traceback.

Another installation's own CRM (a workspace or tenant that installed the app) has the same
routes under `/crm/installations/<installation id>/` (`installation_paths`), checked with
that installation's own secrets; its leads are that installation's (`Actor.installation`).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from adapters.crm import hubspot_webhook as hs
from adapters.crm import salesforce_outbound as sf
from adapters.crm.leads import CrmLead, to_inbound
from domain.inbound import Inbound

log = logging.getLogger(__name__)

Handle = Callable[[Inbound], Awaitable[object]]

HUBSPOT_PATH = "/crm/hubspot"
SALESFORCE_PATH = "/crm/salesforce"
INSTALLATIONS_PATH = "/crm/installations"


def installation_paths(installation: str) -> tuple[str, str]:
    """The HubSpot and Salesforce routes of another installation's own CRM."""
    base = f"{INSTALLATIONS_PATH}/{installation}"
    return base + HUBSPOT_PATH.removeprefix("/crm"), base + SALESFORCE_PATH.removeprefix("/crm")


HUBSPOT_MAX_BYTES = 256 * 1024
SALESFORCE_MAX_BYTES = 1024 * 1024


@dataclass(frozen=True)
class HubSpotInbound:
    """`HUBSPOT_CLIENT_SECRET` (None: every request refused), the contact reader, and the
    public URL HubSpot calls (`SALESBOT_PUBLIC_URL`), whose path the signature covers."""

    client_secret: str | None
    reader: hs.HubSpotContactReader | None
    public_url: str


@dataclass(frozen=True)
class SalesforceInbound:
    """`SALESFORCE_WEBHOOK_SECRET` and `SALESFORCE_ORG_ID` (either None: every request
    refused)."""

    url_secret: str | None
    org_id: str | None


class CrmWebhooks:
    """The CRM's inbound routes (see the module docstring). `now_ms` is the clock HubSpot's
    timestamps are checked against."""

    def __init__(
        self,
        *,
        handle: Handle,
        now_ms: Callable[[], int],
        hubspot: HubSpotInbound | None = None,
        salesforce: SalesforceInbound | None = None,
        installation: str = "",
    ) -> None:
        """`installation`: whose CRM this is ("" the first installation's, on the plain
        routes; another's on `installation_paths`), and so whose leads."""
        self._handle = handle
        self._now_ms = now_ms
        self._hubspot = hubspot
        self._salesforce = salesforce
        self._installation = installation

    def add_routes(self, app: web.Application) -> None:
        hubspot_path, salesforce_path = (
            installation_paths(self._installation)
            if self._installation
            else (HUBSPOT_PATH, SALESFORCE_PATH)
        )
        if self._hubspot is not None:
            app.router.add_post(hubspot_path, self._guarded(self._post_hubspot))
        if self._salesforce is not None:
            app.router.add_post(salesforce_path, self._guarded(self._post_salesforce))
            app.router.add_post(salesforce_path + "/{secret}", self._guarded(self._post_salesforce))

    def _guarded(
        self, handler: Callable[[web.Request], Awaitable[web.Response]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def guarded(request: web.Request) -> web.Response:
            try:
                return await handler(request)
            except _Early as early:
                return early.response
            except web.HTTPException:
                raise
            except Exception as exc:
                # The type only: a message could carry a prospect's data.
                log.error("crm webhook: unexpected %s on %s", type(exc).__name__, request.path)
                return _error(500, "Something went wrong on our side; the CRM will retry.")

        return guarded

    # HubSpot

    async def _post_hubspot(self, request: web.Request) -> web.Response:
        config = self._hubspot
        assert config is not None
        if config.client_secret is None or config.reader is None:
            return _error(401, "HubSpot webhooks are refused until HUBSPOT_CLIENT_SECRET is set.")
        raw = await _body(request, HUBSPOT_MAX_BYTES)
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _error(400, "The body must be UTF-8.")
        verdict = hs.verify(
            config.client_secret,
            method=request.method,
            uris=(config.public_url.rstrip("/") + request.raw_path, str(request.url)),
            body=body,
            signature=request.headers.get(hs.SIGNATURE_HEADER),
            timestamp=request.headers.get(hs.TIMESTAMP_HEADER),
            now_ms=self._now_ms(),
        )
        if verdict != "ok":
            log.warning("crm webhook: refused a HubSpot request (%s signature)", verdict)
            return _error(401, _HUBSPOT_REFUSALS[verdict])
        try:
            events = hs.parse_events(body)
        except hs.EventsError as exc:
            return _error(400, f"Not HubSpot's webhook events: {exc}.")
        wanted = [event for event in events if event.creates_contact]
        skipped = [
            {"object_id": str(e.object_id), "reason": "not a contact creation"}
            for e in events
            if not e.creates_contact
        ]
        try:
            contacts = await config.reader.read([str(e.object_id) for e in wanted])
        except hs.ReadFailedError as failed:
            log.warning("crm webhook: HubSpot contacts could not be read: %s", failed.reason)
            return _error(503, "HubSpot could not be read now; deliver the events again.")
        leads: list[CrmLead] = []
        for event in wanted:
            contact_id = str(event.object_id)
            properties = contacts.get(contact_id)
            lead = (
                None
                if properties is None
                else hs.contact_lead(event.portal_id, contact_id, properties)
            )
            if lead is None:
                reason = "no longer in HubSpot" if properties is None else "written by salesbot"
                skipped.append({"object_id": contact_id, "reason": reason})
                continue
            if lead.key not in {known.key for known in leads}:
                leads.append(lead)
        handled = [await self._submit(lead) for lead in leads]
        return web.json_response({"leads": handled, "skipped": skipped})

    # Salesforce

    async def _post_salesforce(self, request: web.Request) -> web.Response:
        config = self._salesforce
        assert config is not None
        if config.url_secret is None or config.org_id is None:
            return _plain(
                401,
                "Salesforce outbound messages are refused until SALESFORCE_WEBHOOK_SECRET "
                "and SALESFORCE_ORG_ID are set.",
            )
        presented = request.match_info.get("secret", "")
        if not hmac.compare_digest(
            presented.encode("utf-8", "surrogateescape"), config.url_secret.encode("utf-8")
        ):
            log.warning("crm webhook: refused a Salesforce message (URL secret)")
            return _plain(401, "The endpoint URL must end with the webhook secret.")
        raw = await _body(request, SALESFORCE_MAX_BYTES)
        media = request.content_type
        if media not in {"text/xml", "application/soap+xml", "application/xml"}:
            return _plain(415, "The body must be a SOAP message (text/xml).")
        try:
            message = sf.parse(raw)
        except sf.MessageError as exc:
            return _plain(400, f"Not a Salesforce outbound message: {exc}.")
        if not sf.same_org(config.org_id, message.org_id):
            log.warning("crm webhook: refused a Salesforce message from another org")
            return _plain(403, "This outbound message comes from another Salesforce org.")
        for lead in {lead.key: lead for lead in message.leads}.values():
            await self._submit(lead)
        return web.Response(text=sf.ACK, content_type="text/xml", charset="utf-8")

    async def _submit(self, lead: CrmLead) -> dict[str, Any]:
        """The lead through the runtime (committed before this returns); a redelivery is
        the runtime's duplicate of the first."""
        inbound = to_inbound(lead, self._installation)
        result = await self._handle(inbound)
        duplicate = getattr(result, "status", None) == "duplicate"
        return {
            "lead_id": inbound.conversation_id,
            "status": "existing" if duplicate else "created",
        }


_HUBSPOT_REFUSALS = {
    "missing": "X-HubSpot-Signature-v3 and X-HubSpot-Request-Timestamp are required.",
    "stale": "The request timestamp is more than 5 minutes away from ours.",
    "bad": "The signature does not match this request.",
}


class _Early(Exception):  # noqa: N818  # control flow, not an error
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


async def _body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise _Early(_error(413, f"The body must be at most {limit // 1024} KB."))
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            raise _Early(_error(413, f"The body must be at most {limit // 1024} KB."))
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _plain(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", content_type="text/plain")
