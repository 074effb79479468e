"""Delivery to Teams through the connector: the outbox's `Sender` for Teams routes.

A route's target (from `TeamsRouter`) names a conversation, or a destination ("handoff",
"leads") resolved here to that conversation of the installation the delivery's conversation
belongs to (`tenants.py`: its tenant's when installed, else the home tenant's, whose
conversations are the configured ones or the channel the bot was added to). A tenant's
tickets never fall back to another tenant's channel: without one of its own they wait.
Then, in order:
- `thread_of_ref`: post in the thread the card with that ref started (a lead's thread); if
  the card is still in the outbox, retry later;
- `user`: a private notice — in a personal chat a plain post, from a channel or group chat
  a post in the person's personal chat with the bot;
- `reply.replaces`: update the card in place (PUT) when we know which activity holds it,
  else post it anew;
- after a post, remember where the card is (and, for `starts_thread`, the thread it began).

A card is rendered for the conversation it is finally posted in (a private notice's for the
person's personal chat): its buttons are signed for that conversation and its tenant
(`binding.py`), so a click on them counts there only.

Every conversation is reached through the service URL its activities came from; a
conversation the bot has never heard from (a configured handoff channel before anyone used
the bot there) borrows its installation's, else the install channel's, else the latest
one Teams used. With none
known yet (no activity ever arrived), the message waits.

Look before resend: Bot Framework offers bots no history to search, so `find_sent` cannot
see whether a timed-out post arrived and says "not found"; the outbox then posts again. A
timeout *after* Teams accepted a post can therefore show a message twice — rare (it needs a
lost answer) and visible, which beats a lost handoff. Updates are idempotent and safe to
repeat. Nothing here logs message text or tokens.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from adapters.action_binding import ActionKey
from adapters.ports import Delivery, Rejected, RetryLater, SendOutcome, Sent
from adapters.teams import book
from adapters.teams.binding import Placement
from adapters.teams.cards import activity as render_activity
from adapters.teams.connector import Connector, ConnectorError, Gone
from adapters.teams.ids import bf_conversation
from adapters.teams.tenants import Installation, Tenants
from domain.cards import Person

log = logging.getLogger(__name__)

WAIT_FOR_ADDRESS_MS = 60_000
"""How long a message waits before asking again for a service URL nobody has given yet."""


class TeamsSender:
    def __init__(
        self,
        connector: Connector,
        states: book.StateBook,
        *,
        handoff_conversation: str | None,
        leads_conversation: str | None,
        clock: Callable[[], int],
        action_key: ActionKey,
        tenant_id: str | None = None,
        tenants: Tenants | None = None,
    ) -> None:
        """`action_key` signs every button (`binding.py`); `tenant_id` is the home tenant,
        which cards are signed for where no conversation reference says otherwise.
        `tenants` are the installations (`tenants.py`), whose handoff and leads
        conversations the destinations resolve to; without it, the home tenant's alone
        (`handoff_conversation`, `leads_conversation`)."""
        self._key = action_key
        self._tenant_id = tenant_id
        self._connector = connector
        self._states = states
        self._tenants = tenants or Tenants(
            states,
            home_tenant=tenant_id,
            home_handoff=handoff_conversation,
            home_leads=leads_conversation,
            clock=clock,
        )
        self._clock = clock

    async def send(self, delivery: Delivery) -> SendOutcome:
        target = delivery.target
        # Only a destination ("handoff", "leads") depends on the installation: others name
        # their conversation, which is reached as its own reference says.
        installation = None
        tenant = _str(target.get("tenant"))
        if "destination" in target and tenant is not None:
            # A lead of an installed tenant (`router.py`): that tenant's conversations only.
            installation = await self._tenants.installation(tenant)
            if installation is None:
                return RetryLater(
                    reason=f"tenant {tenant} has no installation: its lead waits for one",
                    retry_after_ms=WAIT_FOR_ADDRESS_MS,
                )
        elif "destination" in target:
            installation = await self._installation_of(delivery.conversation_id)
        where = await self._conversation(target, installation)
        if isinstance(where, RetryLater | Rejected):
            return where
        if "conversation" in target and self._tenants.multi:
            kept = await self._within_tenant(delivery, where)
            if isinstance(kept, RetryLater):
                return kept
            where, installation = kept
        conversation = where
        reference = await self._states.get_state(book.conversation_key(conversation))
        service_url = await self._service_url(reference, installation)
        if service_url is None:
            return RetryLater(
                reason="no Teams service URL known yet: add the bot to the team or chat",
                retry_after_ms=WAIT_FOR_ADDRESS_MS,
            )
        reply = delivery.reply
        user = _str(target.get("user"))
        if user is not None:
            return await self._notice(
                service_url, conversation, reference, user, delivery, installation
            )

        message = with_mention(
            self._render(delivery, conversation, self._tenant(reference, installation)),
            _str(target.get("mention")),
        )
        if not reply.replaces:
            # The owner (`[routing]`) is notified by a new post; an update notifies nobody.
            message = with_person(message, reply.notify)
        if reply.replaces:
            held = await self._states.get_state(book.card_key(conversation, reply.replaces))
            activity_id = _str(held.get("activity_id")) if held else None
            if activity_id is not None:
                outcome = await self._connector.update(
                    service_url, conversation, activity_id, message
                )
                if isinstance(outcome, Sent) and reply.card is not None and reply.card.ref:
                    await self._remember_card(conversation, reply.card.ref, activity_id)
                if not isinstance(outcome, Gone):
                    return outcome
                log.info("teams card %s is gone; posting it anew", reply.replaces)

        outcome = await self._connector.post(service_url, conversation, message)
        if isinstance(outcome, Sent) and outcome.remote_id:
            await self._after_post(delivery, conversation, outcome.remote_id)
        return outcome

    def _render(self, delivery: Delivery, posted_in: str, tenant: str) -> dict[str, Any]:
        """The message for `posted_in`: its buttons are signed for that conversation and
        tenant (`binding.py`), so they work there and nowhere else."""
        return render_activity(
            delivery.reply,
            conversation=delivery.conversation_id,
            nonce_seed=delivery.key,
            placement=Placement(self._key, tenant, posted_in),
        )

    def _tenant(
        self, reference: Mapping[str, Any] | None, installation: Installation | None
    ) -> str:
        """The tenant a conversation's cards are signed for: the one its reference states;
        for a conversation not heard from yet (a handoff channel set at install), the
        tenant of the installation it serves (the home one: `TEAMS_APP_TENANT_ID`)."""
        if reference is None:
            return (installation.tenant_id if installation else "") or self._tenant_id or ""
        return _str(_map(reference, "conversation").get("tenantId")) or ""

    async def _within_tenant(
        self, delivery: Delivery, conversation: str
    ) -> tuple[str, Installation | None] | RetryLater:
        """A post into a conversation other than the delivery's own (the policy's escalation
        conversation) stays within the delivery's installation: a conversation of another
        tenant's gets its own handoff conversation instead, or waits for one."""
        own = bf_conversation(delivery.conversation_id)
        if own is None or book.base_conversation(own) == book.base_conversation(conversation):
            return conversation, None
        source = await self._installation_of(delivery.conversation_id)
        reference = await self._states.get_state(book.conversation_key(conversation))
        destination = await self._tenants.for_reference(reference)
        if destination.tenant_id.lower() == source.tenant_id.lower():
            return conversation, None
        if source.handoff is None:
            return RetryLater(
                reason=f"no Teams handoff conversation for tenant {source.tenant_id}: add the "
                "app to a team, or say `setup handoff` to the bot in a channel",
                retry_after_ms=WAIT_FOR_ADDRESS_MS,
            )
        return source.handoff, source

    async def _installation_of(self, conversation_id: str) -> Installation:
        """The installation a delivery's conversation belongs to (`tenants.py`): its
        handoff and leads conversations are where its tickets and lead cards go."""
        if not self._tenants.multi:
            return await self._tenants.home()  # one tenant: no reference to read
        bf = bf_conversation(conversation_id)
        reference = await self._states.get_state(book.conversation_key(bf)) if bf else None
        return await self._tenants.for_reference(reference)

    @property
    def connector(self) -> Connector:
        return self._connector

    async def find_sent(self, delivery: Delivery) -> str | None:
        """Always None: Teams has no message history a bot can search (module docstring)."""
        return None

    async def close(self) -> None:
        await self._connector.close()

    async def _conversation(
        self, target: Mapping[str, Any], installation: Installation | None
    ) -> str | RetryLater | Rejected:
        ref = _str(target.get("thread_of_ref"))
        if ref is not None:
            # The thread, wherever its card went (configuration may have changed since).
            thread = await self._states.get_state(book.thread_key(ref))
            found = _str(thread.get("conversation")) if thread else None
            if found is None:
                return RetryLater(reason="the lead's card is not in Teams yet")
            return found
        conversation = _str(target.get("conversation"))
        if conversation is not None:
            return conversation
        destination = _str(target.get("destination"))
        if destination not in ("handoff", "leads") or installation is None:
            return Rejected(reason="the delivery names no Teams conversation")
        conversation = installation.handoff if destination == "handoff" else installation.leads
        if conversation is None:
            if installation.home:
                reason = (
                    f"no Teams {destination} conversation: set "
                    f"TEAMS_{destination.upper()}_CONVERSATION or add the bot to a team"
                )
            else:
                reason = (
                    f"no Teams {destination} conversation for tenant {installation.tenant_id}: "
                    f"add the app to a team, or say `setup {destination}` to the bot in a channel"
                )
            return RetryLater(reason=reason, retry_after_ms=WAIT_FOR_ADDRESS_MS)
        return conversation

    async def _service_url(
        self, reference: Mapping[str, Any] | None, installation: Installation | None
    ) -> str | None:
        found = _str(reference.get("serviceUrl")) if reference else None
        if found is None and installation is not None:
            found = installation.service_url
        for fallback in (book.INSTALL_KEY, book.SERVICE_URL_KEY):
            if found is not None:
                break
            known = await self._states.get_state(fallback)
            found = _str(known.get("serviceUrl")) if known else None
        return found

    async def _notice(
        self,
        service_url: str,
        conversation: str,
        reference: Mapping[str, Any] | None,
        user: str,
        delivery: Delivery,
        installation: Installation | None,
    ) -> SendOutcome:
        """A private notice: in a personal chat, there; from a channel or group chat, in the
        person's personal chat with the bot, which only they can read (Teams' targeted
        messages would keep it in place, but they are a developer preview: an audit must
        not depend on one)."""
        if book.is_personal(conversation, reference):
            message = self._render(delivery, conversation, self._tenant(reference, installation))
            return await self._connector.post(service_url, conversation, message)
        account = await self._states.get_state(book.user_key(user))
        teams_id = _str(account.get("id")) if account else None
        if account is None or teams_id is None:
            return Rejected(reason="a private notice for a Teams user the bot has not seen")
        service_url = _str(account.get("serviceUrl")) or service_url
        try:
            chat = await self._personal_chat(service_url, reference, account, teams_id, user)
        except ConnectorError as exc:
            return exc.outcome
        if isinstance(chat, Rejected):
            return chat
        # The person's personal chat is in their own tenant.
        tenant = _str(account.get("tenantId")) or self._tenant_id or ""
        message = self._render(delivery, chat, tenant)
        return await self._connector.post(service_url, chat, message)

    async def _personal_chat(
        self,
        service_url: str,
        reference: Mapping[str, Any] | None,
        account: Mapping[str, Any],
        teams_id: str,
        user: str,
    ) -> str | Rejected:
        """The bot's personal chat with the person: remembered, else opened (Teams answers
        the same chat each time, so opening it twice is harmless)."""
        known = await self._states.get_state(book.personal_key(user))
        chat = _str(known.get("conversation")) if known else None
        if chat is not None:
            return chat
        bot = _map(reference or {}, "bot") or _map(
            await self._states.get_state(book.INSTALL_KEY) or {}, "bot"
        )
        if not _str(bot.get("id")):
            return Rejected(reason="no bot account known to open a personal chat with")
        chat = await self._connector.open_personal_chat(
            service_url, bot=bot, user_id=teams_id, tenant_id=_str(account.get("tenantId"))
        )
        await self._states.put_state(book.personal_key(user), {"conversation": chat}, self._clock())
        return chat

    async def _after_post(self, delivery: Delivery, conversation: str, activity_id: str) -> None:
        card = delivery.reply.card
        if card is not None and card.ref:
            await self._remember_card(conversation, card.ref, activity_id)
        starts = _str(delivery.target.get("starts_thread"))
        if starts is not None:
            thread = book.thread_conversation(conversation, activity_id)
            now = self._clock()
            await self._states.put_state(book.thread_key(starts), {"conversation": thread}, now)
            await self._states.put_state(
                book.lead_thread_key(thread), {"conversation_id": delivery.conversation_id}, now
            )

    async def _remember_card(self, conversation: str, ref: str, activity_id: str) -> None:
        await self._states.put_state(
            book.card_key(conversation, ref), {"activity_id": activity_id}, self._clock()
        )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _map(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


_TEAMS_USER = re.compile(
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|29:[A-Za-z0-9_\-]{1,200})$"
)
"""A user Teams can mention: an Entra object id (a GUID) or a Teams user id (`29:…`)."""


