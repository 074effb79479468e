"""What `salesbot migrate` runs (`bot.cli_migrate` parses it): the snapshot, the copy in one
transaction and the verification of the committed copy. A module of its own so that the
parser imports none of it (start-up, issue 18)."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # imported when the copy runs
    from domain.verification import VerifyReport
    from storage.pg_import import ImportSummary


@dataclass
class Verification:
    """What was compared after the commit, and what differed (empty: the copy is sound)."""

    target_report: VerifyReport
    source_report: VerifyReport | None
    """Verified only when the copy shows problems, to tell the source's own from the copy's."""
    differences: list[str] = field(default_factory=list)


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


async def migrate_store(
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
