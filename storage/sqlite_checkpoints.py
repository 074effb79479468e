"""Checkpoints of the write-ahead log on a thread of their own, off the writer's path.

Why. In WAL mode every commit appends the pages it changed to the log, and a checkpoint
copies them back into the database file. By default SQLite checkpoints inside the COMMIT
that takes the log past 1,000 pages: that commit, and every write grouped into it, waits
while hundreds of pages are read, written and fsynced. Under `serve` at half of its maximum
a message wrote about 47 pages (11 of them into two indexes of the events dropped since),
so one commit in twenty or so carried a checkpoint, and its
callers' acknowledgements with it (RELIABILITY.md, rule 4: checkpoints set the tail; the
measurement is in docs/benchmarks.md, 2026-12-07 "the checkpoints leave the commits").

How. The writer turns its own automatic checkpoints down to a backstop (`BACKSTOP_PAGES`,
reached only if this thread falls far behind or fails) and tells a `Checkpointer` after
each COMMIT. The checkpointer's thread, on its own connection, then runs a PASSIVE
checkpoint — which copies what is committed without waiting for, or blocking, the writer
or any reader — `EVERY_S` after a commit, for every commit of that period together, and
sleeps on an event while none come. SQLite releases the interpreter lock while it copies,
so the copying runs beside the writer's next jobs. Durability is unchanged: a commit is
durable when its COMMIT has fsynced the log, before any checkpoint; the checkpoint only
moves durable pages.

A job that checkpoints itself (an erasure truncating the log, `SqliteStore.erase`) runs
under `held()`, so the two never contend for the checkpoint lock.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

BACKSTOP_PAGES = 10_000
"""The writer's own automatic checkpoint once a checkpointer runs (SQLite's default is
1,000): the log grows to about 40 MB at most should the thread fall behind or fail."""
EVERY_S = 0.1
"""While commits come, one checkpoint this long after the first of them. At half of
`serve`'s maximum (about 150 commits a second of 47 pages when it was chosen; fewer pages
since two indexes were dropped) that is about 700 pages a checkpoint, near SQLite's own
1,000: about as many fsyncs of the file as before. Longer
periods make fewer, larger checkpoints, which delay the commits' own fsyncs more (0.25 s
measured: the p99.9 of a commit no better than with SQLite's checkpoints)."""


class Checkpointer:
    """The thread that checkpoints one SQLite file's log after commits (see the module).
    Create with `start`; `committed` after each COMMIT; `close` before the writer closes."""

    def __init__(self, path: Path, conn: sqlite3.Connection, every_s: float) -> None:
        """Use `start`: this only wires together a connection that is ready."""
        self._conn = conn
        self._every_s = every_s
        self._due = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._ran = threading.Event()
        self.failures = 0
        """Checkpoints SQLite refused (the backstop covers them)."""
        self._thread = threading.Thread(
            target=self._run, name=f"sqlite-checkpoints:{path.name}", daemon=True
        )
        self._thread.start()

    @classmethod
    def start(
        cls, path: Path, writer: sqlite3.Connection, every_s: float = EVERY_S
    ) -> Checkpointer | None:
        """A checkpointer for the file `writer` writes, the writer's own checkpoints turned
        down to the backstop; None (the writer checkpointing as before) when its connection
        cannot be opened."""
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return None
        try:
            conn.execute("PRAGMA busy_timeout = 0")  # PASSIVE never waits anyway
            conn.execute("PRAGMA synchronous = FULL")  # the file fsynced after each copy
            writer.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
        except sqlite3.Error:
            conn.close()
            return None
        return cls(path, conn, every_s)

    def committed(self) -> None:
        """A transaction committed: checkpoint soon (thread-safe, never waits)."""
        self._due.set()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """No checkpoint of this thread runs while held: for a job that checkpoints
        itself."""
        with self._lock:
            yield

    def ran(self, timeout: float) -> bool:
        """Whether a checkpoint has ended since the last call, waiting up to `timeout`
        seconds for one (for tests and tools: the thread keeps its own pace)."""
        ended = self._ran.wait(timeout)
        self._ran.clear()
        return ended

    def close(self) -> None:
        """Stop the thread (a checkpoint under way finishes first) and close its
        connection."""
        self._stop.set()
        self._due.set()
        self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        while True:
            self._due.wait()
            # Cleared before the period, never after: a `close` that sets it meanwhile
            # is then seen by the period's wait, or by the next `wait` above.
            self._due.clear()
            # Let a period's commits gather: one checkpoint copies a page they all
            # rewrote once, and fsyncs the file once.
            if self._stop.wait(self._every_s):
                return
            with self._lock:
                try:
                    self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    self.failures += 1
            self._ran.set()
