"""The tickets of `PostgresStore` (`storage.ports.TicketStore`): one row per handoff or
approval ticket, claimed once — across processes too (the claim locks the row)."""

from __future__ import annotations

from domain import GENERATOR
from storage._rules import ClaimTicket, OpenTicket, ReopenTicket, ResolveTicket, TicketChange
from storage.ports import TICKET_SCHEMA_VERSION, ClaimOutcome, TicketRow
from storage.postgres_pool import Conn, PostgresConnections, affected
from storage.sql_rows import TICKET_COLUMNS, ticket_row

_MARKS = ", ".join(f"${i}" for i in range(1, 13))


class PostgresTickets(PostgresConnections):
    """`storage.ports.TicketStore` on PostgreSQL."""

    async def open_ticket(self, row: TicketRow) -> bool:
        return await self._transaction(lambda conn: insert_ticket(conn, row))

    async def claim_ticket(self, key: str, by: str, at_ms: int) -> ClaimOutcome:
        async def run(conn: Conn) -> ClaimOutcome:
            row = await conn.fetchrow(
                "SELECT status, claimed_by, resolved_by FROM tickets WHERE key = $1 FOR UPDATE",
                key,
            )
            if row is None:
                return ClaimOutcome(claimed=False, holder=None)
            status, claimed_by, resolved_by = row
            if status == "open":
                await apply_ticket_change(conn, ClaimTicket(key, by, at_ms))
                return ClaimOutcome(claimed=True, holder=by)
            if status == "claimed":
                return ClaimOutcome(claimed=claimed_by == by, holder=claimed_by)
            return ClaimOutcome(claimed=False, holder=resolved_by)

        return await self._transaction(run)

    async def resolve_ticket(self, key: str, by: str, at_ms: int) -> bool:
        return await self._transaction(
            lambda conn: apply_ticket_change(conn, ResolveTicket(key, by, at_ms))
        )

    async def ticket(self, key: str) -> TicketRow | None:
        rows = await self._fetch(f"SELECT {TICKET_COLUMNS} FROM tickets WHERE key = $1", key)
        return ticket_row(tuple(rows[0])) if rows else None

    async def open_tickets(self) -> list[TicketRow]:
        rows = await self._fetch(
            f"SELECT {TICKET_COLUMNS} FROM tickets WHERE status != 'resolved' "
            "ORDER BY opened_at_ms, id"
        )
        return [ticket_row(tuple(row)) for row in rows]


async def insert_ticket(conn: Conn, row: TicketRow) -> bool:
    status = await conn.execute(
        f"INSERT INTO tickets ({TICKET_COLUMNS}) VALUES ({_MARKS}) ON CONFLICT (key) DO NOTHING",
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
    )
    return affected(status) == 1


async def apply_ticket_change(conn: Conn, change: TicketChange) -> bool:
    """Apply one ticket change; True if a row changed."""
    match change:
        case OpenTicket(row):
            return await insert_ticket(conn, row)
        case ClaimTicket(key, by, at_ms):
            status = await conn.execute(
                "UPDATE tickets SET status = 'claimed', claimed_by = $1, updated_at_ms = $2, "
                "schema_version = $3, generator = $4 WHERE key = $5 AND status = 'open'",
                by,
                at_ms,
                TICKET_SCHEMA_VERSION,
                GENERATOR,
                key,
            )
        case ResolveTicket(key, by, at_ms):
            status = await conn.execute(
                "UPDATE tickets SET status = 'resolved', resolved_by = $1, updated_at_ms = $2, "
                "schema_version = $3, generator = $4 WHERE key = $5 AND status != 'resolved'",
                by,
                at_ms,
                TICKET_SCHEMA_VERSION,
                GENERATOR,
                key,
            )
        case ReopenTicket(key, holder, at_ms):
            status = await conn.execute(
                "UPDATE tickets SET status = $1, claimed_by = $2, resolved_by = NULL, "
                "updated_at_ms = $3, schema_version = $4, generator = $5 "
                "WHERE key = $6 AND status = 'resolved'",
                "open" if holder is None else "claimed",
                holder,
                at_ms,
                TICKET_SCHEMA_VERSION,
                GENERATOR,
                key,
            )
    return affected(status) == 1
