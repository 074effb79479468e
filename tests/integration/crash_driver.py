"""Load for the crash test: handles inbounds through the real runtime on SQLite and appends
each acknowledged delivery id to a log, exactly when an adapter would ack the platform.

Run as `python -m tests.integration.crash_driver DB ACKS START COUNT WRITER` (WRITER: where
SQLite's writer runs, `thread` or `process`). The test kills it with SIGKILL at a random
point (with a writer process, the writer is left to notice its server died). Each run also re-sends the previous run's last deliveries,
as a platform does after a missing ack.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from adapters.ports import Route
from bot.clock import system_now_ms
from bot.policy_loader import load_policy
from bot.runtime import Runtime
from domain.cards import Reply
from domain.inbound import Actor, Inbound, MessagePosted
from domain.state import ConversationState
from storage.sqlite import SqliteStore
from storage.sqlite_writer import WriterKind

CONVERSATIONS = 40
PROSPECT = Actor(id="P", name="Pat", role="prospect")
TEXTS = ("Hello", "We have a $5000 budget", "I am the CTO", "too expensive", "next month works")


class PerConversation:
    def route(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        return [Route(channel=f"crash:{inbound.conversation_id}")]


def inbound(number: int) -> MessagePosted:
    return MessagePosted(
        delivery_id=f"crash-{number}",
        conversation_id=f"conv-{number % CONVERSATIONS}",
        actor=PROSPECT,
        text=TEXTS[number % len(TEXTS)],
    )


async def main(db: str, acks_path: str, start: int, count: int, writer: WriterKind) -> None:
    store = await SqliteStore.open(db, writer=writer)
    runtime = Runtime(store, load_policy("default"), PerConversation(), clock=system_now_ms)
    await runtime.start()
    with open(acks_path, "a", encoding="utf-8") as acks:

        async def one(number: int) -> None:
            await runtime.handle(inbound(number))
            acks.write(f"crash-{number}\n")
            acks.flush()  # the process may die at any moment: the OS keeps what was written

        redeliveries = range(max(0, start - 20), start)
        numbers = [*redeliveries, *range(start, start + count)]
        for offset in range(0, len(numbers), 25):
            await asyncio.gather(*(one(n) for n in numbers[offset : offset + 25]))
    await store.close()


if __name__ == "__main__":
    kind: WriterKind = "process" if sys.argv[5] == "process" else "thread"
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), kind))
