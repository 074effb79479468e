"""The writer process's own side (`storage.sqlite_process` says why there is one):
`python -m storage.sqlite_child FD PATH [--verify]`.

It opens the file as the writer thread would (`_open_writer`: checked, migrated, FULL sync)
and answers that first. Then it runs each job as it arrives, in the open transaction (one
is begun for the first job after a commit; a job that fails is undone alone,
`storage.sqlite_writer.Transaction`), and at each seal commits and answers every job of
the transaction, until end of file. A seal followed by another seal already waiting in the
socket does not commit yet: the child was busy, and both groups share the next fsync.
SQLite's errors are turned into the store's here, where their error names are still known.
"""

from __future__ import annotations

import contextlib
import pickle
import signal
import socket
import sqlite3
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, cast

from storage.errors import StorageError
from storage.sqlite_checkpoints import Checkpointer
from storage.sqlite_process import ANSWER, DONE, FAIL, FRAME, JOB, LOST, OK, OUTSIDE, SEAL
from storage.sqlite_writer import Conn, Outcome, Transaction, _open_writer, _wrap

MERGED_JOBS = 512
"""A transaction takes in a later group only while it holds fewer jobs than this."""


def main(argv: Sequence[str]) -> int:
    # The server decides when writing stops: it closes its end, and this reads end of file.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fd, path = int(argv[0]), Path(argv[1])
    with socket.socket(fileno=fd) as channel:
        try:
            conn = _open_writer(path, "--verify" in argv[2:])
        except Exception as exc:
            _send(channel, (FAIL, _error(exc, path)))
            return 1
        checkpointer = Checkpointer.start(path, conn)
        try:
            _send(channel, (OK, None))
            _serve(channel, conn, path, checkpointer)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server is gone: nothing is waiting for an answer
        finally:
            if checkpointer is not None:
                checkpointer.close()
            conn.close()
    return 0


def _serve(
    channel: socket.socket, conn: Conn, path: Path, checkpointer: Checkpointer | None
) -> None:
    inbox = _Inbox(channel)
    held = checkpointer.held if checkpointer is not None else contextlib.nullcontext

    def commit(transaction: _Transaction) -> None:
        _send_bytes(channel, transaction.finish())
        if checkpointer is not None:
            checkpointer.committed()

    open_: _Transaction | None = None
    while (request := inbox.next()) is not None:
        kind, payload = request
        if kind == JOB:
            if open_ is None:
                open_ = _Transaction(conn, path)
            open_.run(payload)
        elif kind == SEAL:
            if open_ is None or (len(open_) < MERGED_JOBS and inbox.sealed_later()):
                continue
            commit(open_)
            open_ = None
        elif kind == OUTSIDE:
            if open_ is not None:  # the server seals first; should it not, commit first
                commit(open_)
                open_ = None
            try:
                with held():  # the job may checkpoint itself
                    answer: tuple[str, object] = (OK, _job(payload)(conn))
            except Exception as exc:
                answer = (FAIL, _error(exc, path))
            _send_bytes(channel, _pickled(answer, path))
        else:
            raise ConnectionResetError(f"the server sent an unknown request ({kind})")
    if open_ is not None:  # end of file before the seal: the server is gone
        open_.abandon()


