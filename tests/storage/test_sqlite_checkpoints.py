"""The write-ahead log is checkpointed by a thread of its own (`storage.sqlite_checkpoints`),
not inside the commits: the writer's own automatic checkpoint is turned down to a backstop,
what is committed reaches the database file after a commit, a checkpointer that cannot open
leaves the writer checkpointing as before, and both writers (thread and process) run one."""

from __future__ import annotations

import pickle
import socket
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest

from domain.policy import Policy
from storage import sqlite_child
from storage.sqlite import SqliteStore
from storage.sqlite_checkpoints import BACKSTOP_PAGES, Checkpointer
from storage.sqlite_process import ANSWER, DONE, FRAME, JOB, OK, OUTSIDE, SEAL
from storage.sqlite_writer import Conn, WriterKind
from tests.storage.builders import handoff_script
from tests.storage.test_sqlite_child import _count, _note

DEADLINE_S = 60.0
"""Only a bound on a wait that ends by itself: no outcome depends on it."""
PAGE = 4096


def _writer(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE notes (body BLOB NOT NULL)")
    return conn


def _write_pages(conn: sqlite3.Connection, pages: int) -> None:
    """One transaction of about `pages` pages (one row of a page each)."""
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO notes (body) VALUES (?)", [(b"x" * 3000,)] * pages)
    conn.execute("COMMIT")


def _autocheckpoint(conn: Conn) -> int:
    return int(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])


def test_commits_leave_their_pages_to_the_thread_which_copies_them_into_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "notes.db"
    writer = _writer(path)
    checkpointer = Checkpointer.start(path, writer, every_s=0)
    assert checkpointer is not None
    try:
        assert _autocheckpoint(writer) == BACKSTOP_PAGES
        # More than SQLite's default threshold (1,000 pages): the COMMIT would have
        # checkpointed itself. It does not: the pages are all in the log, none in the file.
        _write_pages(writer, 1_200)
        assert path.stat().st_size < 10 * PAGE
        checkpointer.committed()
        assert checkpointer.ran(DEADLINE_S)
        assert path.stat().st_size >= 1_200 * PAGE  # copied into the file by the thread
        assert checkpointer.failures == 0
        with sqlite3.connect(path) as reader:  # and the file reads as the writer wrote it
            assert reader.execute("SELECT COUNT(*) FROM notes").fetchone() == (1_200,)
    finally:
        checkpointer.close()
        writer.close()


