"""`SALESBOT_SQLITE_WRITER`: `serve` runs SQLite's writer in a process of its own unless told
`thread`; the CLI's other commands, which run for a moment, always keep it on a thread; a
value that is neither is refused with the variable's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.bootstrap import open_store
from bot.settings import Settings, SettingsError, load_settings
from storage.sqlite import SqliteStore
from storage.sqlite_process import ProcessWriter
from storage.sqlite_writer import ThreadWriter


async def engine_of(settings: Settings, *, serving: bool) -> type[object]:
    async with open_store(settings, serving=serving) as store:
        assert isinstance(store, SqliteStore)
        return type(store._engine)


async def test_serve_writes_from_a_process_of_its_own_unless_told_thread(tmp_path: Path) -> None:
    settings = Settings(salesbot_db=str(tmp_path / "salesbot.db"))
    assert await engine_of(settings, serving=True) is ProcessWriter
    threaded = settings.model_copy(update={"salesbot_sqlite_writer": "thread"})
    assert await engine_of(threaded, serving=True) is ThreadWriter


async def test_other_commands_write_from_a_thread_whatever_the_setting(tmp_path: Path) -> None:
    settings = Settings(salesbot_db=str(tmp_path / "salesbot.db"))
    assert settings.salesbot_sqlite_writer == "process"
    assert await engine_of(settings, serving=False) is ThreadWriter


def test_a_writer_that_is_neither_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESBOT_SQLITE_WRITER", "fork")
    with pytest.raises(SettingsError, match="SALESBOT_SQLITE_WRITER"):
        load_settings()
