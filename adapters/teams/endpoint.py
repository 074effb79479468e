"""`POST /api/messages`: where Teams (Bot Framework) delivers activities.

Our own aiohttp handler, not the SDK's `CloudAdapter`, so swapping the SDK touches one
package and no SDK object reaches the runtime. For each request, in order:
1. the body is checked before anything parses it (`request_body.py`): JSON by its
   Content-Type (else 415), at most 1 MiB (413), UTF-8 (400), nested at most 64 deep,
   counted on the text (400), parsed, with no lone surrogate (400) — each with a one-line
   JSON reason, nothing stored;
2. the token is checked (`auth.TokenValidator`: issuer, audience, expiry with 5 minutes of
   skew, the `serviceUrl` claim): failure → 401, nothing stored. Without credentials the
   endpoint only exists in local mode (`TEAMS_ALLOW_UNAUTHENTICATED=1` on a loopback bind);
   then the activity's shape: not an object with a `type` and `serviceUrl` → 400, a field
   the adapter reads of the wrong type (or an id over 512 characters) → 422 naming it (an
   `Action.Execute` click gets its 200 and a message instead); a `serviceUrl` that is not
   https (loopback http in local mode) → 400, so the bot's token is never sent anywhere
   else;
3. an `installationUpdate` (the app added to or removed from a team or a personal scope)
   is recorded in its tenant's installation (`tenants.py`) and answered 200, nothing else;
   for any other activity, its tenant's installation says whose members are reps (the
   home tenant's, or the activity's own tenant's when installed); where the conversation is
   reached is written down (`book.py`), and the sender's role looked up in the roster when
   only that can tell a member from a guest;
3a. `setup handoff` / `setup leads` said to the bot in a team channel becomes the domain's
   `setup` command of the tenant's installation (`ids.installation_id`) for that
   channel (`setup handoff here`): the domain decides who may (an admin of the tenant, as
   on Slack) and records `channel_set` or `command_refused`, and answers the person
   privately; the committed choice is applied to the tenant's record by the surface (and,
   should that fail, by the outbox). The channel's team and service URL are noted first
   (`book.setup_place_key`): only the activity tells them. Said in a chat, it is answered
   with where to say it, and nothing is recorded;
3b. `setup approvers|auditors|managers|admins @…` said to the bot by a rep, anywhere,
   becomes the domain's `setup` of the tenant's installation naming the people
   @mentioned (`mentioned_people`): `roles_set` or `command_refused`; the lists set are
   read back for every activity of that installation (`_context_for`,
   `adapters/roles.py`), and whoever first adds the app to a team of another tenant than
   the home one is noted as its installer (an admin until its admins list is set);
4. the activity becomes one `Inbound` (`inbound.py`) and is decided and committed by the
   runtime *before* the answer, as on Slack: a 2xx means it is stored. A click is checked against the signature on its card's data (`binding.py`); one that
   does not match is recorded, refused, in the conversation it was made in;
5. a card's `Action.Execute` (an `adaptiveCard/action` invoke) is answered in the HTTP
   response with the refreshed card (signed for where it was clicked), or a message for
   the person who clicked (always a message for a refused click). Always 200: Teams shows
   any other status as a broken card. The answer is kept under the click's nonce, so a
   redelivered click gets the same answer.

Nothing here logs message text or tokens.
"""

from __future__ import annotations

import copy
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from aiohttp import web

from adapters.ports import Sent
from adapters.roles import InstallationRoles, RoleSets
from adapters.teams import book
from adapters.teams.auth import AuthError, TokenValidator
from adapters.teams.binding import Placement, click_placement
from adapters.teams.cards import adaptive_card
from adapters.teams.connector import Connector, ConnectorError, check_service_url
from adapters.teams.ids import bf_conversation, installation_id, parse_action_data
from adapters.teams.inbound import (
    EXECUTE_INVOKE,
    MAX_ENTITIES,
    Greeting,
    Ignored,
    TeamsContext,
    TeamsInbound,
    conversation_reference,
    from_activity,
)
from adapters.teams.request_body import RequestRefusedError, check_shape, read_json
from adapters.teams.tenants import Destination, Tenants, activity_tenant
from domain.decision import Decision
from domain.inbound import (
    MAX_NAMED_USERS,
    ButtonClicked,
    ChannelRef,
    CommandInvoked,
    Inbound,
    MessagePosted,
    UserRef,
)

