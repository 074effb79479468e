"""Where replies go in the playground: everywhere, for every conversation.

The playground is a single trusted user's window onto the whole bot, so every reply is
shown; the page files it by audience (thread, "only you / the team", handoff channel).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from adapters.playground.ids import SCHEME
from adapters.ports import Route
from domain.cards import Reply
from domain.inbound import Inbound
from domain.state import ConversationState

CHANNEL_PREFIX = SCHEME.channel_prefix
ADAPTER = SCHEME.adapter
ADAPTER_VERSION = 1
"""The playground adapter's version: the version of what this adapter keeps in a route's `target` and of how its
sender renders a reply. Recorded in every outbox payload it routes; bump it when either
changes meaning."""


class PlaygroundTarget(TypedDict):
    """A playground route's `target`, as the outbox payload stores it: which thread and
    pane shows the reply, and who asked (a private answer is theirs)."""

    conversation: str
    audience: str
    requester: str


class PlaygroundRouter:
    def route(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        target: PlaygroundTarget = {
            "conversation": state.conversation_id,
            "audience": reply.audience,
            "requester": inbound.actor.id,
        }
        return [
            Route(
                channel=SCHEME.channel(state.conversation_id),
                target=dict(target),
                adapter=ADAPTER,
                adapter_version=ADAPTER_VERSION,
            )
        ]
