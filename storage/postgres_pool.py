"""The connections under `PostgresStore`: an asyncpg pool, opening and migrating the
database, one transaction per write, per-conversation lanes, and PostgreSQL's errors
turned into ours.

Why asyncpg (pinned in pyproject.toml and constraints.txt): the fastest maintained asyncio
driver for PostgreSQL, with prepared statements cached per connection and `executemany` in
one round trip; the store needs nothing from an ORM.

One write, one transaction (`_transaction`), on a pooled connection at READ COMMITTED —
except commits with events, which a process groups across conversations into one
transaction (`storage.postgres_group`). PostgreSQL takes concurrent writers itself, and
the rules that SQLite gets from its one writer are carried by the SQL instead — the
expected-version check is an `UPDATE … WHERE version = $expected` (or an insert of the
stream's first row) that waits for a concurrent writer of the same stream and then finds
the version moved; dedupe is the deliveries table's primary key; outbox claims lock rows
with `FOR UPDATE SKIP LOCKED`.
Those hold across processes (replicas), which SQLite's writer does not need.

Lanes. Within one process, the commits of one conversation are started in the order they
were asked for (`_lane`, a FIFO lock per conversation): a caller that queues a
conversation's second commit behind its first (as SQLite's writer queue orders them) gets
the same answer here, instead of racing the first on another pooled connection and losing
the version check. Across processes the version check decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Self, TypeVar

import asyncpg
import asyncpg.pool

from storage.errors import StorageError
from storage.postgres_schema import migrate

T = TypeVar("T")

Row = asyncpg.Record
if TYPE_CHECKING:  # generic in asyncpg-stubs only
    Conn = asyncpg.pool.PoolConnectionProxy[Row]
else:
    Conn = asyncpg.pool.PoolConnectionProxy

POOL_MIN = 1
POOL_MAX = 10
CONNECT_TIMEOUT_S = 10.0

_PASSWORD = re.compile(r"(://[^:/@?#]*):[^@/?#]*@")


def redacted(dsn: str) -> str:
    """The DSN as errors may show it: without its password (`user:***@host`), and without
    parsing it, so even an address that does not parse is shown as it was given."""
    return _PASSWORD.sub(r"\1:***@", dsn.strip())


class PostgresConnections:
    """The pool of one PostgreSQL database. The store's parts (`PostgresStore`, its outbox
    and tickets) write through `_transaction` and read through `_fetch`."""

    def __init__(self, dsn: str, pool: asyncpg.Pool[Row]) -> None:
        """Use `open`: this only wires together a pool that is ready."""
        self.dsn = dsn
        self.where = redacted(dsn)
        self._pool = pool
        self._closing = False
        self._lanes: dict[str, tuple[asyncio.Lock, int]] = {}

    @classmethod
    async def open(cls, dsn: str) -> Self:
        """Connect to the database at `dsn` (a `postgresql://` URL) and migrate it.

        Raises `SchemaTooNewError` for a database from a newer salesbot,
        `CorruptDatabaseError` for one holding another application's tables, and
        `StorageError` (one sentence) when the server cannot be reached or refuses us.
        """
        where = redacted(dsn)
        try:
            conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
        except Exception as exc:
            raise wrap(exc, where) from None
        try:
            await migrate(conn, where)
        except StorageError:
            raise
        except Exception as exc:
            raise wrap(exc, where) from None
        finally:
            await conn.close()
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=POOL_MIN,
                max_size=POOL_MAX,
                timeout=CONNECT_TIMEOUT_S,
                reset=_nothing_left_to_reset,
            )
        except Exception as exc:
            raise wrap(exc, where) from None
        return cls(dsn, pool)

    def _check_open(self) -> None:
        if self._closing:
            raise StorageError(f"The store {self.where} is closed.")

    async def _transaction(self, run: Callable[[Conn], Awaitable[T]]) -> T:
        """Run `run` in one transaction on a pooled connection; commit when it returns,
        roll back when it raises."""
        self._check_open()
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                return await run(conn)
        except StorageError:
            raise
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise wrap(exc, self.where) from exc

    async def _fetch(self, sql: str, *args: object) -> list[Row]:
        self._check_open()
        try:
            return list(await self._pool.fetch(sql, *args))
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise wrap(exc, self.where) from exc

    @contextlib.asynccontextmanager
    async def _lane(self, conversation_id: str) -> AsyncIterator[None]:
        """This process's writes of one conversation, one at a time, in the order asked."""
        lock, users = self._lanes.get(conversation_id, (asyncio.Lock(), 0))
        self._lanes[conversation_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._lanes[conversation_id]
            if users == 1:
                del self._lanes[conversation_id]
            else:
                self._lanes[conversation_id] = (lock, users - 1)

    async def close(self) -> None:
        """Let the writes under way finish, then close every connection. Idempotent."""
        if self._closing:
            return
        self._closing = True
        try:
            await self._pool.close()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            self._pool.terminate()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def _nothing_left_to_reset(conn: asyncpg.Connection[Row]) -> None:
    """The pool's reset of a connection it takes back, after asyncpg's own (which rolls
    back a transaction left open and drops listeners): nothing more. asyncpg's default
    sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` at every release,
    a round trip a commit (docs/benchmarks_postgres.md); no connection of
    this store leaves session state to undo: it sets nothing, listens to nothing, opens
    cursors only inside transactions, and the one session-level lock it takes (a turn,
    `storage.postgres_turns`) is released by its holder or its connection closed."""


async def execute_many(conn: Conn, sql: str, rows: Sequence[Sequence[object]]) -> None:
    if rows:
        await conn.executemany(sql, rows)


def affected(status: str) -> int:
    """The row count of a command status ("UPDATE 3", "INSERT 0 1", "DELETE 0")."""
    return int(status.rsplit(" ", 1)[-1])


def wrap(exc: BaseException, where: str) -> StorageError:
    """PostgreSQL's or the network's error as one sentence naming the database."""
    if isinstance(exc, StorageError):
        return exc
    said = _clause(str(exc))
    if isinstance(
        exc, asyncpg.InvalidCatalogNameError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return StorageError(f"PostgreSQL refused {where}: {said}.")
    if isinstance(exc, asyncpg.PostgresError):
        return StorageError(f"The database {where} reported an error: {said}.")
    if isinstance(exc, OSError | asyncio.TimeoutError):
        detail = getattr(exc, "strerror", None) or said or type(exc).__name__
        return StorageError(f"Cannot reach the PostgreSQL server of {where}: {_clause(detail)}.")
    if isinstance(exc, ValueError | asyncpg.InterfaceError | asyncpg.ClientConfigurationError):
        return StorageError(f"{where} is not a usable PostgreSQL address: {said}.")
    return StorageError(f"The database {where} failed: {type(exc).__name__}: {said}.")


def _clause(text: str) -> str:
    """A message placed inside our sentence: without its own final full stop (no "..")."""
    return text.strip().rstrip(".")
