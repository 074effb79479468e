"""The handoff desk in `salesbot chat`: what the prospect sees (`bot> …`) and what the team
sees (`handoff channel> …`), for each "Why" of issue 14 that items 1 and 2 answer.

- the rep writes in the conversation without pressing *Claim* (`/as rep`, a plain line): the
  bot goes quiet, the handoff channel shows who holds it; `resume` hands it back;
- after *Resolve* (an outcome), the prospect's next line comes back to the holder: the
  ticket's card is updated in place, "prospect wrote again", and the bot says nothing;
- each line the prospect writes while a person holds it refreshes the ticket's card.
"""

from __future__ import annotations

from bot.chat import ChatSession
from bot.policy_loader import load_policy
from storage.memory import MemoryStore

NOW = 1_796_000_000_000


async def chat_outputs(lines: list[str]) -> list[list[str]]:
    """What each typed line printed (its transcript lines), in order, on the default policy."""
    printed: list[str] = []
    session = ChatSession(
        MemoryStore(),
        load_policy("default"),
        printed.append,
        conversation_id="chat-desk",
        session="s",
        clock=lambda: NOW,
    )
    await session.start()
    outputs = []
    for line in lines:
        before = len(printed)
        assert await session.feed(line + "\n")
        outputs.append(printed[before:])
    await session.close()
    return outputs


def heads(printed: list[str]) -> list[str]:
    return [line for line in printed if not line.startswith("  ")]


async def test_a_rep_who_writes_takes_the_chat_over_and_resume_hands_it_back() -> None:
    hello, _, rae, _, thanks, _, resume, _, price = await chat_outputs(
        [
            "Hi, we are evaluating CRMs for a team of 12",
            "/as rep",
            "Hi, I'm Rae from sales. Happy to help.",
            "/as prospect",
            "Great, thanks Rae!",
            "/as rep",
            "resume",
            "/as prospect",
            "What does the Pro plan cost?",
        ]
    )
    assert heads(hello)[0].startswith("bot> ")
    # The rep's words reach the prospect; the team sees who holds the conversation now.
    assert heads(rae) == [
        "rep> Hi, I'm Rae from sales. Happy to help.",
        "handoff channel> Handoff: a rep took over the conversation",
    ]
    assert "  ┌ Handoff: a rep took over the conversation  [Taken over by You (rep)]" in rae
    # The prospect answers the rep: the bot says nothing, the card shows the answer.
    assert heads(thanks) == ["handoff channel> (updated) Taken over by You (rep)"]
    assert "  │ prospect: Great, thanks Rae!" in thanks
    assert heads(resume)[-1].startswith("bot> Thanks for")
    assert "handoff channel> (updated) Returned to the bot by You (rep)" in heads(resume)
    assert any(line.startswith("bot> ") for line in heads(price)), "the bot answers again"


async def test_after_resolve_the_prospects_next_line_comes_back_to_the_holder() -> None:
    *_, resolved, _, wrote = await chat_outputs(
        [
            "Can I talk to a real person please?",
            "/as rep",
            "/click 1",  # Claim ticket
            "/click 1",  # Resolve: the card asks how it ended
            "/click 4",  # Closed
            "/as prospect",
            "Sorry, one more question about invoices",
        ]
    )
    assert heads(resolved) == ["handoff channel> (updated) Closed by You (rep)"]
    assert heads(wrote) == ["handoff channel> (updated) Claimed by You (rep): prospect wrote again"]
    assert "  │ prospect: Sorry, one more question about invoices" in wrote
    assert "  │ [1] Resolve" in wrote
    assert "  │ [2] Return to bot" in wrote


async def test_a_lost_deal_is_resolved_with_a_reason_and_the_reps_own_words() -> None:
    *_, reasons, lost = await chat_outputs(
        [
            "Can I talk to a real person please?",
            "/as rep",
            "/click 1",  # Claim ticket
            "/click 1",  # Resolve
            "/click 2",  # Lost…: the policy's reasons, and a text box for a note
            "/click 2 Budget frozen until next year",  # Price, with the note
        ]
    )
    assert (
        "  │ ✎ Note (optional): what happened, in your words — type it after the number: "
        "/click N your words"
    ) in reasons
    assert "  │ [2] Price" in reasons
    assert heads(lost) == [
        "handoff channel> (updated) Resolved by You (rep): lost (found it too expensive): "
        "“Budget frozen until next year”"
    ]
