"""The writer process's requests, spoken to it directly (`storage.sqlite_child`): jobs are
answered together once their seal committed them, a failing job is undone alone (also one
that had written), two groups already waiting share one COMMIT, and a group the server
never sealed is rolled back."""

from __future__ import annotations

import pickle
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from storage.sqlite_process import ANSWER, DONE, FRAME, JOB, OK, OUTSIDE, SEAL, _child_environment
from storage.sqlite_writer import Conn

DEADLINE_S = 60.0
"""Only a bound on a wait that ends by itself: no outcome depends on it."""


def _note(conn: Conn, key: str) -> str:
    """A job: one row of adapter state (any table would do)."""
    conn.execute(
        "INSERT INTO adapter_state (key, value, updated_at_ms, schema_version, generator) "
        "VALUES (?, '{}', 1, 1, 'test')",
        (key,),
    )
    return key


def _note_then_fail(conn: Conn, key: str) -> None:
    """A job that writes, then fails: only a rollback can undo it."""
    _note(conn, key)
    raise ValueError(f"{key} failed after writing")


def _count(conn: Conn) -> int:
    (rows,) = conn.execute("SELECT COUNT(*) FROM adapter_state").fetchone()
    return int(rows)


@dataclass
class Child:
    process: subprocess.Popen[bytes]
    channel: socket.socket
    path: Path

    def send(self, *frames: tuple[int, bytes]) -> None:
        """All `frames` in one write: the child finds them waiting together."""
        self.channel.sendall(
            b"".join(FRAME.pack(len(payload), kind) + payload for kind, payload in frames)
        )

    def answer(self) -> tuple[str, Any]:
        (size,) = ANSWER.unpack(self._exactly(ANSWER.size))
        kind, value = pickle.loads(self._exactly(size))
        return kind, value

    def _exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.channel.recv(size - len(data))
            assert chunk, "the writer process closed its end"
            data += chunk
        return data

    def rows(self) -> int:
        """Committed rows, read as another connection sees them."""
        with sqlite3.connect(self.path) as conn:
            return _count(conn)


def job(key: str) -> tuple[int, bytes]:
    return JOB, pickle.dumps(partial(_note, key=key))


SEALED = (SEAL, b"")
COUNT = (OUTSIDE, pickle.dumps(_count))


@pytest.fixture
def child(tmp_path: Path) -> Iterator[Child]:
    ours, theirs = socket.socketpair()
    ours.settimeout(DEADLINE_S)
    path = tmp_path / "salesbot.db"
    process = subprocess.Popen(
        [sys.executable, "-P", "-m", "storage.sqlite_child", str(theirs.fileno()), str(path)],
        pass_fds=(theirs.fileno(),),
        stdin=subprocess.DEVNULL,
        env=_child_environment(),
    )
    theirs.close()
    opened = Child(process, ours, path)
    try:
        assert opened.answer() == (OK, None)  # the file is open and migrated
        yield opened
    finally:
        ours.close()
        process.wait(DEADLINE_S)


def test_a_request_outside_any_transaction_commits_what_is_open_first(child: Child) -> None:
    child.send(job("a"), job("b"), COUNT)  # the server seals first; the child does not rely on it
    assert child.answer() == (DONE, [("a", None), ("b", None)])
    assert child.answer() == (OK, 2)


def test_a_group_sealed_while_another_seal_waits_shares_its_commit(child: Child) -> None:
    child.send(job("a"), SEALED, job("b"), SEALED, COUNT)
    assert child.answer() == (DONE, [("a", None), ("b", None)])  # one transaction
    assert child.answer() == (OK, 2)


def test_a_job_that_fails_is_undone_alone_and_answered_in_its_place(child: Child) -> None:
    child.send(job("a"), job("a"), job("b"), SEALED, COUNT)
    kind, outcomes = child.answer()
    assert kind == DONE
    assert [result for result, _ in outcomes] == ["a", None, "b"]
    assert "UNIQUE constraint failed" in str(outcomes[1][1])
    assert child.answer() == (OK, 2)


def test_a_job_that_fails_after_writing_is_undone_alone(child: Child) -> None:
    broken = (JOB, pickle.dumps(partial(_note_then_fail, key="half")))
    child.send(job("a"), broken, job("b"), SEALED, COUNT)
    kind, outcomes = child.answer()
    assert kind == DONE
    assert [result for result, _ in outcomes] == ["a", None, "b"]
    assert "half failed after writing" in str(outcomes[1][1])
    assert child.answer() == (OK, 2)  # "a" and "b"; what "half" wrote is gone


def test_a_group_the_server_never_sealed_is_neither_committed_nor_answered(child: Child) -> None:
    child.send(job("a"), SEALED)
    assert child.answer() == (DONE, [("a", None)])
    child.send(job("b"), job("c"))  # the server dies before the end of its turn
    child.channel.shutdown(socket.SHUT_WR)
    assert child.channel.recv(1) == b""  # the child exited without answering them
    assert child.process.wait(DEADLINE_S) == 0
    assert child.rows() == 1
