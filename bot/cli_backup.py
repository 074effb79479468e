"""`salesbot backup FILE` and `salesbot restore FILE`: the embedded store copied out and back
with SQLite's online backup (`storage.sqlite_backup`; README, "Backup and restore").

`backup` runs beside a live bot: it copies a consistent snapshot and says what it holds.
`restore` refuses a store a running bot holds, one with conversations unless `--replace`,
and a file that is not a sound salesbot database; after it, the store is opened once (so it
is migrated to this release's schema) and `salesbot verify` checks every chain and decision.
Errors are one line on stderr with exit 2; nothing is half-written.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

EXIT_OK = 0


def _store_path(args: argparse.Namespace) -> Path:
    from bot.settings import load_settings
    from storage.errors import StorageError
    from storage.postgres import is_postgres_url

    database = args.db if args.db is not None else load_settings().salesbot_db
    if is_postgres_url(database):
        raise StorageError(
            "backup and restore copy the SQLite store; back PostgreSQL up with its own tools "
            "(pg_dump, or the server's base backups)"
        )
    return Path(database)


def _report(verb: str, snapshot: Any, out: TextIO, as_json: bool) -> None:
    if as_json:
        import json

        data = {
            "path": str(snapshot.path),
            "schema_version": snapshot.schema_version,
            "conversations": snapshot.conversations,
            "events": snapshot.events,
            "bytes": snapshot.bytes,
        }
        out.write(json.dumps(data) + "\n")
        return
    out.write(
        f"{verb} {snapshot.path}: {snapshot.conversations} conversations, {snapshot.events} "
        f"events, schema {snapshot.schema_version}, {snapshot.bytes:,} bytes\n"
    )


def cmd_backup(args: argparse.Namespace, out: TextIO) -> int:
    from storage.sqlite_backup import backup

    source = _store_path(args)
    snapshot = backup(source, Path(args.file))
    _report(f"backed up {source} to", snapshot, out, args.json)
    return EXIT_OK


def cmd_restore(args: argparse.Namespace, out: TextIO) -> int:
    import asyncio

    from bot.boot_slot import BootSlot
    from storage.errors import StorageError
    from storage.sqlite import SqliteStore
    from storage.sqlite_backup import restore

    destination = _store_path(args)
    if BootSlot.held(destination):
        # A running `salesbot serve` holds a boot slot for as long as it lives.
        raise StorageError(
            f"{destination} is in use (a running salesbot holds it): stop it, then restore"
        )
    snapshot = restore(Path(args.file), destination, replace=args.replace)

    async def migrate() -> None:
        store = await SqliteStore.open(destination)
        await store.close()

    asyncio.run(migrate())
    _report(f"restored {args.file} to", snapshot, out, args.json)
    if not args.json:
        out.write(f"check it with: salesbot verify --db {destination}\n")
    return EXIT_OK


def add_commands(sub: Any, parser_class: type) -> None:
    p = sub.add_parser(
        "backup",
        help="copy the store to FILE while the bot runs (SQLite's online backup)",
    )
    p.add_argument("file", metavar="FILE", help="where to write the copy (replaced atomically)")
    p.add_argument("--db", metavar="PATH", help="the store to copy (default: $SALESBOT_DB)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(handler=cmd_backup, policy=None, policy_flag_means_candidate=True)

    p = sub.add_parser(
        "restore",
        help="make a backup FILE the store (stop the bot first)",
    )
    p.add_argument("file", metavar="FILE", help="a backup written by salesbot backup")
    p.add_argument("--db", metavar="PATH", help="the store to restore to (default: $SALESBOT_DB)")
    p.add_argument(
        "--replace",
        action="store_true",
        help="overwrite a store that holds conversations (back it up first)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(handler=cmd_restore, policy=None, policy_flag_means_candidate=True)
