"""The writer process's own side (`storage.sqlite_process` says why there is one):
`python -m storage.sqlite_child FD PATH [--verify]`.

It opens the file as the writer thread would (`_open_writer`: checked, migrated, FULL sync)
and answers that first; then, for each frame the server sends, it runs the batch in one
transaction (`_transact`) and answers with each job's outcome, until end of file. SQLite's
errors are turned into the store's here, where their error names are still known.
"""

from __future__ import annotations

import pickle
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from storage.errors import StorageError
from storage.sqlite_process import BATCH, FAIL, FRAME, OK, OUTSIDE
from storage.sqlite_writer import Conn, Outcome, _open_writer, _transact, _wrap


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
        try:
            _send(channel, (OK, None))
            _serve(channel, conn, path)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server is gone: nothing is waiting for an answer
        finally:
            conn.close()
    return 0


def _serve(channel: socket.socket, conn: Conn, path: Path) -> None:
    while (frame := _receive(channel)) is not None:
        kind, payload = pickle.loads(frame)
        answer: tuple[str, object]
        try:
            if kind == BATCH:
                outcomes = _transact(conn, [_job(data) for data in payload])
                answer = (OK, [(result, _error(error, path)) for result, error in outcomes])
            elif kind == OUTSIDE:
                answer = (OK, _job(payload)(conn))
            else:
                raise ValueError(f"unknown request {kind!r}")
        except Exception as exc:
            # BEGIN, a savepoint or the COMMIT failed: nothing of the batch is durable.
            answer = (FAIL, _error(exc, path))
        try:
            data = pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # a job's answer that does not pickle (none of ours)
            data = pickle.dumps(
                _without_unpicklable(kind, answer, exc, path), pickle.HIGHEST_PROTOCOL
            )
        _send_bytes(channel, data)


def _job(data: bytes) -> Any:
    try:
        return pickle.loads(data)
    except Exception as exc:
        return _Raise(
            StorageError(f"A write job could not be read by the writer process: {exc!r}.")
        )


class _Raise:
    """A job that only fails: one that did not unpickle fails alone, in its savepoint."""

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


def _without_unpicklable(
    kind: str, answer: tuple[str, object], exc: Exception, path: Path
) -> tuple[str, object]:
    """`answer` with each result that does not pickle replaced by an error saying so: in a
    batch, that job's alone (the rest committed and answer as they are)."""
    if kind != BATCH or answer[0] != OK:
        return (FAIL, _unpicklable(exc, path))
    outcomes: list[Outcome] = []
    for result, error in cast(list[Outcome], answer[1]):
        try:
            pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
        except Exception as problem:
            outcomes.append((None, _unpicklable(problem, path)))
        else:
            outcomes.append((result, error))
    return (OK, outcomes)


def _unpicklable(exc: Exception, path: Path) -> StorageError:
    return StorageError(
        f"The writer process of {path} made the write but cannot return its answer: {exc!r}."
    )


def _receive(channel: socket.socket) -> bytes | None:
    header = _exactly(channel, FRAME.size)
    if header is None:
        return None
    (size,) = FRAME.unpack(header)
    body = _exactly(channel, size)
    if body is None:
        raise ConnectionResetError("the server closed the channel inside a frame")
    return body


def _exactly(channel: socket.socket, size: int) -> bytes | None:
    parts: list[bytes] = []
    while size:
        chunk = channel.recv(min(size, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        size -= len(chunk)
    return b"".join(parts)


def _send(channel: socket.socket, answer: tuple[str, object]) -> None:
    _send_bytes(channel, pickle.dumps(answer, pickle.HIGHEST_PROTOCOL))


def _send_bytes(channel: socket.socket, data: bytes) -> None:
    channel.sendall(FRAME.pack(len(data)) + data)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
