"""The tickets of `SqliteStore` (`storage.ports.TicketStore`): one row per handoff or
approval ticket, claimed once."""

from __future__ import annotations

from functools import partial

from domain import GENERATOR
from storage._rules import (
    ClaimTicket,
    OpenTicket,
    ReopenTicket,
    ResolveTicket,
    TicketChange,
)
from storage.ports import (
    TICKET_SCHEMA_VERSION,
    ClaimOutcome,
    TicketRow,
)
from storage.sql_rows import TICKET_COLUMNS as _TICKET_COLUMNS
from storage.sql_rows import ticket_row as _ticket_row
from storage.sqlite_writer import Conn, SqliteConnections, _one


class SqliteTickets(SqliteConnections):
    """`storage.ports.TicketStore` on the SQLite file."""

    async def open_ticket(self, row: TicketRow) -> bool:
        return await self._write(partial(_insert_ticket, row=row))

    async def claim_ticket(self, key: str, by: str, at_ms: int) -> ClaimOutcome:
        return await self._write(partial(_claim_ticket, key=key, by=by, at_ms=at_ms))

    async def resolve_ticket(self, key: str, by: str, at_ms: int) -> bool:
        return await self._write(partial(_resolve_ticket, key=key, by=by, at_ms=at_ms))

    async def ticket(self, key: str) -> TicketRow | None:
        rows = await self._fetch(f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE key = ?", (key,))
        return _ticket_row(rows[0]) if rows else None

    async def open_tickets(self) -> list[TicketRow]:
        rows = await self._fetch(
            f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE status != 'resolved' "
            "ORDER BY opened_at_ms, rowid"
        )
        return [_ticket_row(row) for row in rows]


def _claim_ticket(conn: Conn, *, key: str, by: str, at_ms: int) -> ClaimOutcome:
    row = _one(conn, "SELECT status, claimed_by, resolved_by FROM tickets WHERE key = ?", (key,))
    if row is None:
        return ClaimOutcome(claimed=False, holder=None)
    status, claimed_by, resolved_by = row
    if status == "open":
        _apply_ticket_change(conn, ClaimTicket(key, by, at_ms))
        return ClaimOutcome(claimed=True, holder=by)
    if status == "claimed":
        return ClaimOutcome(claimed=claimed_by == by, holder=claimed_by)
    return ClaimOutcome(claimed=False, holder=resolved_by)


def _resolve_ticket(conn: Conn, *, key: str, by: str, at_ms: int) -> bool:
    return _apply_ticket_change(conn, ResolveTicket(key, by, at_ms))


def _insert_ticket(conn: Conn, row: TicketRow) -> bool:
    cursor = conn.execute(
        f"INSERT INTO tickets ({_TICKET_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (key) DO NOTHING",
        (
            row.key,
            row.conversation_id,
            row.kind,
            row.reason,
            row.status,
            row.claimed_by,
            row.resolved_by,
            row.quote_id,
            row.opened_at_ms,
            row.updated_at_ms,
            row.schema_version,
            row.generator_version,
        ),
    )
    return cursor.rowcount == 1


def _apply_ticket_change(conn: Conn, change: TicketChange) -> bool:
    """Apply one ticket change; True if a row changed."""
    match change:
        case OpenTicket(row):
            return _insert_ticket(conn, row)
        case ClaimTicket(key, by, at_ms):
            cursor = conn.execute(
                "UPDATE tickets SET status = 'claimed', claimed_by = ?, updated_at_ms = ?, "
                "schema_version = ?, generator = ? WHERE key = ? AND status = 'open'",
                (by, at_ms, TICKET_SCHEMA_VERSION, GENERATOR, key),
            )
            return cursor.rowcount == 1
        case ResolveTicket(key, by, at_ms):
            cursor = conn.execute(
                "UPDATE tickets SET status = 'resolved', resolved_by = ?, updated_at_ms = ?, "
                "schema_version = ?, generator = ? WHERE key = ? AND status != 'resolved'",
                (by, at_ms, TICKET_SCHEMA_VERSION, GENERATOR, key),
            )
            return cursor.rowcount == 1
        case ReopenTicket(key, holder, at_ms):
            cursor = conn.execute(
                "UPDATE tickets SET status = ?, claimed_by = ?, resolved_by = NULL, "
                "updated_at_ms = ?, schema_version = ?, generator = ? "
                "WHERE key = ? AND status = 'resolved'",
                (
                    "open" if holder is None else "claimed",
                    holder,
                    at_ms,
                    TICKET_SCHEMA_VERSION,
                    GENERATOR,
                    key,
                ),
            )
            return cursor.rowcount == 1
