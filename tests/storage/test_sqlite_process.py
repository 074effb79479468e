"""The SQLite writer in a process of its own (`storage.sqlite_process`): what happens when
either process dies, when a terminal's Ctrl-C reaches the group, and when a job or its
answer cannot cross. (The store's contract runs on this writer too: `conftest.py`.)"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from domain.policy import Policy
from storage.errors import StorageError
from storage.sqlite import SqliteStore
from storage.sqlite_process import ProcessWriter
from storage.sqlite_writer import Conn
from tests.storage.builders import handoff_script

DEADLINE_S = 60.0
"""Only a bound on a wait that ends by itself: no outcome depends on it."""


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with await SqliteStore.open(tmp_path / "salesbot.db", writer="process") as opened:
        yield opened


def child_of(store: SqliteStore) -> ProcessWriter:
    writer = store._engine
    assert isinstance(writer, ProcessWriter)
    return writer


def exits(pid: int) -> bool:
    """Whether process `pid` (not ours to wait for) exits within the deadline."""
    fd = os.pidfd_open(pid)
    try:
        readable, _, _ = select.select([fd], [], [], DEADLINE_S)
    finally:
        os.close(fd)
    return bool(readable)


async def test_a_write_the_dying_writer_held_may_or_may_not_be_durable_and_no_more_are_taken(
    store: SqliteStore, default_policy: Policy
) -> None:
    first, second = handoff_script(default_policy, "conv-1").commits[:2]
    assert (await store.commit(first)).status == "committed"
    child = child_of(store)
    os.kill(child.pid, signal.SIGSTOP)  # it cannot answer what it is sent now
    pending = asyncio.create_task(store.commit(second))
    for _ in range(10_000):  # event-loop turns, not time: until the batch is sent
        if child.unanswered:
            break
        await asyncio.sleep(0)
    assert child.unanswered == 1
    os.kill(child.pid, signal.SIGKILL)
    with pytest.raises(StorageError, match="may or may not be durable") as lost:
        await pending
    assert "was killed (signal 9)" in str(lost.value)
    with pytest.raises(StorageError, match="no write can be made until salesbot is restarted"):
        await store.put_state("k", {"v": 1}, 1)
    assert await store.load("conv-1") == list(first.events)  # reads still answer
    assert child.exit_code == -signal.SIGKILL


async def test_ctrl_c_in_the_terminal_does_not_stop_the_writer(
    store: SqliteStore, default_policy: Policy
) -> None:
    child = child_of(store)
    for sent in (signal.SIGINT, signal.SIGTERM):
        os.kill(child.pid, sent)
    first = handoff_script(default_policy, "conv-1").commits[0]
    assert (await store.commit(first)).status == "committed"
    await store.close()
    assert child.exit_code == 0


def _fails(conn: Conn) -> None:
    raise _UnpicklableError()


def _answers_what_cannot_cross(conn: Conn) -> object:
    return lambda: None


class _UnpicklableError(Exception):
    """An error that holds something pickle cannot carry."""

    def __init__(self) -> None:
        super().__init__("held a lock")
        self.holding = lambda: None


async def test_a_job_or_an_error_that_cannot_cross_fails_its_own_caller_only(
    store: SqliteStore, default_policy: Policy
) -> None:
    first = handoff_script(default_policy, "conv-1").commits[0]
    results = await asyncio.gather(
        store._write(lambda conn: None),  # a closure: it does not pickle
        store._write(_fails),
        store._write(_answers_what_cannot_cross),
        store.commit(first),
        return_exceptions=True,
    )
    assert "pickle" in repr(results[0]).lower()
    assert isinstance(results[1], StorageError)
    assert "held a lock" in str(results[1])
    assert isinstance(results[2], StorageError)
    assert "made the write but cannot return its answer" in str(results[2])
    assert [getattr(result, "status", None) for result in results] == [
        None,
        None,
        None,
        "committed",
    ]
    assert await store.load("conv-1") == list(first.events)


SERVER = textwrap.dedent(
    """
    import asyncio, sys
    from storage.sqlite import SqliteStore
    from tests.storage.builders import handoff_script
    from bot.policy_loader import load_policy

    async def main() -> None:
        store = await SqliteStore.open(sys.argv[1], writer="process")
        commit = handoff_script(load_policy("default"), "conv-1").commits[0]
        await store.commit(commit)
        print(store._engine.pid, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())
    """
)


def test_the_writer_exits_when_the_server_is_killed_and_what_it_committed_stays(
    tmp_path: Path, default_policy: Policy
) -> None:
    path = tmp_path / "salesbot.db"
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert server.stdout is not None
    child = int(server.stdout.readline())
    server.kill()
    server.wait()
    assert exits(child)

    async def committed() -> list[object]:
        async with await SqliteStore.open(path) as reopened:
            return list(await reopened.load("conv-1"))

    first = handoff_script(default_policy, "conv-1").commits[0]
    assert asyncio.run(committed()) == list(first.events)


async def test_a_writer_that_cannot_start_is_one_clear_error_and_opens_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", "/bin/false")  # the child exits at once, code 1
    path = tmp_path / "salesbot.db"
    with pytest.raises(StorageError, match="exited \\(code 1\\) before it opened the file"):
        await SqliteStore.open(path, writer="process")
    assert not path.exists()


async def test_the_writer_is_this_checkout_s_whatever_the_working_directory_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default_policy: Policy
) -> None:
    decoy = tmp_path / "elsewhere" / "storage"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise SystemExit('another storage package')\n")
    monkeypatch.chdir(decoy.parent)  # `python -m` alone would import this one first
    first = handoff_script(default_policy, "conv-1").commits[0]
    async with await SqliteStore.open(tmp_path / "salesbot.db", writer="process") as store:
        assert (await store.commit(first)).status == "committed"
