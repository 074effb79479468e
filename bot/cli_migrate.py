"""`salesbot migrate --to postgresql://… [--from PATH]`: move the embedded store to PostgreSQL
(`storage.pg_import`; README, "Moving to PostgreSQL").

Stop the bot first: a running `salesbot serve` on the source is refused (its boot slot),
since what it commits after the snapshot would not be in PostgreSQL. The source is copied
(SQLite's online backup) and the copy migrated to this release's schema; the source file
itself is only read. Everything is written into the empty target in one transaction: on any
failure nothing is left behind, and on success the copy is verified (`verify_copy`): every
table's row count equal on both sides, `salesbot verify` on the target (every hash chain
and every decision's replay), every conversation's chain head equal to the source's, and
`/metrics` reading the same.

Exit 0 when it is copied and verified, 1 when it is copied but the verification found a
difference (printed), 2 for bad input: no source, a source that is not a salesbot store,
`--to` that is not a PostgreSQL URL, a server that cannot be reached or refuses us, a
target that is not empty — one line on stderr, nothing written, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

EXIT_OK = 0
EXIT_FOUND = 1


def _source(args: argparse.Namespace) -> tuple[Path, str]:
    from bot.boot_slot import BootSlot
    from bot.settings import load_settings
    from storage.errors import StorageError
    from storage.postgres import is_postgres_url

    origin = "--from" if args.source is not None else "SALESBOT_DB"
    database = args.source if args.source is not None else load_settings().salesbot_db
    if is_postgres_url(database):
        raise StorageError(
            f"{origin} names a PostgreSQL database; migrate copies a SQLite store: give its "
            "file with --from PATH"
        )
    path = Path(database)
    if not path.is_file():
        raise StorageError(f"cannot migrate {path} ({origin}): there is no database file there")
    if BootSlot.held(path):
        raise StorageError(
            f"{path} is in use (a running salesbot holds it): stop it, then migrate, so "
            "nothing it commits meanwhile is left behind"
        )
    return path, origin


def _target(args: argparse.Namespace) -> str:
    from storage.errors import StorageError
    from storage.postgres import is_postgres_url

    if not is_postgres_url(args.to):
        raise StorageError(
            f"--to needs a PostgreSQL URL (postgresql://user@host:5432/dbname), not {args.to!r}"
        )
    return str(args.to)


def cmd_migrate(args: argparse.Namespace, out: TextIO) -> int:
    import asyncio
    import json

    from bot.migrate_copy import migrate_store
    from storage.postgres_pool import redacted

    err: TextIO = getattr(args, "err", sys.stderr)
    source, _origin = _source(args)
    dsn = _target(args)
    summary, seconds, verification, verify_seconds = asyncio.run(migrate_store(source, dsn, err))
    where = redacted(dsn)
    report = verification.target_report
    if args.json:
        data = {
            "source": str(source),
            "target": where,
            "tables": dict(summary.tables),
            "rows": summary.rows,
            "seconds": round(seconds, 3),
            "verify_seconds": round(verify_seconds, 3),
            "verified": not verification.differences,
            "differences": verification.differences,
            "conversations": report.conversations,
            "events": report.events,
            "inbounds": report.inbounds,
            "problems": report.problems,
        }
        out.write(json.dumps(data) + "\n")
    else:
        counted = ", ".join(f"{table} {rows:,}" for table, rows in summary.tables.items() if rows)
        out.write(
            f"migrated {source} to {where}: {summary.rows:,} rows in {seconds:.1f} s ({counted})\n"
        )
        for line in verification.differences:
            out.write(line + "\n")
        if not verification.differences:
            holds = (
                "every chain holds, every decision replays"
                if not report.problems
                else f"{report.problems} problems, as in the source (salesbot verify --db {source})"
            )
            out.write(
                f"verified: every table's row count matches, every conversation's chain head "
                f"is the source's; {report.conversations} conversations, {report.events} "
                f"events, {report.inbounds} inbounds: {holds}; /metrics reads the same "
                f"({verify_seconds:.1f} s)\n"
            )
            out.write(f"serve from it with SALESBOT_DB={where}\n")
    return EXIT_FOUND if verification.differences else EXIT_OK


def add_commands(sub: Any, parser_class: type) -> None:
    p = sub.add_parser(
        "migrate",
        help="copy the SQLite store into an empty PostgreSQL database and verify it",
    )
    p.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="the empty PostgreSQL database (postgresql://user@host:5432/dbname)",
    )
    p.add_argument(
        "--from",
        dest="source",
        metavar="PATH",
        help="the SQLite store to copy (default: $SALESBOT_DB); stop the bot first",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(handler=cmd_migrate, policy=None, policy_flag_means_candidate=True)
