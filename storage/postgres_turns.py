"""Turns: which of several processes on one PostgreSQL database runs a periodic sweep now.

Every replica runs the same sweeps (timers, retention) on the same schedule. Each sweep is
safe to run twice — a timer's delivery id is tied to the conversation's version, an erasure
commits at an expected version — but two replicas sweeping the same due conversations at
once only waste work and collide on version checks. So a sweep first takes its kind's turn:
a session-level advisory lock (`pg_try_advisory_lock`), tried without waiting, held on one
pooled connection for the sweep and released after it. The replica that gets it sweeps;
the others skip that tick. A replica that dies while sweeping loses its session, and with
it the lock: the next tick of another replica sweeps.

Why an advisory lock and not a row: it needs no schema change, it cannot outlive its
process (no lease to expire, no clock to trust), and it is never waited for. Advisory locks
are per database, and the tests (like an operator hosting two installations in one
database) give each store its own schema: the key is a hash of the schema's name and the
sweep's kind, so stores in different schemas never take each other's turns.

Releasing: `pg_advisory_unlock` after the sweep; should that fail, the connection is closed
(and its session with it) instead of going back to the pool, so a turn is never left held
by an idle pooled connection. (The pool does not reset the connections it takes back:
`storage.postgres_pool._nothing_left_to_reset`.)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from storage.postgres_pool import Conn, PostgresConnections, wrap

TURN_NAMESPACE = 0x5A1E5B07
"""The first key of every salesbot advisory lock (its second: the schema and the kind)."""

_KEY = "('x' || substr(md5(current_schema() || ':' || $1::text), 1, 8))::bit(32)::int"
"""A stable 32-bit key from the schema and the turn's kind (md5: the same on every server
version, unlike `hashtext`)."""


class PostgresTurns(PostgresConnections):
    """`bot.lanes.SharedStore` on PostgreSQL."""

    @contextlib.asynccontextmanager
    async def turn(self, kind: str) -> AsyncIterator[bool]:
        """Yields True while this process holds `kind`'s turn (no other process on this
        database and schema holds it until the block ends), False when another one holds
        it now. Never waits for it."""
        self._check_open()
        try:
            conn = await self._pool.acquire()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise wrap(exc, self.where) from exc
        try:
            try:
                held = bool(
                    await conn.fetchval(
                        f"SELECT pg_try_advisory_lock({TURN_NAMESPACE}, {_KEY})", kind
                    )
                )
            except BaseException as exc:
                conn.terminate()  # cancelled or cut off, the lock may have been taken
                if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError | OSError):
                    raise wrap(exc, self.where) from exc
                raise
            try:
                yield held
            finally:
                if held:
                    released = False
                    try:
                        released = await _unlocked(conn, kind)
                    finally:  # not released, or cancelled while releasing:
                        if not released:
                            conn.terminate()  # its session, and the lock, end here
        finally:
            await self._pool.release(conn)


async def _unlocked(conn: Conn, kind: str) -> bool:
    """Release `kind`'s turn; False when that could not be confirmed."""
    try:
        released = await conn.fetchval(f"SELECT pg_advisory_unlock({TURN_NAMESPACE}, {_KEY})", kind)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    return bool(released)
