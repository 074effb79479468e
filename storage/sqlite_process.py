"""The SQLite writer in a process of its own (`SALESBOT_SQLITE_WRITER=process`, `serve`'s
default): the write connection, its transactions and their fsyncs run in a child process,
and the server's process keeps the event loop, the reads and everything else.

Why. The writer thread's work is mostly Python — sealing, the hash chain, the projections,
the outbox's bookkeeping — and it holds the GIL while the event loop waits for it. Measured
on two cores (docs/benchmarks.md, issue 18), moving it to a child took a Teams saturation
from 0.75× to 0.99× the Agents SDK echo bot; the SQL and the fsyncs are a tenth of it.

How. The child is `python -P -m storage.sqlite_child`, spawned (never forked: the server has
threads) with one end of a socket pair. Every job is pickled by its caller before it is
sent — the store's jobs are plain data (`storage.sqlite._CommitJob`, `functools.partial`s of
module functions), so a job that would not cross fails its own caller and nothing else.

Group commit streams. Each job is sent the moment its caller has it ready, and the child
runs it at once, inside an open transaction (a job that fails is undone alone); at the end
of the event loop's turn the parent sends a seal, and at the seal the child commits and
answers every job of the transaction. So the jobs one turn of the loop writes share one
transaction and one fsync, as the thread's batches do, and the child runs the first of them
while the server is still preparing the last (measured with `bench.append`'s commits:
1,832 → 2,539 commits/s, where a whole batch used to wait for its last job before the child
saw any). A child that reaches a seal and finds a later seal already waiting commits both
groups as one transaction: never more fsyncs than batches would have needed.

Durability is the thread's: a caller's future is resolved only from the child's answer,
which is sent after its COMMIT returned. If the child dies, every write it had not answered
fails with "may or may not be durable" (it may have committed before dying) and every later
write fails at once, so `/readyz` reports 503 until salesbot is restarted. If the server
dies, the child reads end of file, rolls back a group that was never sealed (none of its
callers was told anything) and exits. The child ignores SIGINT and SIGTERM: Ctrl-C in a
terminal reaches the whole process group, and the server, not the child, decides when
writing stops.

A request is a 4-byte little-endian length, a kind byte and its payload (a pickled job, or
nothing for a seal); an answer is a length and a pickle. Pickle is safe here because both
ends are this program: the socket pair is private to the two processes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import pickle
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TypeVar

import storage
from storage.errors import StorageError
from storage.sqlite_writer import Conn, Outcome, _settle

T = TypeVar("T")

FRAME = struct.Struct("<IB")
"""A request's header: its payload's length and what it is (`JOB`, `SEAL`, `OUTSIDE`)."""
ANSWER = struct.Struct("<I")
"""An answer's header: its pickle's length."""

JOB = 1
"""A pickled job: run it in the open transaction (opening one if none is)."""
SEAL = 2
"""No payload: commit the open transaction and answer its jobs."""
OUTSIDE = 3
"""A pickled job to run outside any transaction."""

OK = "ok"
FAIL = "fail"
DONE = "done"
"""A committed transaction's outcomes, one per job, in the order they were sent."""
LOST = "lost"
"""A transaction that failed as a whole (BEGIN, a savepoint or COMMIT, or SQLite rolled it
back): (its job count, the error); nothing of it is durable."""


