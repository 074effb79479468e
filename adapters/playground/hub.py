"""The playground's `Sender` and live feed.

A delivered reply becomes one JSON message, kept in a bounded history (what a page loads
when it opens) and pushed to every open page. Nothing is rendered here: the page draws
the neutral card itself, so the message carries the reply as the domain made it.

The history holds every card in its current state: a reply that replaces a card takes the
card's place (as the page does with it live), so a superseded quote reads superseded and a
claimed ticket claimed, where they were first posted. At start the service rebuilds it from
the store (`restore_sent`, `restore_typed`: what was delivered and what was typed, in the
order it happened), so a restart forgets nothing a page showed.

Every card button is signed here, as it is delivered (`ActionKey`, over "playground", the
conversation, the action, the target, the card's ref and a fresh nonce), and the page posts
the signature back with the click: a click that does not carry one of ours is refused by
`/playground/click`. The signed message is what the history keeps, so a page that reloads
gets buttons that still verify (the key is the service's, stable across restarts).

Each page gets its own bounded queue, written by its own task, so a slow or stalled
browser never holds up the outbox worker that calls `send`: a page that falls too far
behind is told to reconnect, and reloads the history when it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal

from adapters.action_binding import ActionKey
from adapters.playground.identities import IDENTITIES, identity_of
from adapters.ports import Delivery, Sent
from domain.inbound import Actor, CommandInvoked, Inbound, MessagePosted

Author = Literal["bot", "prospect", "rep", "manager"]
SIGNED_AS = "playground"
"""The first signed part of every playground button: its signatures mean nothing elsewhere."""

SUBSCRIBER_QUEUE = 500
"""Messages a page may lag behind before it is asked to reconnect and reload."""

HANDOFF_AUDIENCES = frozenset({"handoff", "approvers", "escalation"})
"""The audiences the page shows in its handoff pane, one list for every conversation; the
others are shown in their conversation's thread. A card is replaced within its list."""
LOCAL_IDS = frozenset(actor.id for actor in IDENTITIES.values())


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class PlaygroundHub:
    def __init__(
        self,
        *,
        action_key: ActionKey,
        history_limit: int = 2000,
        clock: Callable[[], int] | None = None,
    ) -> None:
        if history_limit < 1:
            raise ValueError("history_limit must be at least 1.")
        self.history_limit = history_limit
        # Slot → message, in the order shown; a card update takes its card's slot.
        self._history: dict[int, dict[str, Any]] = {}
        self._card_slots: dict[tuple[str, str], int] = {}  # (list, card ref) → slot
        self._next_slot = 0
        # Keys outlive the shown history a little, so a resend after an uncertain send is
        # still recognised when the message itself has scrolled out.
        self._sent: OrderedDict[str, str] = OrderedDict()
        self._key_limit = max(history_limit, 10_000)
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._clock = clock or _wall_clock_ms
        self._action_key = action_key

    async def send(self, delivery: Delivery) -> Sent:
        """Record and broadcast one reply. The same key twice is shown once: the outbox may
        resend after an uncertain attempt, and the page must not show a duplicate."""
        known = self._sent.get(delivery.key)
        if known is not None:
            return Sent(remote_id=known)
        message = self._delivered(delivery, f"playground:{uuid.uuid4().hex}", self._clock())
        self._remember(delivery.key, message["id"])
        self._publish(message)
        return Sent(remote_id=message["id"])

    def restore_sent(self, delivery: Delivery, *, remote_id: str | None, at: int) -> None:
        """Put back a reply this hub delivered before a restart, under the id the page knew
        it by (`remote_id`, as the outbox recorded it), its buttons signed afresh. Its key
        counts as sent, so the outbox never shows it twice."""
        if delivery.key in self._sent:
            return
        message = self._delivered(delivery, remote_id or f"playground:{delivery.key}", at)
        self._remember(delivery.key, message["id"])
        self._publish(message)

    def _delivered(self, delivery: Delivery, message_id: str, at: int) -> dict[str, Any]:
        reply = delivery.reply
        target = delivery.target
        conversation = str(target.get("conversation") or delivery.conversation_id)
        return {
            "id": message_id,
            "key": delivery.key,
            "conversation": conversation,
            "audience": str(target.get("audience") or reply.audience),
            "requester": target.get("requester"),
            "author": "bot",
            "reply": self._signed(reply.model_dump(mode="json"), conversation),
            "replaces": reply.replaces,
            "at": at,
        }

    async def find_sent(self, delivery: Delivery) -> str | None:
        return self._sent.get(delivery.key)

    def post_typed(
        self,
        *,
        conversation: str,
        actor: Actor,
        text: str,
        command: bool,
        at: int | None = None,
        delivery_id: str | None = None,
    ) -> dict[str, Any]:
        """Show a line the local user typed, as a chat shows your own message. A command is
        seen only by whoever ran it (as a slash command is), a message by the thread. Its id
        comes from the inbound's `delivery_id` when given, so the same line rebuilt from the
        store after a restart is the same message to a page that stayed open."""
        audience = "requester" if command else "conversation"
        author: Author = identity_of(actor)
        message = {
            "id": f"typed:{delivery_id}" if delivery_id else f"playground:{uuid.uuid4().hex}",
            "key": None,
            "conversation": conversation,
            "audience": audience,
            "requester": actor.id,
            "author": author,
            "reply": {"audience": audience, "text": text, "card": None, "replaces": None},
            "replaces": None,
            "at": self._clock() if at is None else at,
        }
        self._publish(message)
        return message

    def restore_typed(self, inbound: Inbound, *, at: int) -> bool:
        """Put back a line typed in the page before a restart, from its stored inbound:
        a message or command of one of the page's people (anything else was never shown
        as typed: a click, a lead from the feed, a line typed in `salesbot chat`). A
        command reads as its command name, the alias it was typed with is not stored."""
        if inbound.actor.id not in LOCAL_IDS:
            return False
        if isinstance(inbound, MessagePosted):
            text, command = inbound.text, False
        elif isinstance(inbound, CommandInvoked):
            text, command = f"/{inbound.command} {inbound.args}".rstrip(), True
        else:
            return False
        self.post_typed(
            conversation=inbound.conversation_id,
            actor=inbound.actor,
            text=text,
            command=command,
            at=at,
            delivery_id=inbound.delivery_id,
        )
        return True

    def _signed(self, reply: dict[str, Any], conversation: str) -> dict[str, Any]:
        """Each button of the card gets a nonce and a signature over what its click will
        claim; the page sends both back. Nothing else of the reply changes."""
        card = reply.get("card")
        if not card:
            return reply
        ref = str(card.get("ref") or "")
        for button in card.get("buttons") or ():
            nonce = secrets.token_hex(8)
            parts = (conversation, button["action"], button.get("target") or "", ref, nonce)
            with contextlib.suppress(ValueError):  # a part holding U+001F stays unsigned
                button["signature"] = self._action_key.sign(SIGNED_AS, *parts)
                button["nonce"] = nonce
        return reply

    def history(self) -> list[dict[str, Any]]:
        """What a page shows when it opens, oldest first, every card as it stands now."""
        return list(self._history.values())

    def card_title(self, ref: str) -> str | None:
        """The title of the handoff pane's card `ref` (a ticket's key) as it stands now."""
        slot = self._card_slots.get(("handoff", ref))
        message = self._history.get(slot) if slot is not None else None
        card = (message or {}).get("reply", {}).get("card") or {}
        title = card.get("title")
        return title if isinstance(title, str) and title else None

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        """A queue of every message published from now on. `None` in it means close the
        socket: the page fell behind, or the server is shutting down; either way it reconnects."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=SUBSCRIBER_QUEUE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._subscribers.discard(queue)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def _remember(self, key: str, message_id: str) -> None:
        self._sent[key] = message_id
        while len(self._sent) > self._key_limit:
            self._sent.popitem(last=False)

    def _publish(self, message: dict[str, Any]) -> None:
        self._record(message)
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                self._drop(queue)

    def _record(self, message: dict[str, Any]) -> None:
        """Keep `message` in the history: in the place of the card it replaces (the last
        one with that ref in the same list, as the page finds it), else at the end; then
        drop the oldest messages beyond the limit."""
        where = _list_of(message)
        replaced = message.get("replaces")
        slot = self._card_slots.get((where, replaced)) if replaced else None
        if slot is None or slot not in self._history:
            slot = self._next_slot
            self._next_slot += 1
        else:
            self._forget_card(where, self._history[slot], slot)
        self._history[slot] = message
        ref = _ref_of(message)
        if ref:
            self._card_slots[(where, ref)] = slot
        while len(self._history) > self.history_limit:
            oldest = next(iter(self._history))
            self._forget_card(_list_of(self._history[oldest]), self._history.pop(oldest), oldest)

    def _forget_card(self, where: str, message: dict[str, Any], slot: int) -> None:
        ref = _ref_of(message)
        if ref and self._card_slots.get((where, ref)) == slot:
            del self._card_slots[(where, ref)]

    def _drop(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._subscribers.discard(queue)
        if queue.full():
            queue.get_nowait()  # make room for the sentinel; the page reloads history anyway
        queue.put_nowait(None)


def _list_of(message: dict[str, Any]) -> str:
    """Which of the page's lists shows `message`: the handoff pane, or its thread."""
    if message.get("audience") in HANDOFF_AUDIENCES:
        return "handoff"
    return f"thread:{message.get('conversation')}"


def _ref_of(message: dict[str, Any]) -> str:
    """The card a message holds (its ref), or the one it replaced: the page's `refOf`."""
    card = (message.get("reply") or {}).get("card") or {}
    return str(card.get("ref") or message.get("replaces") or "")
