"""The handoff desk in the playground, through its own routes (`POST /playground/send`,
`POST /playground/click`, `GET /playground/history`): what the prospect's thread shows and
what the handoff channel shows, for each "Why" of issue 14 that items 1 and 2 answer.

- the rep's line in the prospect's conversation is a takeover (it used to speak to the bot):
  the bot goes quiet, the handoff channel shows who holds it, `/resume` hands it back;
- after *Resolve* (an outcome), the prospect's next message comes back to the holder: the
  ticket card is updated in place, "prospect wrote again";
- each prospect message while a person holds it refreshes the ticket card.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.settings import Settings
from storage.sqlite import SqliteStore
from tests.e2e.harness import outbox_drained, serving

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    store = await SqliteStore.open(tmp_path / "playground.db")
    try:
        async with serving(None, Settings(), store) as client:
            yield client
    finally:
        await store.close()


async def send(client: Client, role: str, text: str, conversation: str | None) -> str:
    sent = await client.post(
        "/playground/send", json={"role": role, "conversation": conversation, "text": text}
    )
    assert sent.status == 200, await sent.text()
    await outbox_drained(client)
    answer: str = (await sent.json())["conversation"]
    return answer


async def history(client: Client, conversation: str, audience: str) -> list[dict[str, Any]]:
    """What the page shows for `conversation` to `audience`, from the bot, in order."""
    messages: list[dict[str, Any]] = (await (await client.get("/playground/history")).json())[
        "messages"
    ]
    return [
        m
        for m in messages
        if m["conversation"] == conversation and m["audience"] == audience and m["author"] == "bot"
    ]


async def ticket_card(client: Client, conversation: str) -> dict[str, Any]:
    """The ticket's card as the handoff pane shows it now (its latest version)."""
    shown = await history(client, conversation, "handoff")
    card: dict[str, Any] = shown[-1]["reply"]["card"]
    assert all(m["reply"]["card"]["ref"] == card["ref"] for m in shown), "one ticket"
    return card


async def press(client: Client, conversation: str, card: dict[str, Any], label: str) -> None:
    button = next(b for b in card["buttons"] if b["label"] == label)
    clicked = await client.post(
        "/playground/click",
        json={
            "role": "rep",
            "conversation": conversation,
            "action": button["action"],
            "target": button["target"],
            "ref": card["ref"],
            "nonce": button["nonce"],
            "signature": button["signature"],
        },
    )
    assert clicked.status == 200, await clicked.text()
    await outbox_drained(client)


async def test_the_reps_line_takes_the_conversation_over_and_resume_hands_it_back(
    client: Client,
) -> None:
    conversation = await send(client, "prospect", "Hi, we are evaluating CRMs", None)
    assert len(await history(client, conversation, "conversation")) == 1  # the greeting
    await send(client, "rep", "Hi, I'm Rae from sales. Happy to help.", conversation)
    card = await ticket_card(client, conversation)
    assert card["status"] == "Taken over by You (rep)"
    assert card["text"].endswith("rep You (rep): Hi, I'm Rae from sales. Happy to help.")

    await send(client, "prospect", "Great, thanks Rae!", conversation)
    assert len(await history(client, conversation, "conversation")) == 1, "the bot stays quiet"
    card = await ticket_card(client, conversation)
    assert card["text"].endswith("prospect: Great, thanks Rae!")

    await send(client, "rep", "/resume", conversation)
    said = await history(client, conversation, "conversation")
    assert said[-1]["reply"]["text"].startswith("Thanks for")
    assert (await ticket_card(client, conversation))["status"] == "Returned to the bot by You (rep)"


async def test_after_resolve_the_prospects_next_message_comes_back_to_the_holder(
    client: Client,
) -> None:
    conversation = await send(client, "prospect", "Can I talk to a real person please?", None)
    await press(client, conversation, await ticket_card(client, conversation), "Claim ticket")
    await press(client, conversation, await ticket_card(client, conversation), "Resolve")
    picker = await ticket_card(client, conversation)
    assert [b["label"] for b in picker["buttons"]] == [
        "Won",
        "Lost…",
        "Handled: back to the bot",
        "Closed",
        "Back",
    ]
    await press(client, conversation, picker, "Closed")
    assert (await ticket_card(client, conversation))["status"] == "Closed by You (rep)"
    said = len(await history(client, conversation, "conversation"))

    await send(client, "prospect", "Sorry, one more question about invoices", conversation)
    card = await ticket_card(client, conversation)
    assert card["status"] == "Claimed by You (rep): prospect wrote again"
    assert card["text"].endswith("prospect: Sorry, one more question about invoices")
    assert [b["label"] for b in card["buttons"]] == ["Resolve", "Return to bot", "Won", "Lost…"]
    assert len(await history(client, conversation, "conversation")) == said, "no bot reply"
