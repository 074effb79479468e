"""The playground's `Sender` and live feed.

A delivered reply becomes one JSON message, kept in a bounded history (what a page loads
when it opens) and pushed to every open page. Nothing is rendered here: the page draws
the neutral card itself, so the message carries the reply as the domain made it.

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
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, Literal

from adapters.action_binding import ActionKey
from adapters.playground.identities import identity_of
from adapters.ports import Delivery, Sent
from domain.inbound import Actor

Author = Literal["bot", "prospect", "rep", "manager"]
SIGNED_AS = "playground"
"""The first signed part of every playground button: its signatures mean nothing elsewhere."""

SUBSCRIBER_QUEUE = 500
"""Messages a page may lag behind before it is asked to reconnect and reload."""


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
        self._history: deque[dict[str, Any]] = deque(maxlen=history_limit)
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
        reply = delivery.reply
        target = delivery.target
        message_id = f"playground:{uuid.uuid4().hex}"
        conversation = str(target.get("conversation") or delivery.conversation_id)
        message: dict[str, Any] = {
            "id": message_id,
            "key": delivery.key,
            "conversation": conversation,
            "audience": str(target.get("audience") or reply.audience),
            "requester": target.get("requester"),
            "author": "bot",
            "reply": self._signed(reply.model_dump(mode="json"), conversation),
            "replaces": reply.replaces,
            "at": self._clock(),
        }
        self._remember(delivery.key, message_id)
        self._publish(message)
        return Sent(remote_id=message_id)

    async def find_sent(self, delivery: Delivery) -> str | None:
        return self._sent.get(delivery.key)

    def post_typed(
        self, *, conversation: str, actor: Actor, text: str, command: bool, at: int | None = None
    ) -> dict[str, Any]:
        """Show a line the local user typed, as a chat shows your own message. A command is
        seen only by whoever ran it (as a slash command is), a message by the thread."""
        audience = "requester" if command else "conversation"
        author: Author = identity_of(actor)
        message = {
            "id": f"playground:{uuid.uuid4().hex}",
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
        return list(self._history)

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
        self._history.append(message)
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                self._drop(queue)

    def _drop(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._subscribers.discard(queue)
        if queue.full():
            queue.get_nowait()  # make room for the sentinel; the page reloads history anyway
        queue.put_nowait(None)