class _Transaction:
    """The open transaction: jobs run as they arrive (`storage.sqlite_writer.Transaction`:
    a job that fails is undone alone); `finish` commits and gives the answer. After BEGIN
    or the transaction itself fails, the rest of the group is only counted: the whole
    transaction is lost."""

    def __init__(self, conn: Conn, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.count = 0
        self.failure: Exception | None = None
        self.transaction = Transaction(conn)
        try:
            self.transaction.begin()
        except Exception as exc:
            self.failure = exc

    def __len__(self) -> int:
        return self.count

    def run(self, payload: bytes) -> None:
        self.count += 1
        if self.failure is not None:
            return
        try:
            # Read from its bytes each time: a job run again starts from what was sent.
            self.transaction.run(partial(_job, payload))
        except Exception as exc:  # the transaction itself failed: it is lost
            self.failure = exc
            self.abandon()

    def finish(self) -> bytes:
        """COMMIT, then every job's outcome in order; or, if the transaction failed, the
        error for all of its jobs."""
        if self.failure is None:
            try:
                self.transaction.commit()
            except Exception as exc:
                self.failure = exc
                self.abandon()
        if self.failure is not None:
            return _pickled((LOST, (self.count, _lost(self.failure, self.path))), self.path)
        outcomes = self.transaction.outcomes
        errors = [(result, _error(error, self.path)) for result, error in outcomes]
        return _pickled((DONE, errors), self.path)

    def abandon(self) -> None:
        if self.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")


class _Inbox:
    """The requests from the server, read as they come: `next` waits for one;
    `sealed_later` looks, without waiting, whether a seal is already in the socket before
    anything that is not a job."""

    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel
        self.buffer = bytearray()
        self.at = 0
        self.ended = False

    def next(self) -> tuple[int, bytes] | None:
        """The next request, waiting for it; None at end of file."""
        while (frame := self._frame(self.at)) is None:
            if not self._fill(wait=True):
                if len(self.buffer) > self.at:
                    raise ConnectionResetError("the server closed the channel inside a frame")
                return None
        size, kind = frame
        start = self.at + FRAME.size
        with memoryview(self.buffer) as view:  # one copy, and the buffer free to grow again
            payload = bytes(view[start : start + size])
        self.at = start + size
        if self.at > 1 << 20:  # drop what was read, now and then rather than each time
            del self.buffer[: self.at]
            self.at = 0
        return kind, payload

    def sealed_later(self) -> bool:
        self._fill(wait=False)
        at = self.at
        while (frame := self._frame(at)) is not None:
            size, kind = frame
            if kind == SEAL:
                return True
            if kind != JOB:
                return False
            at += FRAME.size + size
        return False

    def _frame(self, at: int) -> tuple[int, int] | None:
        """(payload size, kind) of the whole frame at `at`; None if it is not all here."""
        if len(self.buffer) - at < FRAME.size:
            return None
        size, kind = FRAME.unpack_from(self.buffer, at)
        return (size, kind) if len(self.buffer) - at - FRAME.size >= size else None

    def _fill(self, *, wait: bool) -> bool:
        """Read what there is (waiting for something when `wait`); False at end of file."""
        if self.ended:
            return False
        try:
            chunk = self.channel.recv(1 << 20, 0 if wait else socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True
        if not chunk:
            self.ended = True
            return False
        self.buffer += chunk
        return True


def _job(data: bytes) -> Any:
    try:
        return pickle.loads(data)
    except Exception as exc:
        return _Raise(
            StorageError(f"A write job could not be read by the writer process: {exc!r}.")
        )


class _Raise:
    """A job that only fails: one that did not unpickle fails alone."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __call__(self, conn: Conn) -> None:
        raise self.error


def _error(error: BaseException | None, path: Path) -> BaseException | None:
    """An error as it can cross: SQLite's made the store's, and one that does not come back
    from a pickle round trip replaced by an error saying what it was. Errors are rare: only
    they are tried, not every answer."""
    if error is None:
        return None
    error = _wrap(error, path)
    try:
        pickle.loads(pickle.dumps(error, pickle.HIGHEST_PROTOCOL))
    except Exception as exc:
        return StorageError(f"The writer process of {path} failed: {error!r} ({exc!r}).")
    return error


def _lost(error: Exception, path: Path) -> BaseException | None:
    """The error a whole transaction's jobs fail with: the store's, as the thread's."""
    crossing = _error(error, path)
    if isinstance(crossing, StorageError):
        return crossing
    return StorageError(f"Writing to {path} failed: {error}")


def _pickled(answer: tuple[str, object], path: Path) -> bytes:
    """The answer as it crosses; a result that does not pickle (none of ours) becomes an
    error for its own job alone: the rest of the transaction committed and answers as it
    is. Only when the whole answer fails is each result tried."""
    try:
        return pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        return pickle.dumps(_without_unpicklable(answer, exc, path), pickle.HIGHEST_PROTOCOL)


def _without_unpicklable(
    answer: tuple[str, object], exc: Exception, path: Path
) -> tuple[str, object]:
    """`answer` with each result that does not pickle replaced by an error saying so."""
    if answer[0] != DONE:
        return (FAIL, _unpicklable(exc, path))
    outcomes: list[Outcome] = []
    for result, error in cast(list[Outcome], answer[1]):
        try:
            pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
        except Exception as problem:
            outcomes.append((None, _unpicklable(problem, path)))
        else:
            outcomes.append((result, error))
    return (DONE, outcomes)


def _unpicklable(exc: Exception, path: Path) -> StorageError:
    return StorageError(
        f"The writer process of {path} made the write but cannot return its answer: {exc!r}."
    )


def _send(channel: socket.socket, answer: tuple[str, object]) -> None:
    _send_bytes(channel, pickle.dumps(answer, pickle.HIGHEST_PROTOCOL))


def _send_bytes(channel: socket.socket, data: bytes) -> None:
    channel.sendall(ANSWER.pack(len(data)) + data)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
