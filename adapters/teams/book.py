"""What the Teams adapter remembers between requests, in the store's adapter state.

Bot Framework gives no way to look things up later: a bot cannot read a channel's history,
and a conversation can only be reached through the `serviceUrl` its activities came from.
So the adapter writes down, as raw protocol JSON (it must survive an SDK swap):

    teams:conv:{conversation}    the conversation reference of its latest activity
                                 (a channel's threads share the channel's entry)
    teams:install                the latest team channel the bot was added to (never a group
                                 chat: a prospect may be in it; with other tenants allowed,
                                 only the home tenant's): the home tenant's fallback for
                                 handoff and lead posts
    teams:service-url            the latest service URL Teams used (a tenant's conversations
                                 share one): for a configured conversation not yet heard from
    teams:user:{user}            the person's Teams account (`29:` id, tenant, service URL),
                                 for private notices and personal chats
    teams:personal:{user}        the bot's personal chat with the person (private notices)
    teams:card:{conversation}:{ref}   the activity id holding the card `ref`, to update it
    teams:thread:{ref}           the thread a lead's card started
    teams:lead-thread:{thread}   the lead conversation a thread belongs to
    teams:invoke:{delivery}      the answer given to a card action, replayed on redelivery
    teams:tenant:{tenant}        a tenant's installation: where the app is installed, its
                                 handoff and leads conversations (`tenants.py`)
    teams:setup-place:{channel}  the team, tenant and service URL of a channel where
                                 `setup handoff|leads` was said, noted before the command
                                 is decided, so the committed choice can be applied later
                                 (after a crash, by the outbox) with what only the
                                 activity told

Losing an entry costs a fallback (a new post instead of an update), never a decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

THREAD_MARK = ";messageid="


class StateBook(Protocol):
    """The store's adapter state (`storage.ports.AdapterStateStore`), as the adapter uses it."""

    async def put_state(self, key: str, value: Mapping[str, Any], at_ms: int) -> None: ...

    async def get_state(self, key: str) -> dict[str, Any] | None: ...


def base_conversation(conversation: str) -> str:
    """A channel thread's conversation id without its `;messageid=` (the channel's id)."""
    return conversation.split(THREAD_MARK, 1)[0]


def thread_conversation(channel: str, root_activity_id: str) -> str:
    """The conversation id of the thread under a channel post (Teams' own scheme)."""
    return f"{base_conversation(channel)}{THREAD_MARK}{root_activity_id}"


def is_personal(conversation: str, reference: Mapping[str, Any] | None) -> bool:
    """A personal (1:1) chat: so stated by its reference, or by Teams' `a:` id prefix."""
    if reference is not None:
        kind = _map(reference, "conversation").get("conversationType")
        if isinstance(kind, str):
            return kind == "personal"
    return conversation.startswith("a:")


def conversation_key(conversation: str) -> str:
    return f"teams:conv:{base_conversation(conversation)}"


INSTALL_KEY = "teams:install"
SERVICE_URL_KEY = "teams:service-url"


def user_key(user: str) -> str:
    return f"teams:user:{user}"


def personal_key(user: str) -> str:
    return f"teams:personal:{user}"


def card_key(conversation: str, ref: str) -> str:
    return f"teams:card:{conversation}:{ref}"


def thread_key(ref: str) -> str:
    return f"teams:thread:{ref}"


def lead_thread_key(thread: str) -> str:
    return f"teams:lead-thread:{thread}"


def setup_place_key(channel: str) -> str:
    return f"teams:setup-place:{base_conversation(channel)}"


def invoke_key(delivery_id: str) -> str:
    return f"teams:invoke:{delivery_id}"


def _map(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}