def with_person(message: dict[str, Any], person: Person | None) -> dict[str, Any]:
    """The message with `person` (the conversation's owner) mentioned in front of its text,
    as "@Name" (a user mention, which notifies them); an id Teams cannot mention is left
    alone."""
    if person is None or not _TEAMS_USER.match(person.id):
        return message
    name = "".join(ch for ch in person.name if ch not in "<>&").strip() or person.id
    at = f"<at>{name}</at>"
    text = str(message.get("text") or "")
    entity = {"type": "mention", "text": at, "mentioned": {"id": person.id, "name": name}}
    return {
        **message,
        "text": f"{at} {text}".strip(),
        "entities": [*message.get("entities", []), entity],
    }


def with_mention(message: dict[str, Any], group: str | None) -> dict[str, Any]:
    """The message with the policy's `[handoff.on_call] teams` mentioned in front of its text:
    `TAG_ID|Name` mentions the tag `TAG_ID` as "@Name" (a tag mention, which notifies its
    members); anything without a name is left alone."""
    if group is None or "|" not in group:
        return message
    tag, name = (part.strip() for part in group.split("|", 1))
    name = "".join(ch for ch in name if ch not in "<>&")
    if not tag or not name:
        return message
    at = f"<at>{name}</at>"
    text = str(message.get("text") or "")
    entity = {"type": "mention", "text": at, "mentioned": {"id": tag, "name": name, "type": "tag"}}
    return {
        **message,
        "text": f"{at} {text}".strip(),
        "entities": [*message.get("entities", []), entity],
    }
