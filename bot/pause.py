"""A sender that holds its messages while its destination is paused (a Slack installation
whose bot token was revoked or whose app was uninstalled: `adapters/slack/installation.py`).

Held messages stay in the outbox, in order, and go out once the pause is lifted. They are
handed back with `RetryLater(attempted=False)` and a short delay (`HOLD_MS`): the worker
puts them back without counting an attempt, so a pause of any length dead-letters nothing,
and a lift is followed by the first send within `HOLD_MS`. (The alternative, not claiming a
paused channel's items at all, would live in the outbox's `claim_due`; the sender-level
hold keeps this independent of how the outbox picks items.)
"""

from __future__ import annotations

from typing import Protocol

from adapters.ports import Delivery, Rejected, RetryLater, Sender, SendOutcome, Sent

HOLD_MS = 5_000
"""How long a held message waits before the outbox offers it again (no request is made)."""


class Pause(Protocol):
    def held_because(self) -> str | None:
        """Why messages must wait now; None when they may go."""
        ...

    async def refused(self, error: str) -> bool:
        """A send was refused with `error`: True when that means the destination is gone
        (the pause is now on, and the message is held rather than dead-lettered)."""
        ...


class PausedWhile:
    def __init__(self, pause: Pause, sender: Sender, *, hold_ms: int = HOLD_MS) -> None:
        self._pause = pause
        self._sender = sender
        self._hold_ms = hold_ms
        # Uncertain sends whose look-up was skipped because of the pause: looked up before
        # they are sent, in case the pause is lifted between the look-up and the send.
        self._unlooked: set[str] = set()

    async def send(self, delivery: Delivery) -> SendOutcome:
        reason = self._pause.held_because()
        if reason is not None:
            return self._held(reason)
        if delivery.key in self._unlooked:
            found = await self._sender.find_sent(delivery)
            self._unlooked.discard(delivery.key)
            if found is not None:
                return Sent(remote_id=found)
        outcome = await self._sender.send(delivery)
        if isinstance(outcome, Rejected) and await self._pause.refused(outcome.reason):
            return self._held(outcome.reason)
        return outcome

    async def find_sent(self, delivery: Delivery) -> str | None:
        if self._pause.held_because() is not None:
            self._unlooked.add(delivery.key)
            return None  # the send that follows is held, and looks again after the pause
        self._unlooked.discard(delivery.key)
        return await self._sender.find_sent(delivery)

    def _held(self, reason: str) -> RetryLater:
        return RetryLater(reason=f"paused: {reason}", retry_after_ms=self._hold_ms, attempted=False)
