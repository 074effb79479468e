"""Routing across platforms: every configured adapter's router is asked, and a reply goes
everywhere any of them sends it (a lead's conversation can have views in several places)."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.ports import Route, Router
from domain.cards import Reply
from domain.inbound import Inbound
from domain.state import ConversationState


class CompositeRouter:
    def __init__(self, routers: Sequence[Router]) -> None:
        self._routers = tuple(routers)

    def route(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        return [route for router in self._routers for route in router.route(inbound, reply, state)]
