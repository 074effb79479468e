"""Persistence of events, deliveries, the outbox and tickets behind small ports.

Depends on `domain` types only.

- `storage.ports`: the `Protocol`s the runtime depends on (`Store` and its parts) and the
  value types they exchange (`Commit`, `OutboxItem`, `TicketRow`, …).
- `storage.errors`: the error tree (`StorageError` and its subclasses).
- `storage.memory.MemoryStore`: everything in process memory (tests, `salesbot chat --memory`).
- `storage.sqlite.SqliteStore`: one SQLite file, one writer task with group commit
  (`storage.sqlite_writer`); its outbox and tickets are `storage.sqlite_outbox` and
  `storage.sqlite_tickets`, and `storage.sqlite_schema` holds its schema migrations.
- `storage.projections`: what `/metrics` and `/audit` read instead of the whole log (the
  per-conversation fold and its sums), kept by both stores in the events' transaction;
  `storage.sqlite_projections` holds their tables and SQL.

Both stores pass the same contract tests (`tests/storage/`). Only the composition root
names a concrete store.
"""