def test_close_stops_the_thread_and_the_writer_closes_the_log_as_before(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    writer = _writer(path)
    checkpointer = Checkpointer.start(path, writer)
    assert checkpointer is not None
    names = {thread.name for thread in threading.enumerate()}
    assert "sqlite-checkpoints:notes.db" in names
    _write_pages(writer, 10)
    checkpointer.committed()
    checkpointer.close()
    assert "sqlite-checkpoints:notes.db" not in {t.name for t in threading.enumerate()}
    checkpointer.committed()  # after close: nothing runs, nothing fails
    writer.close()  # the last connection folds the log into the file and removes it
    assert not path.with_name("notes.db-wal").exists()
    with sqlite3.connect(path) as reader:
        assert reader.execute("SELECT COUNT(*) FROM notes").fetchone() == (10,)


def test_close_right_after_a_commit_never_waits_forever(tmp_path: Path) -> None:
    """`close` may come at any point of the thread's round (waiting, gathering a period's
    commits, checkpointing): each of these cycles ends, however they interleave."""
    path = tmp_path / "notes.db"
    writer = _writer(path)

    def cycles() -> None:
        for n in range(200):
            checkpointer = Checkpointer.start(path, writer, every_s=0)
            assert checkpointer is not None
            for _ in range(n % 3):
                checkpointer.committed()
            checkpointer.close()

    running = threading.Thread(target=cycles, daemon=True)
    running.start()
    running.join(DEADLINE_S)
    try:
        assert not running.is_alive(), "a close waited for a thread that never ended"
    finally:
        writer.close()


class _ClosedAsThePeriodEnds(threading.Event):
    """The thread's stop flag, whose first wait (the period's) times out just as `close`
    sets the stop and due flags: the one interleaving in which a close could be lost."""

    def __init__(self, checkpointer: Checkpointer) -> None:
        super().__init__()
        self.checkpointer = checkpointer
        self.fired = False

    def wait(self, timeout: float | None = None) -> bool:
        if not self.fired:
            self.fired = True
            self.set()  # what `close` does: stop, then due …
            self.checkpointer._due.set()
            return False  # … as the period's wait had already timed out
        return super().wait(timeout)


def test_a_close_that_comes_as_a_period_ends_ends_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    writer = _writer(path)
    checkpointer = Checkpointer.start(path, writer, every_s=0)
    assert checkpointer is not None
    checkpointer._stop = _ClosedAsThePeriodEnds(checkpointer)
    try:
        checkpointer.committed()
        # No second `close`: the one above must be enough for the thread to end.
        checkpointer._thread.join(DEADLINE_S)
        assert not checkpointer._thread.is_alive(), "the close was lost"
    finally:
        checkpointer.close()
        writer.close()


def test_a_checkpointer_that_cannot_open_leaves_the_writer_checkpointing_itself(
    tmp_path: Path,
) -> None:
    writer = _writer(tmp_path / "notes.db")
    try:
        before = _autocheckpoint(writer)
        assert Checkpointer.start(tmp_path / "gone" / "notes.db", writer) is None
        assert _autocheckpoint(writer) == before == 1000
    finally:
        writer.close()


@pytest.mark.parametrize("writer", ["thread", "process"])
async def test_both_writers_leave_checkpoints_to_the_thread(
    tmp_path: Path, writer: WriterKind, default_policy: Policy
) -> None:
    path = tmp_path / "salesbot.db"
    commits = handoff_script(default_policy, "conv-1").commits
    async with await SqliteStore.open(path, writer=writer) as store:
        for commit in commits:
            assert (await store.commit(commit)).status == "committed"
        # The writer's own setting, read on the writer's connection (its thread or its
        # process): the backstop, not SQLite's default.
        assert await store._outside(_autocheckpoint) == BACKSTOP_PAGES
    async with await SqliteStore.open(path, writer=writer) as reopened:
        assert len(await reopened.load("conv-1")) == sum(len(c.events) for c in commits)


class _Recorded:
    """A checkpointer's side as the writer process uses it, written down in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def committed(self) -> None:
        self.calls.append("committed")

    @contextmanager
    def held(self) -> Iterator[None]:
        self.calls.append("held")
        yield
        self.calls.append("released")


async def test_the_writer_process_tells_its_checkpointer_of_each_commit(tmp_path: Path) -> None:
    """`storage.sqlite_child._serve` on a socket pair: the checkpointer hears of each
    COMMIT after its answer was sent, and a job run outside any transaction (an erasure
    truncating the log) runs while the checkpointer is held off."""
    path = tmp_path / "salesbot.db"
    async with await SqliteStore.open(path):
        pass  # created and migrated
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    ours, theirs = socket.socketpair()
    ours.settimeout(DEADLINE_S)
    recorded = _Recorded()
    served = threading.Thread(
        target=sqlite_child._serve,
        args=(theirs, conn, path, recorded),  # the shape `_serve` uses of a Checkpointer
    )
    served.start()
    try:

        def send(kind: int, payload: bytes = b"") -> None:
            ours.sendall(FRAME.pack(len(payload), kind) + payload)

        def answer() -> object:
            (size,) = ANSWER.unpack(_exactly(ours, ANSWER.size))
            return pickle.loads(_exactly(ours, size))

        send(JOB, pickle.dumps(partial(_note, key="a")))
        send(SEAL)
        assert answer() == (DONE, [("a", None)])
        send(OUTSIDE, pickle.dumps(_count))
        assert answer() == (OK, 1)
        assert recorded.calls == ["committed", "held", "released"]
    finally:
        ours.shutdown(socket.SHUT_WR)
        served.join(DEADLINE_S)
        ours.close()
        theirs.close()
        conn.close()


def _exactly(channel: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = channel.recv(size - len(data))
        assert chunk, "the writer closed its end"
        data += chunk
    return data
