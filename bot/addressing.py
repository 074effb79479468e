"""A rep's `won ID` / `lost ID …` typed somewhere else than the deal's conversation (a
channel, a DM with the bot): delivered to the conversation ID names.

The domain decides one conversation at a time and records a decision in that conversation's
stream, so a mark must be decided *there*. Before the runtime claims its lane, an outcome
command whose first word names another stored conversation — by its id, a ticket key, a
quote id or its lead card's ref — is re-addressed to it: that is the inbound stored (so
replay decides it in the same conversation), and its answer to the rep still reaches them
where they typed (the platform routes a command's private answer by its delivery, e.g.
Slack's response URL). Only reps' commands are re-addressed: anyone else's stays where it
was typed, where the domain refuses it. An id that names nothing is left to the domain,
which answers that it knows no such conversation.
"""

from __future__ import annotations

from typing import Final

from domain.commands import parse_text_command
from domain.errors import CommandError
from domain.inbound import CommandInvoked, Inbound, MessagePosted
from domain.presenters import lead_card_ref
from storage.ports import Store

OUTCOME_COMMANDS: Final = frozenset({"won", "lost"})


def _named(inbound: Inbound) -> str | None:
    """The first word of an outcome command's arguments, if the inbound is one by a rep."""
    if inbound.actor.role != "rep":
        return None
    if isinstance(inbound, CommandInvoked):
        command, args = inbound.command.strip().lstrip("/").lower(), inbound.args
    elif isinstance(inbound, MessagePosted) and inbound.addressed:
        try:
            parsed = parse_text_command(inbound.text)
        except CommandError:
            return None
        if parsed is None:
            return None
        command, args = parsed[0].name, parsed[1]
    else:
        return None
    if command not in OUTCOME_COMMANDS:
        return None
    words = args.split(maxsplit=1)
    return words[0] if words else None


async def conversation_named(store: Store, name: str) -> str | None:
    """The stored conversation `name` is the id of, or of one of its tickets or quotes."""
    if await store.version(name) > 0:
        return name
    ticket = await store.ticket(name)
    if ticket is not None:
        return ticket.conversation_id
    quoted = await store.quote_conversation(name)
    if quoted is not None:
        return quoted
    prefix = lead_card_ref("")
    if name.startswith(prefix) and await store.version(name.removeprefix(prefix)) > 0:
        return name.removeprefix(prefix)
    return None


async def readdressed(inbound: Inbound, store: Store) -> Inbound:
    """`inbound`, delivered to the conversation its outcome command names, if another."""
    name = _named(inbound)
    if name is None or name == inbound.conversation_id:
        return inbound
    target = await conversation_named(store, name)
    if target is None or target == inbound.conversation_id:
        return inbound
    return inbound.model_copy(update={"conversation_id": target})
