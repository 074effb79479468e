"""The SQLite writer in a process of its own (`SALESBOT_SQLITE_WRITER=process`, `serve`'s
default): the write connection, its transactions and their fsyncs run in a child process,
and the server's process keeps the event loop, the reads and everything else.

Why. The writer thread's work is mostly Python — sealing, the hash chain, the projections,
the outbox's bookkeeping — and it holds the GIL while the event loop waits for it. Measured
on two cores (docs/benchmarks.md, issue 18), moving it to a child took a Teams saturation
from 0.75× to 0.99× the Agents SDK echo bot; the SQL and the fsyncs are a tenth of it.

How. The child is `python -m storage.sqlite_child`, spawned (never forked: the server has
threads) with one end of a socket pair. Every job is pickled by its caller before it is
queued — the store's jobs are plain data (`storage.sqlite._CommitJob`, `functools.partial`s of
module functions), so a job that would not cross fails its own caller and nothing else.
A batch crosses as one frame; the child runs it in one transaction (`_transact`, the same
function the thread runs) and answers with each job's result or error, pickled. Up to
`IN_FLIGHT` batches are on their way at once: the parent builds and pickles the next one
while the child commits the last, and the child answers them in order.

Durability is the thread's: a caller's future is resolved only from the child's answer,
which is sent after its COMMIT returned. If the child dies, every batch it had not answered
fails with "may or may not be durable" (it may have committed before dying) and every later
write fails at once, so `/readyz` reports 503 until salesbot is restarted. If the server
dies, the child reads end of file, finishes nothing new and exits. The child ignores SIGINT
and SIGTERM: Ctrl-C in a terminal reaches the whole process group, and the server, not the
child, decides when writing stops.

The frames are a 4-byte little-endian length and a pickle. Pickle is safe here because both
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
from storage.sqlite_writer import Conn, Outcome

T = TypeVar("T")

IN_FLIGHT = 2
"""Batches sent and not yet answered: two keep the child busy while the parent builds the
next one (measured: one in flight gained 0.75× → 0.90× the SDK, two 0.99×)."""

FRAME = struct.Struct("<I")

BATCH = "batch"
OUTSIDE = "outside"
OK = "ok"
FAIL = "fail"


class ProcessWriter:
    """The parent's side: sends pickled batches to the child and resolves their answers in
    order. Create with `await ProcessWriter.start(path, verify)`."""

    in_flight = IN_FLIGHT

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
        self._answers = asyncio.create_task(self._read_answers(), name=f"sqlite-child:{path}")

    @classmethod
    async def start(cls, path: Path, verify: bool) -> Self:
        """Spawn the child; return once it opened (checked, migrated) the file. Raises what
        opening raises in the thread (`CorruptDatabaseError`, `SchemaTooNewError`,
        `StorageError`)."""
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "storage.sqlite_child", str(theirs.fileno()), str(path)]
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

    async def transact(self, jobs: list[Any]) -> list[Outcome]:
        outcomes: list[Outcome] = await self._ask((BATCH, jobs))
        return outcomes

    async def outside(self, run: Callable[[Conn], T]) -> T:
        result: T = await self._ask((OUTSIDE, self.prepare(run)))
        return result

    async def _ask(self, request: tuple[str, object]) -> Any:
        if self._stopped is not None:
            raise StorageError(self._stopped)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        payload = pickle.dumps(request, pickle.HIGHEST_PROTOCOL)
        self._waiting.append(future)
        self._writer.write(FRAME.pack(len(payload)) + payload)
        await self._writer.drain()
        return await future

    async def _read_answers(self) -> None:
        try:
            while True:
                (size,) = FRAME.unpack(await self._reader.readexactly(FRAME.size))
                kind, value = pickle.loads(await self._reader.readexactly(size))
                future = self._waiting.popleft()
                if future.done():  # its batch was cancelled at shutdown
                    continue
                if kind == OK:
                    future.set_result(value)
                else:
                    future.set_exception(value)
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
