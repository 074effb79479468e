"""The terminal as a surface (`salesbot chat`): one channel, `terminal`, every reply shown.

It is not served over HTTP and has no settings: the chat session builds it around its own
sender (which prints) and runs its own runtime and outbox worker on it, claiming only the
terminal's channel — on a live server's database the server's items stay the server's."""

from __future__ import annotations

from adapters.terminal.ids import SCHEME
from adapters.terminal.sender import TerminalRouter, TerminalSender
from bot.surfaces.base import Surface

NAME = SCHEME.adapter


def surface(sender: TerminalSender) -> Surface:
    return Surface(
        name=NAME, scheme=SCHEME, router=TerminalRouter(), sender=sender, parts=(sender,)
    )
