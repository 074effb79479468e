"""Stores with every kind of log salesbot keeps, for tests that hold a fast path to the
plain one it replaced: every earlier release's store (tests/fixtures/stores) and a day of
sales written by this release (sealed events, every platform's routes, quotes, tickets,
knowledge answers, a change of language), with one conversation erased afterwards."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from bot.policy_loader import load_policy
from storage.sqlite import SqliteStore
from tests.bot.test_schema_contract import a_day_of_sales
from tests.storage.scripted import SalesDay

FIXTURES = sorted((Path(__file__).parents[1] / "fixtures" / "stores").glob("release-*.db"))
ERASED = "conv-1"
"""The sales day's conversation erased after the day (its words read `[erased]`)."""


async def _migrate(path: Path) -> None:
    async with await SqliteStore.open(path):
        pass


async def _erase_one(path: Path) -> None:
    async with await SqliteStore.open(path) as store:
        day = SalesDay(store, load_policy("default"))
        await day.start()
        await day.runtime.erase(ERASED, by="dpo", reason="request")
        await day.runtime.settled()


def varied_stores(directory: Path) -> list[Path]:
    """Copies of the earlier releases' stores, migrated to this release's schema as opening
    them does, and today's sales day, written under `directory`."""
    paths = []
    for fixture in FIXTURES:
        copy = directory / fixture.name
        shutil.copy(fixture, copy)
        asyncio.run(_migrate(copy))
        paths.append(copy)
    today = directory / "sales-day.db"
    asyncio.run(a_day_of_sales(today))
    asyncio.run(_erase_one(today))
    paths.append(today)
    return paths
