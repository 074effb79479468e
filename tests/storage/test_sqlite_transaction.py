"""One write transaction's jobs (`storage.sqlite_writer.Transaction`), on a plain SQLite
connection: jobs run without a savepoint each, a job that fails having written nothing is
answered with its error and costs nothing more, and one that fails after writing is undone
alone — the transaction is rolled back and the jobs before it run again — so what commits
is what one savepoint per job committed."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest

from storage.sqlite_writer import Conn, Transaction, _transact


@pytest.fixture
def conn() -> Iterator[Conn]:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE notes (key TEXT PRIMARY KEY)")
    yield conn
    conn.close()


class Job:
    """A job that notes `key` (optionally failing after it), counting its runs."""

    def __init__(self, key: str, *, fail_after: bool = False) -> None:
        self.key = key
        self.fail_after = fail_after
        self.runs = 0

    def __call__(self, conn: Conn) -> str:
        self.runs += 1
        conn.execute("INSERT INTO notes (key) VALUES (?)", (self.key,))
        if self.fail_after:
            raise ValueError(f"{self.key} failed after writing")
        return self.key


class Refused:
    """A job that fails before it writes anything (as a stale commit does)."""

    runs = 0

    def __call__(self, conn: Conn) -> None:
        self.runs += 1
        raise LookupError("refused before writing")


def notes(conn: Conn) -> list[str]:
    return [key for (key,) in conn.execute("SELECT key FROM notes ORDER BY key")]


def errors(outcomes: list[tuple[Any, BaseException | None]]) -> list[str | None]:
    return [None if error is None else type(error).__name__ for _, error in outcomes]


def test_jobs_that_fail_before_writing_are_answered_and_nothing_runs_again(conn: Conn) -> None:
    a, refused, b = Job("a"), Refused(), Job("b")
    duplicate = Job("a")  # its one INSERT fails: SQLite undoes that statement itself
    outcomes = _transact(conn, [a, refused, duplicate, b])
    assert [result for result, _ in outcomes] == ["a", None, None, "b"]
    assert errors(outcomes) == [None, "LookupError", "IntegrityError", None]
    assert notes(conn) == ["a", "b"]
    assert (a.runs, refused.runs, duplicate.runs, b.runs) == (1, 1, 1, 1)
    assert not conn.in_transaction  # committed


def test_a_job_that_fails_after_writing_is_undone_alone(conn: Conn) -> None:
    a, b = Job("a"), Job("b")
    half = Job("half", fail_after=True)
    c = Job("c")
    outcomes = _transact(conn, [a, b, half, c])
    assert [result for result, _ in outcomes] == ["a", "b", None, "c"]
    assert errors(outcomes) == [None, None, "ValueError", None]
    assert notes(conn) == ["a", "b", "c"]  # "half" wrote, and is gone
    # Only a rollback undid it: the jobs before it ran again, the failed one did not.
    assert (a.runs, b.runs, half.runs, c.runs) == (2, 2, 1, 1)


def test_after_one_job_was_undone_every_later_failure_is_undone_alone_too(conn: Conn) -> None:
    first, second = Job("first", fail_after=True), Job("second", fail_after=True)
    a, b = Job("a"), Job("b")
    outcomes = _transact(conn, [first, a, second, b])
    assert errors(outcomes) == ["ValueError", None, "ValueError", None]
    assert notes(conn) == ["a", "b"]
    assert (first.runs, a.runs, second.runs, b.runs) == (1, 1, 1, 1)  # savepoints by then


def test_a_job_run_again_is_made_again(conn: Conn) -> None:
    made: list[str] = []

    def make(key: str) -> Callable[[Conn], str]:
        made.append(key)  # as the writer process reads a job from its bytes again
        return Job(key)

    transaction = Transaction(conn)
    transaction.begin()
    for key in ("a", "b"):
        transaction.run(partial(make, key))
    transaction.run(lambda: Job("half", fail_after=True))
    transaction.commit()
    assert made == ["a", "b", "a", "b"]
    assert notes(conn) == ["a", "b"]


def test_when_sqlite_rolled_the_whole_transaction_back_the_transaction_fails(
    conn: Conn,
) -> None:
    def rolled_back(conn: Conn) -> None:
        conn.execute("INSERT INTO notes (key) VALUES ('lost')")
        conn.execute("ROLLBACK")  # what SQLite does itself on a full disk or an I/O error
        raise sqlite3.OperationalError("database or disk is full")

    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        _transact(conn, [Job("a"), rolled_back, Job("b")])
    assert notes(conn) == []  # nothing of it is durable, "a" included
    assert not conn.in_transaction
