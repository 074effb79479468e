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
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # imported when the command runs (start-up, issue 18)
    from domain.verification import VerifyReport
    from storage.pg_import import ImportSummary

EXIT_OK = 0
EXIT_FOUND = 1


@dataclass
class Verification:
    """What was compared after the commit, and what differed (empty: the copy is sound)."""

    target_report: VerifyReport
    source_report: VerifyReport | None
    """Verified only when the copy shows problems, to tell the source's own from the copy's."""
    differences: list[str] = field(default_factory=list)


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


@contextlib.contextmanager
def _workdir(beside: Path) -> Iterator[Path]:
    """A temporary directory for the snapshot: next to the source when that directory is
    writable (the store fitted there), else the system's."""
    try:
        holder = tempfile.TemporaryDirectory(prefix=".salesbot-migrate-", dir=beside.parent)
    except OSError:
        holder = tempfile.TemporaryDirectory(prefix="salesbot-migrate-")
    with holder as name:
        yield Path(name)


def _bar(total: int, err: TextIO, label: str, unit: str) -> Any:
    """tqdm on stderr, on a terminal only (a pipe or a log gets the summary line alone)."""
    from tqdm import tqdm  # type: ignore[import-untyped]  # no stubs installed

    return tqdm(
        total=total,
        desc=label,
        unit=unit,
        unit_scale=True,
        file=err,
        disable=not err.isatty(),
        leave=False,
    )


async def verify_copy(snapshot: Path, dsn: str, err: TextIO) -> Verification:
    """Check the committed target against the snapshot it was copied from: every table's
    row count; `salesbot verify` on the target (every chain recomputed from the copied
    bytes, every decision replayed under its recorded policy); each conversation's chain
    head recomputed there equal to the one the source stores, which makes the two logs
    byte for byte equal (each link hashes its event's bytes and the link before); and
    `/metrics` reading the same. Only when the target shows problems is the source verified
    too (the slow part, done once instead of twice otherwise): problems it shares with the
    source are the source's own, not the copy's."""
    from bot.cli_verify import verify_store
    from storage.pg_import import TABLE_ORDER, source_counts, stored_heads, target_counts
    from storage.postgres import PostgresStore
    from storage.sqlite import SqliteStore

    differences = []
    source = source_counts(snapshot)
    target = await target_counts(dsn, tuple(t for t in TABLE_ORDER if t in source))
    for table, rows in source.items():
        if target.get(table) != rows:
            differences.append(
                f"{table}: {rows} rows in the source, {target.get(table)} in PostgreSQL"
            )
    async with await PostgresStore.open(dsn) as pg_store:
        target_report = await verify_store(pg_store, _verify_bar(err, "verifying the copy"))
        target_metrics = await pg_store.metrics_projection()
    heads = {cid: (head.seq, head.hash) for cid, head in target_report.heads.items()}
    stored = stored_heads(snapshot)
    unequal = sorted(
        cid for cid in stored.keys() | heads.keys() if stored.get(cid) != heads.get(cid)
    )
    if unequal:
        differences.append(
            f"{len(unequal)} conversations' chain heads differ from the source's "
            f"(first: {unequal[0]})"
        )
    source_report = None
    async with await SqliteStore.open(snapshot) as sqlite_store:
        if target_metrics != await sqlite_store.metrics_projection():
            differences.append("/metrics reads differently from the source")
        if target_report.problems:
            source_report = await verify_store(
                sqlite_store, _verify_bar(err, "verifying the source")
            )
    if source_report is not None and source_report.findings != target_report.findings:
        differences.append(
            "verify reads differently: the source has "
            f"{source_report.problems} problems, PostgreSQL {target_report.problems}"
        )
        differences.extend(f"  PostgreSQL: {f.line()}" for f in target_report.findings)
    return Verification(target_report, source_report, differences)


def _verify_bar(err: TextIO, label: str) -> Any:
    """`verify_store`'s progress as a tqdm bar, for stores large enough to be worth one."""
    from bot.cli_verify import PROGRESS_FROM

    bar: Any = None

    def show(done: int, total: int) -> None:
        nonlocal bar
        if total < PROGRESS_FROM or not err.isatty():
            return
        if bar is None:
            bar = _bar(total, err, label, unit=" conversations")
        bar.update(1)
        if done == total:
            bar.close()

    return show


async def _migrate(
    source: Path, dsn: str, err: TextIO
) -> tuple[ImportSummary, float, Verification, float]:
    """Snapshot, copy and verify; with the seconds the copy (snapshot included) and the
    verification took."""
    from storage.pg_import import copy_store, snapshot, source_counts

    started = time.monotonic()
    with _workdir(source) as workdir:
        copy = await snapshot(source, workdir)
        total = sum(source_counts(copy).values())
        with _bar(total, err, "copying", " rows") as bar:
            summary = await copy_store(copy, dsn, bar.update)
        copied = time.monotonic()
        verification = await verify_copy(copy, dsn, err)
    return summary, copied - started, verification, time.monotonic() - copied


def cmd_migrate(args: argparse.Namespace, out: TextIO) -> int:
    import asyncio

    from storage.postgres_pool import redacted

    err: TextIO = getattr(args, "err", sys.stderr)
    source, _origin = _source(args)
    dsn = _target(args)
    summary, seconds, verification, verify_seconds = asyncio.run(_migrate(source, dsn, err))
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