class ProcessWriter:
    """The parent's side: streams pickled jobs to the child, seals each turn of the event
    loop's jobs into one transaction, and resolves the answers in order. Create with
    `await ProcessWriter.start(path, verify)`."""

    def __init__(
        self,
        path: Path,
        process: subprocess.Popen[bytes],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.path = path
        self._process = process
        self._reader = reader
        self._writer = writer
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """The child's first answer, unasked: the file is open, or why not."""
        self._waiting: collections.deque[asyncio.Future[Any]] = collections.deque([self._opened])
        self._stopped: str | None = None
        """Why no write can be made any more."""
        self._sealing = False
        """A seal is due at the end of this turn of the event loop."""
        self.transactions = 0
        """Transactions the child committed: metrics."""
        self._answers = asyncio.create_task(self._read_answers(), name=f"sqlite-child:{path}")

    @classmethod
    async def start(cls, path: Path, verify: bool) -> Self:
        """Spawn the child; return once it opened (checked, migrated) the file. Raises what
        opening raises in the thread (`CorruptDatabaseError`, `SchemaTooNewError`,
        `StorageError`)."""
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                # -P: not the working directory first on the path, which `-m` would put
                # there: the child imports the `storage` the server imported, even when
                # salesbot is started from a directory holding another `storage`.
                [sys.executable, "-P", "-m", "storage.sqlite_child"]
                + [str(theirs.fileno()), str(path)]
                + (["--verify"] if verify else []),
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=_child_environment(),
            )
        except OSError as exc:
            ours.close()
            raise StorageError(f"The writer process for {path} could not start: {exc}.") from exc
        finally:
            theirs.close()
        try:
            reader, writer = await asyncio.open_unix_connection(sock=ours)
        except BaseException:
            ours.close()
            process.kill()
            await asyncio.to_thread(process.wait)
            raise
        started = cls(path, process, reader, writer)
        try:
            await started._opened
        except BaseException:
            await started.close()
            raise
        return started

    def prepare(self, run: Callable[[Conn], Any]) -> bytes:
        """The job as it crosses: pickled now, in the caller's task, so a job that cannot
        cross fails its own caller before anything is queued."""
        return pickle.dumps(run, pickle.HIGHEST_PROTOCOL)

    async def submit(self, job: bytes) -> Outcome:
        """Send a prepared job now; its outcome once the transaction it joined committed.
        Raises when that transaction failed as a whole, or when the child died first."""
        future = self._send(JOB, job)
        if not self._sealing:
            self._sealing = True
            asyncio.get_running_loop().call_soon(self._seal)
        try:
            await self._writer.drain()
        except BaseException:
            future.cancel()  # its answer, when it comes, is for nobody
            raise
        outcome: Outcome = await future
        return outcome

    async def outside(self, run: Callable[[Conn], T]) -> T:
        if self._sealing:
            self._seal()  # the jobs sent before it commit first
        future = self._send(OUTSIDE, self.prepare(run))
        try:
            await self._writer.drain()
        except BaseException:
            future.cancel()
            raise
        result: T = await future
        return result

    def _send(self, kind: int, payload: bytes) -> asyncio.Future[Any]:
        if self._stopped is not None:
            raise StorageError(self._stopped)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        self._writer.write(FRAME.pack(len(payload), kind) + payload)
        return future

    def _seal(self) -> None:
        """Commit what was sent this turn: the child ignores a seal with nothing to seal."""
        self._sealing = False
        if self._stopped is None and not self._writer.is_closing():
            self._writer.write(FRAME.pack(0, SEAL))

    async def _read_answers(self) -> None:
        try:
            while True:
                (size,) = ANSWER.unpack(await self._reader.readexactly(ANSWER.size))
                kind, value = pickle.loads(await self._reader.readexactly(size))
                if kind == DONE:
                    self.transactions += 1
                    for outcome in value:
                        _settle(self._waiting.popleft(), outcome, None)
                elif kind == LOST:
                    count, error = value
                    for _ in range(count):
                        _settle(self._waiting.popleft(), None, error)
                elif kind == OK:
                    _settle(self._waiting.popleft(), value, None)
                else:
                    _settle(self._waiting.popleft(), None, value)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the child closed its end: it exited
        except asyncio.CancelledError:
            raise  # closing our end below ends the child
        except Exception as exc:  # an answer that does not read: out of step with the child
            self._stopped = (
                f"The writer process of {self.path} sent an answer that could not be read "
                f"({type(exc).__name__}) and was stopped; no write can be made until "
                "salesbot is restarted."
            )
            self._process.kill()
        finally:
            self._writer.close()  # end of file to a child still running
            await self._on_child_exit()

    async def _on_child_exit(self) -> None:
        code = await asyncio.to_thread(self._process.wait)
        how = f"exited (code {code})" if code >= 0 else f"was killed (signal {-code})"
        if self._stopped is None:
            self._stopped = (
                f"The writer process of {self.path} {how}; no write can be made until "
                "salesbot is restarted."
            )
        if not self._opened.done():
            self._opened.set_exception(
                StorageError(
                    f"The writer process for {self.path} {how} before it opened the file "
                    "(its error, if any, is in the log)."
                )
            )
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(
                    StorageError(
                        f"The writer process of {self.path} {how} during a write; the write "
                        "may or may not be durable."
                    )
                )

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def unanswered(self) -> int:
        """Requests sent to the child and not answered yet."""
        return len(self._waiting)

    @property
    def exit_code(self) -> int | None:
        """The child's exit code once it exited (negative: the signal that ended it)."""
        return self._process.returncode

    async def exited(self) -> None:
        """Return once the child has exited and every write waiting on it was failed."""
        await asyncio.wait([self._answers])

    async def close(self) -> None:
        """End of file to the child, which answers what it was sent, then exits."""
        if self._sealing:
            self._seal()
        if self._stopped is None:
            self._stopped = f"The store {self.path} is closed."
        if not self._writer.is_closing() and self._writer.can_write_eof():
            with contextlib.suppress(ConnectionError):
                self._writer.write_eof()
        await self.exited()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()


def _child_environment() -> dict[str, str]:
    """The server's environment, with this checkout importable: the child imports
    `storage` from where the server did, whatever its working directory."""
    root = str(Path(storage.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (root, env.get("PYTHONPATH"))))
    return env