log = logging.getLogger(__name__)

CARD_RESPONSE = "application/vnd.microsoft.card.adaptive"
MESSAGE_RESPONSE = "application/vnd.microsoft.activity.message"
ROLE_CACHE = 10_000
INSTALLATION_UPDATE = "installationUpdate"
SETUP_COMMAND = re.compile(r"setup\s+(handoff|leads)", re.IGNORECASE)
SETUP_ROLES = re.compile(r"setup\s+(approvers|auditors|managers|admins)(\s.*)?", re.IGNORECASE)
_WHAT = {"handoff": "tickets and approvals", "leads": "lead cards"}
MAX_CHANNEL_ID = 200
"""The longest channel id or name a `setup` states to the domain (`domain.inbound.ChannelRef`);
Teams' are far shorter, and a longer one is stated as no channel at all."""


class HandleOutcome(Protocol):
    """What the runtime answers (`bot.runtime.HandleResult`), as far as this endpoint reads it."""

    @property
    def status(self) -> str: ...

    @property
    def decision(self) -> Decision | None: ...


Handle = Callable[[Inbound], Awaitable[HandleOutcome]]


class TeamsEndpoint:
    def __init__(
        self,
        *,
        context: TeamsContext,
        validator: TokenValidator | None,
        connector: Connector,
        states: book.StateBook,
        handle: Handle,
        clock: Callable[[], int],
        tenants: Tenants | None = None,
        offers_setup: bool = False,
        roles: InstallationRoles | None = None,
    ) -> None:
        """`validator` None is local unauthenticated mode (the caller checked it is allowed).
        `tenants` are the installations (default: the home tenant alone); `offers_setup`:
        `setup handoff|leads` said in a channel, and `setup approvers|… @…`, are the
        domain's `setup` command of the tenant's installation (False: the words go to the
        runtime like any message);
        `roles`: the role lists each installation's admin set, over the environment's."""
        self._ctx = context
        self._role_lists = roles
        self._tenants = tenants or Tenants(states, home_tenant=context.tenant_id, clock=clock)
        self._offers_setup = offers_setup
        self._validator = validator
        self._connector = connector
        self._states = states
        self._handle = handle
        self._clock = clock
        self._roles: OrderedDict[tuple[str, str], str] = OrderedDict()
        # book key → the value last written, to skip rewrites (compared as data: encoding it
        # to compare cost more than the rest of the check, four times a message)
        self._written: dict[str, Mapping[str, Any]] = {}

    async def handle_request(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await read_json(request)
        except RequestRefusedError as exc:
            log.info("teams request refused (%s): %s", exc.status, exc.reason)
            return exc.response()
        activity: dict[str, Any] = body if isinstance(body, dict) else {}
        service_url = activity.get("serviceUrl")
        if self._validator is not None:
            try:
                channel = activity.get("channelId")
                await self._validator.validate(
                    request.headers.get("Authorization"),
                    service_url=service_url if isinstance(service_url, str) else None,
                    channel_id=channel if isinstance(channel, str) else None,
                )
            except AuthError as exc:
                log.warning("teams request refused: %s", exc.reason)
                return web.json_response({"error": "unauthorized"}, status=401)
        try:
            activity = check_shape(body)
            activity["serviceUrl"] = check_service_url(
                activity["serviceUrl"], allow_loopback_http=self._validator is None
            )
        except ValueError as exc:  # the service URL
            return web.json_response({"error": str(exc)}, status=400)
        except RequestRefusedError as exc:
            log.info("teams activity refused (%s): %s", exc.status, exc.reason)
            if exc.status == 422 and _is_execute(activity):
                # Teams shows anything but a 200 on a card as a broken card.
                return _invoke_message("This card action could not be read.")
            return exc.response()
        return await self._activity(activity)

    async def _activity(self, activity: dict[str, Any]) -> web.StreamResponse:
        if activity.get("type") == INSTALLATION_UPDATE:
            return await self._installation_update(activity)
        ctx = await self._context_for(activity)
        await self._with_role(activity, ctx)
        result = from_activity(activity, ctx)
        invoke = _is_execute(activity)
        if isinstance(result, Ignored):
            log.debug("teams activity ignored: %s", result.reason)
            if invoke:
                return _invoke_message("This card is not active any more.")
            return web.Response(status=200)
        await self._remember(activity)
        if isinstance(result, Greeting):
            return await self._greet(result, activity)
        setup = self._setup_request(activity, result)
        roles = self._roles_request(activity, result)
        inbound: Inbound
        if setup is not None and isinstance(result, MessagePosted):
            command = await self._set_up(activity, result, setup)
            if command is None:
                return web.Response(status=200)
            inbound = command  # said where it is (never a lead's conversation)
        elif roles is not None:
            inbound = roles  # said where it is (never a lead's conversation)
        else:
            inbound = await self._in_lead_thread(result)
        try:
            outcome = await self._handle(inbound)
        except Exception:
            log.exception("teams activity %s could not be handled", inbound.delivery_id)
            if invoke:  # never a broken card; the click was not recorded and can be repeated
                return _invoke_message("That did not go through. Please try again.")
            return web.json_response({"error": "not stored; retry"}, status=500)
        if invoke and isinstance(inbound, ButtonClicked):
            clicked = parse_action_data(_map(_map(activity, "value"), "action").get("data"))
            placement = click_placement(self._ctx.action_key, activity)
            return await self._invoke_answer(
                inbound, clicked.ref if clicked else "", outcome, placement
            )
        return web.Response(status=200)

    async def _context_for(self, activity: Mapping[str, Any]) -> TeamsContext:
        """The translation's context for one activity: its tenant's members are reps when
        that tenant is installed (`tenants.py`); otherwise the home tenant's, as before.
        The role lists are the installation's own where its admin set them
        (`adapters/roles.py`), else the environment's."""
        tenant = activity_tenant(activity)
        home = self._ctx.tenant_id
        if tenant is None or (home is not None and tenant == home.lower()):
            return await self._with_roles(self._ctx, home)
        if await self._tenants.installed(tenant):
            return await self._with_roles(
                replace(self._ctx, tenant_id=tenant, installation=installation_id(tenant)), tenant
            )
        return await self._with_roles(self._ctx, home)

    async def _with_roles(self, ctx: TeamsContext, tenant: str | None) -> TeamsContext:
        if self._role_lists is None or not tenant:
            return ctx
        configured = RoleSets(
            approvers=ctx.approvers, auditors=ctx.auditors, managers=ctx.managers, admins=ctx.admins
        )
        lists = await self._role_lists.for_installation(installation_id(tenant), configured)
        if lists == configured:
            return ctx
        return replace(
            ctx,
            approvers=lists.approvers,
            auditors=lists.auditors,
            managers=lists.managers,
            admins=lists.admins,
        )

    async def _with_role(self, activity: dict[str, Any], ctx: TeamsContext) -> None:
        """Copy the roster's `userRole` into `from`, where `inbound.py` reads it: only the
        roster tells a guest (who has an id in our tenant) from a member. Asked only for
        people who would otherwise count as members; a failed look-up counts as a guest."""
        sender = activity.get("from")
        conversation = activity.get("conversation")
        if not isinstance(sender, dict) or not isinstance(conversation, dict):
            return
        if sender.get("userRole") or not sender.get("aadObjectId") or ctx.tenant_id is None:
            return
        if sender.get("tenantId") and str(sender["tenantId"]).lower() != ctx.tenant_id.lower():
            return  # another tenant's user: a prospect whatever the roster says
        channel_data = activity.get("channelData")
        tenant = channel_data.get("tenant") if isinstance(channel_data, dict) else None
        tenant_id = tenant.get("id") if isinstance(tenant, dict) else conversation.get("tenantId")
        if not isinstance(tenant_id, str) or tenant_id.lower() != ctx.tenant_id.lower():
            return  # another tenant's user: a prospect whatever the roster says
        user, where = sender.get("id"), conversation.get("id")
        if not isinstance(user, str) or not isinstance(where, str):
            return
        key = (tenant_id.lower(), str(sender["aadObjectId"]))
        role = self._roles.get(key)
        if role is None:
            try:
                member = await self._connector.member(
                    activity["serviceUrl"], book.base_conversation(where), user
                )
            except ConnectorError as exc:
                log.warning("teams roster look-up failed (%s): treated as a guest", exc)
                sender["userRole"] = "guest"  # not cached: the next activity asks again
                return
            role = str(member.get("userRole") or "user")
            self._roles[key] = role
            while len(self._roles) > ROLE_CACHE:
                self._roles.popitem(last=False)
        self._roles.move_to_end(key)
        sender["userRole"] = role

    async def _remember(self, activity: Mapping[str, Any]) -> None:
        """The conversation's reference and the sender's account, written when they change."""
        reference = conversation_reference(activity)
        conversation = reference.get("conversation", {}).get("id")
        if isinstance(conversation, str):
            await self._write(book.conversation_key(conversation), reference)
        await self._write(book.SERVICE_URL_KEY, {"serviceUrl": activity.get("serviceUrl")})
        sender = activity.get("from")
        if isinstance(sender, Mapping) and isinstance(sender.get("id"), str):
            account = {
                "id": sender["id"],
                "name": sender.get("name"),
                "aadObjectId": sender.get("aadObjectId"),
                "serviceUrl": activity.get("serviceUrl"),
                "tenantId": reference.get("conversation", {}).get("tenantId"),
            }
            for user in {sender.get("aadObjectId"), sender["id"]} - {None, ""}:
                await self._write(book.user_key(str(user)), account)

    async def _write(self, key: str, value: Mapping[str, Any]) -> None:
        if self._written.get(key) == value:
            return
        await self._states.put_state(key, value, self._clock())
        self._written[key] = copy.deepcopy(value)  # its own: nobody else's change shows here
        if len(self._written) > ROLE_CACHE:
            self._written.pop(next(iter(self._written)))

    async def _greet(self, greeting: Greeting, activity: Mapping[str, Any]) -> web.StreamResponse:
        if not greeting.personal:
            conversation = greeting.conversation_reference.get("conversation") or {}
            if conversation.get("conversationType") == "channel" and self._home_tenant(activity):
                # A team's channel: where the home tenant's handoff and lead posts go when no
                # conversation is configured. Never a group chat: a prospect may be in it;
                # never another tenant's channel: its installation keeps its own
                # (`installationUpdate`, `tenants.py`).
                await self._states.put_state(
                    book.INSTALL_KEY, greeting.conversation_reference, self._clock()
                )
            return web.Response(status=200)
        if greeting.welcome is not None:
            await self._handle(greeting.welcome)
        return web.Response(status=200)

    def _home_tenant(self, activity: Mapping[str, Any]) -> bool:
        """The activity happened in the home tenant. Without `TEAMS_TENANTS` any channel
        the bot is added to serves, exactly as before installations existed; with it, only
        the home tenant's (none without `TEAMS_APP_TENANT_ID`): another tenant's channel
        belongs to that tenant's installation."""
        if not self._tenants.multi:
            return True
        home = self._ctx.tenant_id
        return home is not None and activity_tenant(activity) == home.lower()

    async def _installation_update(self, activity: Mapping[str, Any]) -> web.StreamResponse:
        """The app was added to or removed from a team or a person's personal scope: the
        tenant's installation records it (`tenants.py`). Always 200: Teams does not retry
        an installation update, and nothing about it is decided by the runtime."""
        change = await self._tenants.record_update(activity)
        if isinstance(change, str):
            log.info("teams installation update ignored: %s", change)
            return web.Response(status=200)
        home = self._ctx.tenant_id
        if (
            self._role_lists is not None
            and change.action == "add"
            and change.place.startswith("team:")
            and (home is None or change.tenant_id != home.lower())
        ):
            # Whoever first added the app to a team of another tenant is an admin of that
            # tenant's installation until its admins are set (the home tenant keeps the
            # environment's lists; a personal install makes nobody an admin).
            sender = _map(activity, "from")
            who = sender.get("aadObjectId") or sender.get("id")
            if isinstance(who, str) and 0 < len(who) <= MAX_CHANNEL_ID:
                await self._role_lists.installed_by(
                    installation_id(change.tenant_id), who, self._clock()
                )
        return web.Response(status=200)

    def _setup_request(
        self, activity: Mapping[str, Any], inbound: TeamsInbound
    ) -> Destination | None:
        """`setup handoff` / `setup leads` said to the bot (with setup offered), by one of
        the tenant's reps anywhere or by anyone in a channel; None for any other message."""
        if not self._offers_setup or not isinstance(inbound, MessagePosted):
            return None
        match = SETUP_COMMAND.fullmatch(inbound.text.strip())
        if match is None or not inbound.addressed:
            return None
        in_channel = _map(activity, "conversation").get("conversationType") == "channel"
        if not in_channel and inbound.actor.role != "rep":
            return None  # a prospect's words in their own chat: theirs, not a command
        which: Destination = "handoff" if match.group(1).lower() == "handoff" else "leads"
        return which

    def _roles_request(
        self, activity: Mapping[str, Any], inbound: TeamsInbound
    ) -> CommandInvoked | None:
        """`setup approvers @Ann @Ben` (or auditors, managers, admins) said to the bot by
        one of the tenant's reps, anywhere: the domain's `setup` of the tenant's
        installation, naming the people @mentioned (their Teams ids, which the role lists
        match as they match Entra object ids); None for any other message."""
        if not self._offers_setup or not isinstance(inbound, MessagePosted):
            return None
        match = SETUP_ROLES.fullmatch(inbound.text.strip())
        if match is None or not inbound.addressed or inbound.actor.role != "rep":
            return None
        tenant = activity_tenant(activity)  # a rep's: every tenant the activity states
        return CommandInvoked(
            delivery_id=inbound.delivery_id,
            conversation_id=inbound.conversation_id,
            actor=inbound.actor,
            command="setup",
            args=inbound.text.strip().partition(" ")[2].strip(),
            installation=installation_id(tenant) if tenant is not None else "",
            users=mentioned_people(activity, self._ctx.bot_id),
        )

    async def _set_up(
        self, activity: Mapping[str, Any], inbound: MessagePosted, which: Destination
    ) -> CommandInvoked | None:
        """The domain's `setup {which} here` for the channel the words were said in, of the
        activity's tenant's installation — after noting the channel's team and service URL
        for whoever applies the committed choice. Said in a chat, the answer says where to
        say it (posted in reply, nothing recorded) and None is returned."""
        conversation = _map(activity, "conversation")
        where = str(conversation.get("id") or "")
        if conversation.get("conversationType") != "channel":
            answer = (
                f"Say `setup {which}` in the team channel that should receive "
                f"{_WHAT[which]}: a chat may include people outside your team."
            )
            outcome = await self._connector.post(
                str(activity["serviceUrl"]), where, {"type": "message", "text": answer}
            )
            if not isinstance(outcome, Sent):
                log.warning("teams setup answer not delivered: %s", outcome)
            return None
        channel = book.base_conversation(where)
        tenant = activity_tenant(activity)
        channel_data = _map(activity, "channelData")
        team = _map(channel_data, "team").get("id")
        name = _map(channel_data, "channel").get("name")
        if tenant is not None and len(channel) <= MAX_CHANNEL_ID:
            await self._write(
                book.setup_place_key(channel),
                {
                    "tenant_id": tenant,
                    "team": team if isinstance(team, str) and team else None,
                    "service_url": activity.get("serviceUrl"),
                },
            )
        return CommandInvoked(
            delivery_id=inbound.delivery_id,
            conversation_id=inbound.conversation_id,
            actor=inbound.actor,
            command="setup",
            args=f"{which} here",
            # No tenant stated: no installation (the domain refuses anyone but an admin,
            # who cannot be one there, and says channels come from the configuration).
            installation=installation_id(tenant) if tenant is not None else "",
            channel=(
                ChannelRef(
                    id=channel,
                    name=name if isinstance(name, str) and len(name) <= MAX_CHANNEL_ID else "",
                )
                if 0 < len(channel) <= MAX_CHANNEL_ID
                else None
            ),
        )

    async def _in_lead_thread(self, inbound: Inbound) -> Inbound:
        """A message in a lead's thread belongs to the lead's conversation; so does a refused
        click made there (it is recorded where it was made)."""
        refused = isinstance(inbound, ButtonClicked) and inbound.binding != "ok"
        if not (isinstance(inbound, MessagePosted) or refused):
            return inbound
        conversation = bf_conversation(inbound.conversation_id)
        if conversation is None or book.THREAD_MARK not in conversation:
            return inbound
        owner = await self._states.get_state(book.lead_thread_key(conversation))
        lead = owner.get("conversation_id") if owner else None
        if not isinstance(lead, str) or not lead:
            return inbound
        return inbound.model_copy(update={"conversation_id": lead})

    async def _invoke_answer(
        self, click: ButtonClicked, card_ref: str, outcome: HandleOutcome, placement: Placement
    ) -> web.Response:
        key = book.invoke_key(click.delivery_id)
        if outcome.status == "duplicate":
            stored = await self._states.get_state(key)
            if stored is not None:
                return web.json_response(stored)
            return _invoke_message("This action was already handled.")
        answer = _answer_for(click, card_ref, outcome.decision, placement)
        await self._states.put_state(key, answer, self._clock())
        return web.json_response(answer)


def _answer_for(
    click: ButtonClicked, card_ref: str, decision: Decision | None, placement: Placement
) -> dict[str, Any]:
    """The clicked card refreshed when the decision updates it (signed for where it was
    clicked), else the first thing the decision says to the person who clicked (shown to
    them only), else "Done.". A forged or misplaced click is answered with a message only:
    the card it came from is not ours to redraw."""
    replies = decision.replies if decision is not None else ()
    # A card from before signing comes back as it stands now, signed for where it was
    # clicked: its next click works.
    if click.binding in ("ok", "unsigned"):
        for reply in replies:
            if reply.card is not None and card_ref and reply.replaces == card_ref:
                card = adaptive_card(
                    reply.card,
                    conversation=click.conversation_id,
                    nonce_seed=click.delivery_id,
                    placement=placement,
                )
                return {"statusCode": 200, "type": CARD_RESPONSE, "value": card}
    for reply in replies:
        if reply.audience in ("requester", "conversation") and reply.text.strip():
            return _message_body(reply.text)
    if click.binding == "unsigned":
        return _message_body("This card is out of date: use the current one.")
    if click.binding != "ok":
        return _message_body("This button cannot be used here.")
    return _message_body("Done.")


def _message_body(text: str) -> dict[str, Any]:
    return {"statusCode": 200, "type": MESSAGE_RESPONSE, "value": text}


def _invoke_message(text: str) -> web.Response:
    return web.json_response(_message_body(text))


def _is_execute(activity: Mapping[str, Any]) -> bool:
    """An `Action.Execute` click, which Teams needs answered 200 with a message or card."""
    return activity.get("type") == "invoke" and activity.get("name") == EXECUTE_INVOKE


def mentioned_people(activity: Mapping[str, Any], bot_id: str) -> tuple[UserRef, ...]:
    """The people an activity @mentions (its `mention` entities), the bot left out, each
    once, in order, at most `MAX_NAMED_USERS`: their Teams id and the name shown."""
    bots = {bot_id, _map(activity, "recipient").get("id")}
    entities = activity.get("entities")
    people: dict[str, UserRef] = {}
    for entity in entities[:MAX_ENTITIES] if isinstance(entities, list) else ():
        if not isinstance(entity, Mapping) or entity.get("type") != "mention":
            continue
        who = _map(entity, "mentioned")
        person, name = who.get("id"), who.get("name")
        if not isinstance(person, str) or not 0 < len(person) <= MAX_CHANNEL_ID or person in bots:
            continue
        shown = name if isinstance(name, str) else ""
        people.setdefault(person, UserRef(id=person, name=shown[:MAX_CHANNEL_ID]))
    return tuple(people.values())[:MAX_NAMED_USERS]


def _map(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}
