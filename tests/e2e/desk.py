"""Helpers of the playground desk tests: a process's life on a SQLite file with a clock the
test sets, the page's posts, and the scenario both the API and the browser tests restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.policy_loader import load_policy
from bot.server import build_app
from bot.service import build_service
from bot.settings import Settings
from storage.sqlite import SqliteStore

Client = TestClient[web.Request, web.Application]
MINUTE = 60_000


class Clock:
    """The service's clock, set by the test; it stands still in between."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


@asynccontextmanager
async def serving(db: Path, clock: Clock) -> AsyncIterator[Client]:
    """One process's life: the store opened, the bot served, then both closed."""
    store = await SqliteStore.open(db)
    try:
        service = build_service(Settings(), load_policy("default"), store, clock=clock)
        async with TestClient(TestServer(build_app(service), host="127.0.0.1")) as client:
            yield client
    finally:
        await store.close()


async def drained(client: Client) -> None:
    """Until the outbox has sent everything (a limit against a hang, not a timing check)."""
    deadline = time.monotonic() + 10
    while (await (await client.get("/readyz")).json())["outbox_pending"] != 0:
        assert time.monotonic() < deadline, "the outbox did not drain"
        await asyncio.sleep(0.01)


async def say(client: Client, role: str, text: str, conversation: str | None) -> str:
    """Type a line as the page does; returns its conversation, once the replies are out."""
    response = await client.post(
        "/playground/send", json={"role": role, "conversation": conversation, "text": text}
    )
    assert response.status == 200, await response.text()
    await drained(client)
    answer: str = (await response.json())["conversation"]
    return answer


async def history(client: Client) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = (await (await client.get("/playground/history")).json())[
        "messages"
    ]
    return messages


async def tickets(client: Client) -> dict[str, Any]:
    answer: dict[str, Any] = await (await client.get("/playground/tickets")).json()
    return answer


def handoff_card(messages: list[dict[str, Any]], conversation: str) -> dict[str, Any]:
    """The conversation's ticket card in the handoff channel, as it stands."""
    (card,) = [
        m["reply"]["card"]
        for m in messages
        if m["conversation"] == conversation and m["audience"] == "handoff" and m["reply"]["card"]
    ]
    assert isinstance(card, dict)
    return card


async def press(client: Client, conversation: str, action: str, role: str = "rep") -> None:
    """Press a button of the conversation's ticket card, signed as it was delivered."""
    card = handoff_card(await history(client), conversation)
    (button,) = [b for b in card["buttons"] if b["action"] == action]
    response = await client.post(
        "/playground/click",
        json={
            "conversation": conversation,
            "role": role,
            "ref": card["ref"],
            **{k: button[k] for k in ("action", "target", "nonce", "signature")},
        },
    )
    assert response.status == 200, await response.text()
    await drained(client)


@dataclass(frozen=True)
class Desk:
    deal: str
    """A conversation whose first quote was superseded by a second."""
    refund: str
    """A refund question: its ticket claimed by the rep."""
    human: str
    """A prospect who asked for a person: its ticket open."""


async def seed_desk(client: Client, clock: Clock) -> Desk:
    """Three conversations a minute apart (the clock moves on between them)."""
    deal = await say(client, "prospect", "Hi, we are evaluating CRMs", None)
    await say(client, "rep", "/quote 10 pro 10%", deal)
    clock.now_ms += MINUTE
    await say(client, "rep", "/quote 12 pro 10%", deal)  # supersedes the first quote
    clock.now_ms += MINUTE
    refund = await say(
        client, "prospect", "Can we cancel the contract early and get a refund?", None
    )
    clock.now_ms += MINUTE
    human = await say(client, "prospect", "I want to talk to a human please", None)
    await press(client, refund, "claim_ticket")
    return Desk(deal=deal, refund=refund, human=human)
