"""Delivery to the terminal: the outbox's `Sender` for `salesbot chat`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from adapters.ports import Delivery, Route, Sent
from adapters.terminal.ids import SCHEME
from adapters.terminal.transcript import Output, from_reply
from domain.cards import Button, Reply, ReplyImage
from domain.inbound import Inbound
from domain.state import ConversationState

CHANNEL = SCHEME.channel()
ADAPTER = SCHEME.adapter
ADAPTER_VERSION = 1
"""The terminal adapter's version: the version of what this adapter keeps in a route's `target` and of how its
sender renders a reply. Recorded in every outbox payload it routes; bump it when either
changes meaning."""


class TerminalRouter:
    """Everything goes to the one terminal; the audience label says who would see it."""

    def route(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        return [Route(channel=CHANNEL, adapter=ADAPTER, adapter_version=ADAPTER_VERSION)]


class TerminalSender:
    """Hands each delivered reply to `show` with its conversation id (the session prints
    it as text or JSON) and remembers the buttons of the last card that had any, for
    `/click N`.

    A reply's image (the `/metrics` chart) cannot be shown in a terminal: `save_image`
    stores it and returns where, and the line says so (`bot → you> Sales metrics chart:
    /tmp/…/salesbot-metrics-….png`), in text and in `--json` alike (the path is in `text`,
    so the JSON shape is unchanged). Without `save_image` the line says no file was saved."""

    def __init__(
        self,
        show: Callable[[Output, str], Awaitable[None]],
        save_image: Callable[[ReplyImage], Path] | None = None,
    ) -> None:
        self._show = show
        self._save_image = save_image
        self._printed: dict[str, str] = {}
        self.last_buttons: tuple[Button, ...] = ()

    async def send(self, item: Delivery) -> Sent:
        reply = item.reply
        if reply.image is not None:
            where = (
                str(self._save_image(reply.image))
                if self._save_image is not None
                else "(not saved: this terminal keeps no files)"
            )
            reply = reply.model_copy(update={"text": f"{reply.text}: {where}", "image": None})
        await self._show(from_reply(reply), item.conversation_id)
        if reply.card is not None and reply.card.buttons:
            self.last_buttons = reply.card.buttons
        remote_id = f"terminal:{len(self._printed) + 1}"
        self._printed[item.key] = remote_id
        return Sent(remote_id=remote_id)

    async def find_sent(self, item: Delivery) -> str | None:
        return self._printed.get(item.key)
