"""Where each neutral reply goes in Teams.

Teams conversations (their id is their address, see `ids.py`):
- conversation → the conversation itself (a channel thread's id names the thread);
- requester    → the person who acted, privately: in a personal chat that is the chat; from
                 a channel or group chat their personal chat with the bot (where Slack
                 would show an ephemeral message);
- team         → the leads conversation, else the handoff conversation;
- handoff, approvers → the handoff conversation, as new posts (ticket cards update there);
- escalation   → the policy's escalation conversation (`[handoff.escalation] teams`), else
                 the handoff conversation.

A reply that mentions a group (`Reply.mention`) carries the policy's `[handoff.on_call] teams`
(`TAG_ID|Name`) in its route's target (`mention`), which the sender turns into a tag mention.

Lead conversations (from the lead feed) have a view in the leads conversation: the lead card
is posted there and starts a thread; everything else the lead's conversation says goes into
that thread, so reps follow and act on the lead in one place. A lead of an installed tenant
(`ConversationState.installation`, its own lead feed token) is that tenant's: the route
names the `tenant` whose leads and handoff conversations it goes to; a lead of another
platform's installation has no view here.

"handoff" and "leads" are named, not resolved, here: the sender resolves them to the
conversations of the installation the delivery's conversation belongs to (`tenants.py`;
for the home tenant `TEAMS_HANDOFF_CONVERSATION` / `TEAMS_LEADS_CONVERSATION`, or the
channel the bot was added to when unset), which only the store knows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypedDict

from adapters.ports import Route
from adapters.teams import ids
from domain.cards import Reply
from domain.inbound import Inbound
from domain.presenters import lead_card_ref
from domain.state import ConversationState

CHANNEL_PREFIX = ids.SCHEME.channel_prefix
ADAPTER = ids.SCHEME.adapter
ADAPTER_VERSION = 1
"""The Teams adapter's version: the version of what this adapter keeps in a route's `target` and of how its
sender renders a reply. Recorded in every outbox payload it routes; bump it when either
changes meaning."""
Destination = Literal["handoff", "leads"]


class TeamsTarget(TypedDict, total=False):
    """A Teams route's `target`, as the outbox payload stores it (in this key order): a Bot
    Framework `conversation`, or a `destination` the sender resolves; `user` for a private
    reply; `thread_of_ref` / `starts_thread` for a lead's thread in the leads conversation;
    `mention` the on-call tag (`TAG_ID|Name`); `tenant` the installed tenant a lead
    belongs to (absent: the conversation's, or the home tenant's)."""

    conversation: str
    destination: Destination
    user: str
    thread_of_ref: str
    starts_thread: str
    mention: str
    tenant: str


def conversation_route(conversation: str, user: str | None = None) -> Route:
    target: TeamsTarget = {"conversation": conversation}
    if user is not None:
        target["user"] = user
    return Route(
        channel=ids.SCHEME.channel(conversation),
        target=dict(target),
        adapter=ADAPTER,
        adapter_version=ADAPTER_VERSION,
    )


def destination_route(
    destination: Destination,
    *,
    user: str | None = None,
    thread_of_ref: str | None = None,
    starts_thread: str | None = None,
    tenant: str | None = None,
) -> Route:
    target: TeamsTarget = {"destination": destination}
    if user is not None:
        target["user"] = user
    if thread_of_ref is not None:
        target["thread_of_ref"] = thread_of_ref
    if starts_thread is not None:
        target["starts_thread"] = starts_thread
    if tenant is not None:
        target["tenant"] = tenant
    return Route(
        channel=ids.SCHEME.channel(destination),
        target=dict(target),
        adapter=ADAPTER,
        adapter_version=ADAPTER_VERSION,
    )


class TeamsRouter:
    def __init__(
        self, *, escalation_conversation: str | None = None, on_call: str | None = None
    ) -> None:
        self._escalation = escalation_conversation
        self._on_call = on_call

    def route(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        routes = self._routes(inbound, reply, state)
        if reply.mention == "on_call" and self._on_call:
            routes = [
                route.model_copy(update={"target": {**route.target, "mention": self._on_call}})
                for route in routes
            ]
        return routes

    def _routes(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        conversation = ids.bf_conversation(inbound.conversation_id)
        tenant = None  # the installed tenant a lead belongs to (None: the home tenant)
        if conversation is None and state.installation:
            tenant = ids.tenant_of(state.installation)
            if tenant is None:
                return []  # another platform's installation's lead: routed there
        if reply.audience in ("handoff", "approvers"):
            return [destination_route("handoff", tenant=tenant)]
        if reply.audience == "escalation":
            if self._escalation:
                return [conversation_route(self._escalation)]
            return [destination_route("handoff", tenant=tenant)]
        if conversation is None:
            return self._lead_view(inbound, reply, state, tenant)
        match reply.audience:
            case "conversation":
                return [conversation_route(conversation)]
            case "requester":
                if inbound.actor.role == "system":
                    return []
                return [conversation_route(conversation, user=inbound.actor.id)]
            case "team":
                return [destination_route("leads")]
        return []

    def _lead_view(
        self, inbound: Inbound, reply: Reply, state: ConversationState, tenant: str | None
    ) -> Sequence[Route]:
        if state.lead is None:
            return []
        ref = lead_card_ref(state.conversation_id)
        if reply.card is not None and reply.card.ref == ref and reply.replaces is None:
            return [destination_route("leads", starts_thread=ref, tenant=tenant)]
        if reply.audience == "requester":
            # Only someone acting from Teams can be answered privately in Teams.
            if not ids.SCHEME.owns_delivery(inbound.delivery_id) or inbound.actor.role == "system":
                return []
            return [
                destination_route("leads", user=inbound.actor.id, thread_of_ref=ref, tenant=tenant)
            ]
        return [destination_route("leads", thread_of_ref=ref, tenant=tenant)]
