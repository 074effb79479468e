"""`salesbot audit` records who ran it, also where the user has no account entry (common in
containers: `getpass.getuser()` raises there)."""

from __future__ import annotations

import asyncio
import io
import os
import pwd
from collections.abc import Sequence
from pathlib import Path

import pytest

from adapters.ports import Route
from bot.cli import main
from bot.policy_loader import load_policy
from bot.runtime import Runtime
from domain.cards import Reply
from domain.events import AuditRequested
from domain.inbound import Actor, Inbound, MessagePosted
from domain.state import ConversationState
from storage.sqlite import SqliteStore

PROSPECT = Actor(id="P", name="Pat", role="prospect")


class Nowhere:
    def route(self, inbound: Inbound, reply: Reply, state: ConversationState) -> Sequence[Route]:
        return []


async def _seed(path: Path) -> None:
    store = await SqliteStore.open(path)
    try:
        runtime = Runtime(store, load_policy("default"), Nowhere(), clock=lambda: 1_790_000_000_000)
        await runtime.start()
        await runtime.handle(
            MessagePosted(delivery_id="m1", conversation_id="dm-1", actor=PROSPECT, text="Hello")
        )
    finally:
        await store.close()


async def _auditors(path: Path) -> list[str]:
    store = await SqliteStore.open(path)
    try:
        return [e.event.by for e in await store.load("dm-1") if isinstance(e.event, AuditRequested)]
    finally:
        await store.close()


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "salesbot.db"
    monkeypatch.setenv("SALESBOT_DB", str(path))
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)
    asyncio.run(_seed(path))
    return path


def test_audit_without_an_account_entry_records_the_uid(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)

    def no_entry(uid: int) -> pwd.struct_passwd:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    out, err = io.StringIO(), io.StringIO()
    assert main(["audit", "dm-1"], out=out, err=err) == 0
    assert err.getvalue() == ""
    assert "dm-1" in out.getvalue()
    assert asyncio.run(_auditors(database)) == [f"cli:uid:{os.getuid()}"]


def test_audit_records_the_login_name_when_there_is_one(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGNAME", "auditor-ann")
    assert main(["audit", "dm-1"], out=io.StringIO(), err=io.StringIO()) == 0
    assert asyncio.run(_auditors(database)) == ["cli:auditor-ann"]
