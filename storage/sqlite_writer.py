"""The single writer under `SqliteStore`: one write connection on its own thread, group
commit, and the read connection beside it.

Durability. The file is in WAL mode with `synchronous=FULL`: every COMMIT fsyncs the WAL
before it returns. `NORMAL` would survive a process crash but can lose the last commits on
power loss or an OS crash; an inbound the platform has been acknowledged for must survive
both, because the platform will not send it again. With group commit one fsync covers a
whole batch, so FULL costs little: a prototype on this kind of machine measured about 40k
events/s with FULL against 47k with NORMAL (RELIABILITY.md, rules 3–4).

One writer (RELIABILITY rule 3). SQLite has a single writer, and a connection shared by
concurrent tasks silently merges their transactions. So every write — `commit`, `append`,
the outbox and ticket operations, `put_policy`, `put_state`/`delete_state` — is a job for
the one write connection. With the thread, jobs wait on an `asyncio.Queue` and one writer
task takes every job waiting (up to `max_batch`), runs them in one `BEGIN IMMEDIATE …
COMMIT` in which a job that fails (a `ConcurrencyError`, a bad value) is undone alone
(`Transaction`), and resolves the callers' futures only after the COMMIT returned. A
caller that sees `committed` therefore holds a durable commit, and concurrent conversations
share one fsync.

Where the write connection lives is a `WriteEngine`: a thread of this process
(`ThreadWriter`, below) or, under `serve`, a process of its own
(`storage.sqlite_process.ProcessWriter`, which says why). The thread's batches are formed
here from the queue; the process is sent each job at once and groups them itself, at the
end of each turn of the event loop, so the child runs a job while the server still prepares
the next (the futures resolve after the COMMIT either way).

Why the write connection is a plain `sqlite3` connection on its own thread, not aiosqlite:
aiosqlite makes one thread hop per statement (~70 µs here) and a commit is about ten
statements; measured with realistic commits (about four events each), that capped group
commit at ~1.1k commits/s. The writer instead runs a whole batch in one hop on its private
single-thread executor (what aiosqlite does per statement): ~2.5k commits/s, ~10k events/s.
Reads use aiosqlite on a second, read-only connection: WAL lets it read while the writer
writes, and every read is one statement, so it always sees a committed snapshot.

`busy_timeout=5000` lets a second process (the CLI reading while the bot runs) wait for the
lock instead of failing; `foreign_keys=ON` makes the REFERENCES clauses hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Literal, Protocol, Self, TypeVar, cast

import aiosqlite

from storage.errors import (
    CorruptDatabaseError,
    SchemaTooNewError,
    StorageError,
)
from storage.sqlite_checkpoints import Checkpointer
from storage.sqlite_schema import APPLICATION_ID, SCHEMA_VERSION, migrate, user_version

T = TypeVar("T")

Conn = sqlite3.Connection

Params = Sequence[object] | dict[str, object]

BUSY_TIMEOUT_MS = 5000

SQLITE_HEADER = b"SQLite format 3\x00"

_CORRUPT = frozenset({"SQLITE_NOTADB", "SQLITE_CORRUPT"})


@dataclass(slots=True)
class _Job(Generic[T]):
    run: Any
    """The job as the writer takes it (`WriteEngine.prepare`)."""
    future: asyncio.Future[T]


Outcome = tuple[Any, BaseException | None]

WriterKind = Literal["thread", "process"]


class WriteEngine(Protocol):
    """Where the write connection lives: a thread of this process (`ThreadWriter`, whose
    batches `SqliteConnections` forms) or a process of its own
    (`storage.sqlite_process.ProcessWriter`, which groups the jobs it is sent itself)."""

    def prepare(self, run: Callable[[Conn], Any]) -> object:
        """The job as it is queued or sent (done in the caller's task)."""
        ...

    async def outside(self, run: Callable[[Conn], T]) -> T:
        """Run `run` on the write connection between transactions, outside any."""
        ...

    async def close(self) -> None: ...


class StreamingEngine(WriteEngine, Protocol):
    """An engine that takes each job as it comes and groups them into transactions itself."""

    transactions: int
    """Transactions committed so far: metrics."""

    async def submit(self, job: Any) -> Outcome:
        """Run a prepared job in the engine's next transaction; its outcome once that
        committed. Raises when the transaction failed as a whole (nothing of it is durable)
        or when it cannot be known whether it committed (the message says so)."""
        ...


class ThreadWriter:
    """The write connection on one private thread of this process (the embedded default:
    the CLI's commands and tests open the store this way)."""

    def __init__(
        self, conn: Conn, executor: ThreadPoolExecutor, checkpointer: Checkpointer | None
    ) -> None:
        self._conn = conn
        self._executor = executor  # one thread: the only one that touches `_conn`
        self._checkpointer = checkpointer

    @classmethod
    async def start(cls, path: Path, verify: bool) -> Self:
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        try:
            conn = await loop.run_in_executor(executor, _open_writer, path, verify)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        checkpointer = await loop.run_in_executor(executor, Checkpointer.start, path, conn)
        return cls(conn, executor, checkpointer)

    def prepare(self, run: Callable[[Conn], Any]) -> object:
        return run

    async def transact(self, jobs: list[Any]) -> list[Outcome]:
        """Run prepared jobs in one transaction (`Transaction`); each one's outcome.
        Raises when the transaction itself failed (nothing of it is durable)."""
        loop = asyncio.get_running_loop()
        outcomes = await loop.run_in_executor(self._executor, _transact, self._conn, jobs)
        if self._checkpointer is not None:
            self._checkpointer.committed()
        return outcomes

    async def outside(self, run: Callable[[Conn], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, _held, self._checkpointer, run, self._conn
        )

    async def close(self) -> None:
        # Queued behind any batch still running on the writer thread.
        await asyncio.get_running_loop().run_in_executor(
            self._executor, _close_writer, self._conn, self._checkpointer
        )
        self._executor.shutdown(wait=False)


def _held(checkpointer: Checkpointer | None, run: Callable[[Conn], T], conn: Conn) -> T:
    """`run(conn)` with no background checkpoint under way (the job may checkpoint)."""
    if checkpointer is None:
        return run(conn)
    with checkpointer.held():
        return run(conn)


def _close_writer(conn: Conn, checkpointer: Checkpointer | None) -> None:
    """The checkpointer first: the writer's connection, closing last, folds the log into
    the file and removes it, as it did before."""
    if checkpointer is not None:
        checkpointer.close()
    conn.close()


class SqliteConnections:
    """The two connections of one SQLite file and the writer task that owns the write one.
    The store's parts (`SqliteStore`, its outbox and tickets) write through `_write` and
    read through `_fetch`."""

    def __init__(
        self,
        path: Path,
        engine: ThreadWriter | StreamingEngine,
        reader: aiosqlite.Connection,
        *,
        max_batch: int = 512,
    ) -> None:
        """Use `open`: this only wires together connections that are ready."""
        self.path = path
        self._engine = engine
        self._reader = reader
        self._peeker: sqlite3.Connection | None = None
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Job[Any] | None] = asyncio.Queue()
        self._closing = False
        self._closed = False
        self._batches = 0
        self._writer_task = asyncio.create_task(self._write_loop(), name=f"sqlite-writer:{path}")
        self._writer_task.add_done_callback(self._on_writer_exit)

    @classmethod
    async def open(
        cls, path: str | Path, *, verify: bool = True, writer: WriterKind = "thread"
    ) -> Self:
        """Open (creating and migrating if needed) the database at `path`, its write
        connection on a thread of this process or in a `writer` process of its own.

        Raises `CorruptDatabaseError` for a file that is not a salesbot SQLite database or
        (with `verify`, the default) fails `PRAGMA quick_check`, `SchemaTooNewError` for a
        database from a newer salesbot, and `StorageError` when the file cannot be opened.
        """
        path = Path(path)
        engine: ThreadWriter | StreamingEngine
        if writer == "process":
            # Imported when asked for: the child's side imports this module.
            from storage.sqlite_process import ProcessWriter

            engine = await ProcessWriter.start(path, verify)
        else:
            engine = await ThreadWriter.start(path, verify)
        try:
            reader = await _open_reader(path)
        except BaseException:
            await engine.close()
            raise
        return cls(path, engine, reader)

    async def _write(self, run: Callable[[Conn], T]) -> T:
        """Run `run` in the writer's next transaction; return once that committed."""
        if self._closing:
            raise StorageError(f"The store {self.path} is closed.")
        job = self._engine.prepare(run)
        if not isinstance(self._engine, ThreadWriter):
            result, error = await self._engine.submit(job)
            if error is not None:
                raise _wrap(error, self.path)
            return cast(T, result)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(job, future))
        return await future

    async def _outside(self, run: Callable[[Conn], T]) -> T:
        """Run `run` on the write connection between two batches, outside any transaction
        (a WAL checkpoint cannot run inside one)."""
        if self._closing:
            raise StorageError(f"The store {self.path} is closed.")
        try:
            return await self._engine.outside(run)
        except sqlite3.Error as exc:
            raise _wrap(exc, self.path) from exc

    @property
    def batches(self) -> int:
        """Write transactions committed so far (each holds one or more jobs): metrics."""
        if isinstance(self._engine, ThreadWriter):
            return self._batches
        return self._engine.transactions

    async def _write_loop(self) -> None:
        try:
            await self._drain_queue()
        finally:
            # Also when asyncio.run() cancels a store nobody closed: release the file.
            self._closing = True
            await self._close_connections()

    async def _close_connections(self) -> None:
        if not self._closed:
            self._closed = True
            if self._peeker is not None:
                self._peeker.close()
            await self._reader.close()
            await self._engine.close()

    async def _drain_queue(self) -> None:
        """The thread's group commit: every job waiting (up to `max_batch`) in one batch.
        (A streaming engine is sent its jobs directly: nothing is queued for it.)"""
        while True:
            job = await self._queue.get()
            if job is None:
                return
            batch = [job]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            await self._run_batch(batch)
            if stop:
                return

    async def _run_batch(self, batch: list[_Job[Any]]) -> None:
        # A caller that was cancelled before its turn gave up: do not write for it.
        live = [job for job in batch if not job.future.done()]
        if not live:
            return
        assert isinstance(self._engine, ThreadWriter)  # the only engine with batches
        try:
            outcomes = await self._engine.transact([job.run for job in live])
        except Exception as exc:
            # BEGIN, a savepoint or the COMMIT itself failed: nothing of the batch is durable.
            failure = _wrap(exc, self.path)
            if not isinstance(failure, StorageError):
                failure = StorageError(f"Writing to {self.path} failed: {exc}")
            for job in live:
                _settle(job.future, None, failure)
            return
        except BaseException:
            unknown = StorageError(
                f"The writer of {self.path} was stopped during a commit; the write may or "
                "may not be durable."
            )
            for job in live:
                _settle(job.future, None, unknown)
            raise
        self._batches += 1
        for job, (result, error) in zip(live, outcomes, strict=True):
            _settle(job.future, result, None if error is None else _wrap(error, self.path))

    def _on_writer_exit(self, task: asyncio.Task[None]) -> None:
        """If the writer stops (closed, cancelled at shutdown, a bug), fail what is still
        queued instead of leaving callers waiting forever."""
        self._closing = True
        crashed = task.cancelled() or task.exception() is not None
        reason = "its writer was stopped" if crashed else "the store was closed"
        error = StorageError(f"The write to {self.path} was not made: {reason}.")
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if job is not None:
                _settle(job.future, None, error)

    async def _fetch(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        if self._closing:
            raise StorageError(f"The store {self.path} is closed.")
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise _wrap(exc, self.path) from exc

    def _peek(self, sql: str, params: Params = ()) -> list[sqlite3.Row] | None:
        """An indexed point look-up answered on the caller's thread, or None when SQLite
        cannot answer it at once, for the caller to read through `_fetch` instead.

        Why not always `_fetch`: its reader connection is on a thread of its own, and the
        hop there and back costs 60–90 µs of CPU where the look-up itself costs 5 (and,
        on a busy event loop, the wait for the interpreter lock on the way back). Reading
        in write-ahead-log mode takes no lock a writer holds, so a look-up of one row by
        its key does not wait on the writer; the rare moment SQLite would make it wait (the
        log being rebuilt after a crash) answers "busy" at once (no busy timeout here), and
        the caller reads through `_fetch`, which waits. Any other failure is left to
        `_fetch` too, which reports it as the store's error; the connection is opened again
        on the next look-up. Only for statements that read a handful of rows through an
        index: anything longer would hold up the event loop."""
        if self._closing:
            raise StorageError(f"The store {self.path} is closed.")
        try:
            if self._peeker is None:
                self._peeker = _open_peeker(self.path)
            return self._peeker.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            if not _busy(exc) and self._peeker is not None:
                self._peeker.close()
                self._peeker = None
            return None

    async def _look_up(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """A point look-up (`_peek`), read through `_fetch` when it cannot be answered at
        once."""
        rows = self._peek(sql, params)
        return rows if rows is not None else await self._fetch(sql, params)

    async def close(self) -> None:
        """Let the writer finish every job already queued, then close both connections."""
        if not self._closing:
            self._closing = True
            self._queue.put_nowait(None)
        # The writer closes the connections on its way out; its own failure, if any, was
        # already reported to the callers whose writes it concerned.
        await asyncio.wait([self._writer_task])

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


# -- opening and the writer thread -------------------------------------------------------


def _open_writer(path: Path, verify: bool) -> Conn:
    """On the writer thread: check, configure and migrate the file; return the connection."""
    _check_header(path)
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise _wrap(exc, path) from exc
    try:
        _prepare_writer(conn, path, verify=verify)
    except BaseException:
        conn.close()
        raise
    return conn


def _check_header(path: Path) -> None:
    """Refuse a file that is not SQLite before SQLite sees it (an empty file is new)."""
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise StorageError(f"{path} is a directory, not a database file.") from None
    except OSError as exc:
        raise StorageError(f"{path} cannot be read: {exc.strerror}.") from None
    if header and header != SQLITE_HEADER:
        raise CorruptDatabaseError(path, "it is not a SQLite database file")


def _prepare_writer(conn: Conn, path: Path, *, verify: bool) -> None:
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        found = user_version(conn)
        if found > SCHEMA_VERSION:
            # Checked before anything else: a newer schema may not even be readable here.
            raise SchemaTooNewError(path, found, SCHEMA_VERSION)
        (application_id,) = _one(conn, "PRAGMA application_id")
        if application_id not in (0, APPLICATION_ID):
            raise CorruptDatabaseError(
                path, f"it belongs to another application (application_id {application_id})"
            )
        if found == 0:
            (tables,) = _one(
                conn, "SELECT COUNT(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'"
            )
            if tables:
                raise CorruptDatabaseError(path, "it holds tables but no salesbot schema")
        (mode,) = _one(conn, "PRAGMA journal_mode = WAL")
        if str(mode).lower() != "wal":
            raise StorageError(f"{path} cannot use write-ahead logging (journal mode {mode}).")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        # A deleted row (an erased conversation's key) is overwritten, not left in free pages.
        conn.execute("PRAGMA secure_delete = ON")
        if verify and found:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
            if problems != ["ok"]:
                raise CorruptDatabaseError(path, f"its integrity check failed ({problems[0]})")
        migrate(conn, path)
    except sqlite3.Error as exc:
        raise _wrap(exc, path) from exc


async def _open_reader(path: Path) -> aiosqlite.Connection:
    try:
        conn = await aiosqlite.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise _wrap(exc, path) from exc
    try:
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA query_only = ON")
    except BaseException as exc:
        await conn.close()
        if isinstance(exc, sqlite3.Error):
            raise _wrap(exc, path) from exc
        raise
    return conn


def _busy(exc: sqlite3.Error) -> bool:
    """Whether SQLite only declined to wait (the file busy or locked for a moment)."""
    code = getattr(exc, "sqlite_errorcode", None)  # None for the module's own errors
    return isinstance(code, int) and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _open_peeker(path: Path) -> sqlite3.Connection:
    """`SqliteConnections._peek`'s connection: read-only, never waiting for a lock.
    (`check_same_thread` off: a store is used by one event loop at a time, whichever
    thread runs it.)"""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout = 0")
        conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _transact(conn: Conn, runs: Sequence[Callable[[Conn], Any]]) -> list[Outcome]:
    """On the writer thread: one transaction (`Transaction`). A job's exception undoes
    that job only; a failure of the transaction itself undoes all and propagates."""
    transaction = Transaction(conn)
    transaction.begin()
    try:
        for run in runs:
            transaction.run(partial(_same, run))
        transaction.commit()
    except BaseException:
        transaction.rollback()
        raise
    return transaction.outcomes


def _same(run: Callable[[Conn], Any]) -> Callable[[Conn], Any]:
    return run


class Transaction:
    """One write transaction's jobs, each run as it comes, and each one's outcome.

    A job that fails must be undone alone. A savepoint around every job did that, at a
    cost: SQLite copies each page a savepoint's job first changes into the savepoint's
    journal, and a commit changes a dozen pages (about 60 µs of a commit's 390 on the
    writer thread, docs/benchmarks.md, issue 18). Jobs rarely fail, and when they do it is
    mostly before they write (a `ConcurrencyError`, a duplicate key in the one statement
    that SQLite undoes itself). So jobs run straight in the transaction, and the
    connection's count of changed rows tells whether a failed job wrote anything. If it
    did, the transaction is rolled back and begun again, the jobs before it are run again,
    each in a savepoint from then on, and the failed one answers with its error: only a
    rollback can undo what it wrote.

    A job is therefore run again after a rollback now and then: its effects must be its
    writes through the connection (jobs are plain data and a function; `make` gives the
    job each time, so a job read from bytes is read again). A job writes only with
    INSERT, UPDATE and DELETE, which that count sees.
    """

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.outcomes: list[Outcome] = []
        self._made: list[Callable[[], Callable[[Conn], Any]]] = []
        self._guarded = False

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def run(self, make: Callable[[], Callable[[Conn], Any]]) -> None:
        """Run the job `make` gives and keep its outcome. Raises when the transaction
        itself failed (SQLite rolled it back, or a savepoint or the new BEGIN failed)."""
        if self._guarded:
            self.outcomes.append(_savepointed(self.conn, make()))
        else:
            try:
                self.outcomes.append(_unguarded(self.conn, make()))
            except _WroteThenFailedError as failed:
                self._again(failed.error)
        self._made.append(make)

    def _again(self, error: Exception) -> None:
        """Undo everything, run the jobs before the failed one again (a savepoint each
        from now on), and answer the failed one with its error."""
        self.conn.execute("ROLLBACK")
        self.conn.execute("BEGIN IMMEDIATE")
        self._guarded = True
        self.outcomes = [_savepointed(self.conn, make()) for make in self._made]
        self.outcomes.append((None, error))

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")


class _WroteThenFailedError(Exception):
    """A job failed after some of its statements had written: only a rollback undoes it."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _unguarded(conn: Conn, run: Callable[[Conn], Any]) -> Outcome:
    """One job straight in the open transaction: its result, or its exception when it
    wrote nothing (a failing statement is undone by SQLite itself). Raises
    `_WroteThenFailedError` when it had written, and the exception itself when SQLite
    rolled the whole transaction back (a full disk, an I/O error)."""
    before = conn.total_changes
    try:
        return (run(conn), None)
    except Exception as exc:
        if not conn.in_transaction:
            raise
        if conn.total_changes != before:
            raise _WroteThenFailedError(exc) from exc
        return (None, exc)


def _savepointed(conn: Conn, run: Callable[[Conn], Any]) -> Outcome:
    """One job in a savepoint of the open transaction: its result, or its exception with
    its writes undone. Raises only when the savepoint itself fails."""
    conn.execute("SAVEPOINT job")
    try:
        result = run(conn)
    except Exception as exc:
        conn.execute("ROLLBACK TO job")
        conn.execute("RELEASE job")
        return (None, exc)
    conn.execute("RELEASE job")
    return (result, None)


def _one(conn: Conn, sql: str, params: Params = ()) -> Any:
    return conn.execute(sql, params).fetchone()


# -- errors and futures -----------------------------------------------------------------


def _wrap(exc: BaseException, path: Path) -> BaseException:
    """Keep our own errors and the caller's bugs as they are; turn SQLite's into ours."""
    if not isinstance(exc, sqlite3.Error):
        return exc
    name = getattr(exc, "sqlite_errorname", "")
    if name in _CORRUPT:
        return CorruptDatabaseError(path, str(exc))
    return StorageError(f"The database {path} reported an error: {exc}.")


def _settle(future: asyncio.Future[Any], result: object, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled meanwhile (the write was made anyway)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(cast(Any, result))
