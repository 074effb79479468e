"""Where each neutral reply goes in Slack.

Slack conversations (their id is their address, see `ids.py`):
- conversation → the conversation's own channel and thread;
- requester    → an ephemeral message to the person who acted, in that channel and thread;
- team         → the leads channel (never the prospect's thread: in a Slack Connect channel
                 the prospect would see it), else the handoff channel;
- handoff, approvers → the handoff channel, as top-level posts (ticket cards update there);
- escalation   → the policy's escalation channel (`[handoff.escalation] slack`), else the
                 handoff channel.

A reply that mentions a group (`Reply.mention`, the on-call group) carries the policy's
`[handoff.on_call] slack` user group in its route's target (`mention`), which the sender puts
in front of the text; without one it mentions nobody.

Replies to a slash command also name the key of the command's `response_url`
(`response_key`, see `response_url.py`), so they reach the person who ran it even in a
channel the bot is not in: the `requester` reply goes through the response URL first (an
ephemeral message needs no membership there), and a new message to the `conversation`
(the command's channel) goes through chat.postMessage first — a posted message carries our
metadata, so a card can be updated in place later and found after a timeout — and through
the response URL (`in_channel`) when Slack answers that the bot is not in the channel.

Which handoff and leads channel: the conversation's workspace's, as its admin chose it
(`channels.py`, `/salesbot setup handoff #channel`), else, for the first workspace, the
configured one (`SLACK_HANDOFF_CHANNEL`, `SLACK_LEADS_CHANNEL`) and, for a workspace that
added the app itself, its installer's direct messages. The policy's escalation channel,
when it names one, is the first workspace's; without one, and for a workspace that added
the app itself, escalations go to the workspace's handoff channel.

Lead conversations (from the lead feed) have a view in the leads channel: the lead card
is posted there top-level and starts the lead's thread; everything else the lead's
conversation says (to the prospect or to the team) goes into that thread, found by the
card's `ref` (`thread_of_ref`), so reps follow and act on the lead in one place. A lead of
an installed workspace (`ConversationState.installation`, its own lead feed token) is that
workspace's: its view is in that workspace's leads channel, posted by its own bot (the
route's `team`); a lead of another platform's installation has no view here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Required, TypedDict

from adapters.ports import Route
from adapters.slack.channels import WorkspaceChannels, team_of
from adapters.slack.ids import SCHEME, location, response_key
from domain.cards import Reply
from domain.inbound import Inbound
from domain.presenters import lead_card_ref
from domain.state import ConversationState

CHANNEL_PREFIX = SCHEME.channel_prefix
ADAPTER = SCHEME.adapter
ADAPTER_VERSION = 1
"""The Slack adapter's version: the version of what this adapter keeps in a route's `target` and of how its
sender renders a reply. Recorded in every outbox payload it routes; bump it when either
changes meaning."""


class SlackTarget(TypedDict, total=False):
    """A Slack route's `target`, as the outbox payload stores it (in this key order).
    `thread_of_ref`: post in the thread its lead card started; `response_key`: the slash
    command's response URL (`response_url.py`); `mention`: the on-call group to mention."""

    channel: Required[str]
    thread_ts: Required[str | None]
    ephemeral_user: Required[str | None]
    thread_of_ref: str
    response_key: str
    mention: str
    team: str
    """The workspace a lead's view is posted in, for a lead of an installed workspace (a
    lead's id names no workspace; absent: the first workspace)."""


def _route(
    channel: str,
    thread_ts: str | None = None,
    ephemeral_user: str | None = None,
    thread_of_ref: str | None = None,
    response: str | None = None,
    team: str | None = None,
) -> Route:
    target: SlackTarget = {
        "channel": channel,
        "thread_ts": thread_ts,
        "ephemeral_user": ephemeral_user,
    }
    if thread_of_ref is not None:
        target["thread_of_ref"] = thread_of_ref
    if response is not None:
        target["response_key"] = response
    if team is not None:
        target["team"] = team
    return Route(
        channel=SCHEME.channel(channel),
        target=dict(target),
        adapter=ADAPTER,
        adapter_version=ADAPTER_VERSION,
    )


class SlackRouter:
    def __init__(
        self,
        *,
        handoff_channel: str | None,
        leads_channel: str | None,
        escalation_channel: str | None = None,
        on_call: str | None = None,
        channels: WorkspaceChannels | None = None,
    ) -> None:
        """`channels`: each workspace's own handoff and leads channels (None: the
        configured ones everywhere)."""
        self._handoff = handoff_channel
        self._leads = leads_channel
        self._escalation = escalation_channel
        self._on_call = on_call
        self._channels = channels

    def _handoff_of(self, team: str | None) -> str | None:
        if self._channels is None:
            return self._handoff
        return self._channels.handoff(team)

    def _leads_of(self, team: str | None) -> str | None:
        if self._channels is None:
            return self._leads
        return self._channels.leads(team)

    def route(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        routes = self._routes(inbound, reply, state)
        if reply.mention == "on_call" and self._on_call:
            routes = [
                route.model_copy(update={"target": {**route.target, "mention": self._on_call}})
                for route in routes
            ]
        return routes

    def _routes(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        where = location(inbound.conversation_id)
        team = where.team if where is not None else None
        lead_team = None  # the installed workspace a lead belongs to (None: the first)
        if where is None and state.installation:
            lead_team = team = team_of(state.installation)
            if team is None:
                return []  # another platform's installation's lead: routed there
        handoff = self._handoff_of(team)
        if reply.audience in ("handoff", "approvers"):
            return [_route(handoff, team=lead_team)] if handoff else []
        if reply.audience == "escalation":
            # The policy's escalation channel is the first workspace's: a workspace that
            # added the app itself escalates in its own handoff channel.
            own = self._channels is not None and self._channels.added_itself(team)
            escalation = handoff if own else self._escalation or handoff
            return [_route(escalation, team=lead_team)] if escalation else []
        if where is None:
            return self._lead_view(inbound, reply, state, lead_team)
        command = response_key(inbound.delivery_id)
        match reply.audience:
            case "conversation":
                # A card replacing another is updated in place with chat.update: a response
                # URL cannot address it.
                answer = command if reply.replaces is None else None
                return [_route(where.channel, where.thread_ts, response=answer)]
            case "requester":
                if inbound.actor.role == "system":
                    return []
                return [
                    _route(
                        where.channel,
                        where.thread_ts,
                        ephemeral_user=inbound.actor.id,
                        response=command,
                    )
                ]
            case "team":
                channel = self._leads_of(team) or handoff
                return [_route(channel)] if channel else []
        return []

    def _lead_view(
        self, inbound: Inbound, reply: Reply, state: ConversationState, team: str | None
    ) -> Sequence[Route]:
        """`team`: the installed workspace the lead belongs to (None: the first)."""
        leads = self._leads if team is None else self._leads_of(team)
        if state.lead is None or leads is None:
            return []
        ref = lead_card_ref(state.conversation_id)
        if reply.card is not None and reply.card.ref == ref and reply.replaces is None:
            return [_route(leads, team=team)]  # the lead card itself starts the thread
        if reply.audience == "requester":
            # Only someone acting from Slack can be answered privately in Slack.
            if not SCHEME.owns_delivery(inbound.delivery_id) or inbound.actor.role == "system":
                return []
            return [_route(leads, ephemeral_user=inbound.actor.id, thread_of_ref=ref, team=team)]
        return [_route(leads, thread_of_ref=ref, team=team)]
