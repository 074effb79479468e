"""Where each neutral reply goes in Slack.

- conversation → the conversation's own channel and thread (its id is its address);
- requester    → an ephemeral message to the person who acted, in that channel and thread;
- team         → the leads channel (never the prospect's thread: in a Slack Connect channel
                 the prospect would see it), else the handoff channel;
- handoff, approvers → the handoff channel, as top-level posts (ticket cards update there).
Replies for conversations of other platforms get no Slack route here.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.ports import Route
from adapters.slack.ids import location
from domain.cards import Reply
from domain.inbound import Inbound
from domain.state import ConversationState

CHANNEL_PREFIX = "slack:"


def _route(channel: str, thread_ts: str | None = None, ephemeral_user: str | None = None) -> Route:
    return Route(
        channel=f"{CHANNEL_PREFIX}{channel}",
        target={"channel": channel, "thread_ts": thread_ts, "ephemeral_user": ephemeral_user},
    )


class SlackRouter:
    def __init__(self, *, handoff_channel: str | None, leads_channel: str | None) -> None:
        self._handoff = handoff_channel
        self._leads = leads_channel

    def route(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        where = location(inbound.conversation_id)
        match reply.audience:
            case "conversation":
                return [_route(where.channel, where.thread_ts)] if where else []
            case "requester":
                if where is None or inbound.actor.role == "system":
                    return []
                return [_route(where.channel, where.thread_ts, ephemeral_user=inbound.actor.id)]
            case "team":
                channel = self._leads or self._handoff
                return [_route(channel)] if channel else []
            case "handoff" | "approvers":
                return [_route(self._handoff)] if self._handoff else []
        return []
