"""A small store written through the real runtime, for the command-line tests: a lead whose
credit score (580, below the policy's 600) has the fairness penalty applied, who names
their role and gets a quote; and a visitor just browsing. Plus the hand edits an
operator with SQLite could make (the verification tests)."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from adapters.ports import Route
from bench.append import build_commits
from bot.policy_loader import load_policy
from bot.runtime import Runtime
from domain.cards import Reply
from domain.events import QuoteIssued
from domain.inbound import Actor, CommandInvoked, Inbound, LeadArrived, LeadDetails, MessagePosted
from domain.state import ConversationState
from storage.sqlite import SqliteStore

PROSPECT = Actor(id="P", name="Pat", role="prospect")
REP = Actor(id="R", name="Rae", role="rep")
LEAD = "lead-1"
VISITOR = "dm-2"


class OneChannel:
    def route(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        return [Route(channel="test")]


URGENT = "We need this urgently, before the end of the week, budget is $5000"


async def seed(path: Path, message: str = URGENT) -> str:
    """Write the two conversations, the lead's first message being `message`; return the
    quote id issued to the lead."""
    ticks = itertools.count()
    async with await SqliteStore.open(path) as store:
        runtime = Runtime(
            store,
            load_policy("default"),
            OneChannel(),
            clock=lambda: 1_790_000_000_000 + 1000 * next(ticks),
        )
        await runtime.start()
        lead = LeadDetails(
            name="Pat Lee",
            company="Acme",
            message=message,
            credit_score=580,
        )
        await runtime.handle(
            LeadArrived(delivery_id="l1", conversation_id=LEAD, actor=PROSPECT, lead=lead)
        )
        await runtime.handle(
            MessagePosted(
                delivery_id="m1", conversation_id=LEAD, actor=PROSPECT, text="I am the CTO"
            )
        )
        result = await runtime.handle(
            CommandInvoked(
                delivery_id="q1",
                conversation_id=LEAD,
                actor=REP,
                command="quote",
                args="10 pro 10%",
            )
        )
        await runtime.handle(
            MessagePosted(
                delivery_id="m2",
                conversation_id=VISITOR,
                actor=PROSPECT,
                text="Just browsing, no budget",
            )
        )
        await runtime.settled()
    assert result.decision is not None
    return next(
        e.event.quote.quote_id for e in result.decision.events if isinstance(e.event, QuoteIssued)
    )


def add_conversations(path: Path, conversations: int, messages: int) -> None:
    """`conversations` more conversations of `messages` prospect messages each, committed
    to the store at `path` (`bench.append.build_commits`: the envelopes a real `decide`
    made): enough of them for a command's batches and worker chunks."""

    async def commit_all() -> None:
        async with await SqliteStore.open(path) as store:
            for conversation in build_commits(conversations, messages):
                for commit in conversation:
                    await store.commit(commit)

    asyncio.run(commit_all())


def rows(path: Path, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, params).fetchall()


def event_of(path: Path, conversation_id: str, kind: str) -> tuple[int, dict[str, Any]]:
    """The seq and stored JSON of the conversation's first event of `kind`."""
    seq, text = rows(
        path,
        "SELECT seq, envelope FROM events WHERE conversation_id = ? AND type = ? ORDER BY seq",
        (conversation_id, kind),
    )[0]
    return seq, json.loads(text)


def edit_event(path: Path, conversation_id: str, seq: int, envelope: dict[str, Any]) -> None:
    """What an operator with `sqlite3` could do: rewrite one stored event's JSON."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE events SET envelope = ? WHERE conversation_id = ? AND seq = ?",
            (json.dumps(envelope, separators=(",", ":")), conversation_id, seq),
        )


def seeded_store_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, message: str = URGENT
) -> tuple[Path, str]:
    """A seeded store at `tmp_path/salesbot.db` that the CLI under test opens
    (`SALESBOT_DB`, the default policy); returns its path and the quote id issued."""
    path = tmp_path / "salesbot.db"
    monkeypatch.setenv("SALESBOT_DB", str(path))
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)
    return path, asyncio.run(seed(path, message))
