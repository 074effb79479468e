"""`salesbot verify [BUNDLE] [--db PATH] [--jobs N]`: is the record what was written?

On the live store (`SALESBOT_DB`, or `--db`), every conversation's hash chain is recomputed
and its inbounds replayed under their recorded policies; on an audit bundle
(`salesbot audit ID --bundle out.zip`), the same for the bundled conversation, after every
file is checked against the manifest (`domain.verification`, `domain.audit_bundle`).

One line per conversation found wrong — its first broken link (conversation, seq, what
broke: content hash mismatch, missing link, replay difference, unreadable) — then a
summary. With `--jobs N` the store's conversations are verified by N worker processes (those
of `salesbot replay --jobs`), the report put back in order: the same, byte for byte. Exit 0
when everything holds, 1 when anything does not, 2 for bad input (no such
database or bundle, not a bundle): one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

# The parser registers `verify` without importing what it runs (start-up, issue 18): the
# store, the policy, the replay and the bundle reader are imported when the command runs.
if TYPE_CHECKING:
    from bot.settings import Settings
    from domain.verification import ConversationCheck, VerifyReport
    from storage.ports import Store

EXIT_OK = 0
EXIT_FOUND = 1
EXIT_USAGE = 2
PROGRESS_FROM = 200
"""Conversations from which a progress bar is worth drawing (on a terminal only)."""

Progress = Callable[[int, int], None]


async def verify_store(
    store: Store, progress: Progress | None = None, *, batch: int | None = None
) -> VerifyReport:
    """Verify every conversation of `store`, in the order they started.

    The store is read many conversations at a time (`Store.verify_logs`: one statement per
    `batch` conversations, the store's default when None, instead of three round trips
    each), next to a running bot. One statement is one snapshot of the store: each
    conversation's version, events and inbounds are those of one committed state, so a
    commit landing while verify runs is wholly in what it checks or wholly after it —
    never a false missing link (events read beyond a version read earlier, or a version
    beyond the events), never events of an inbound not read. A conversation started after
    the list of conversations was read is not verified this time."""
    from domain.verification import VerifyReport

    conversation_ids = await store.conversation_ids()
    total = len(conversation_ids)
    checks = await check_conversations(
        store,
        conversation_ids,
        {},
        (lambda done: progress(done, total)) if progress is not None else None,
        batch=batch,
    )
    return VerifyReport.of("store", checks)


async def check_conversations(
    store: Store,
    conversation_ids: Sequence[str],
    texts: dict[str, str | None],
    done: Callable[[int], None] | None = None,
    *,
    batch: int | None = None,
) -> list[ConversationCheck]:
    """The check of each of `conversation_ids`, in order (see `verify_store`); `texts`
    holds the policy texts read so far and gets those read here; `done(n)` after the n-th
    conversation."""
    from domain.chain import has_erasure, policy_version_of
    from domain.verification import policies_from, verify_conversation

    policy_for = policies_from(texts, "the store")
    logs = (
        store.verify_logs(conversation_ids)
        if batch is None
        else store.verify_logs(conversation_ids, batch=batch)
    )
    checks: list[ConversationCheck] = []
    async for log in logs:
        needs = {row.policy_version for row in log.inbounds}
        if has_erasure(log.links):  # its decisions are re-derived under each event's policy
            needs |= {policy_version_of(link.envelope) or "" for link in log.links} - {""}
        for needed in needs - texts.keys():
            texts[needed] = await store.get_policy(needed)
        checks.append(
            verify_conversation(
                log.conversation_id,
                log.links,
                [row.model_dump() for row in log.inbounds],
                policy_for,
                version=log.version,
            )
        )
        if done is not None:
            done(len(checks))
    return checks


def _progress(err: TextIO) -> Progress:
    from bot.cli_ops import progress_bar

    def show(done: int, total: int) -> None:
        if total >= PROGRESS_FROM:
            progress_bar(done, total, err, "verifying")

    return show


async def _verify_live(args: argparse.Namespace, err: TextIO) -> VerifyReport | str:
    from bot.bootstrap import open_store
    from bot.settings import load_settings
    from storage.postgres import is_postgres_url

    settings = load_settings()
    database = args.db if args.db is not None else settings.salesbot_db
    origin = "--db" if args.db is not None else "SALESBOT_DB"
    if not is_postgres_url(database) and not Path(database).is_file():
        return f"cannot verify {database} ({origin}): there is no database file there"
    settings = settings.model_copy(update={"salesbot_db": str(database)})
    jobs: int = getattr(args, "jobs", 1)
    if jobs == 1:  # no workers: nor replay's module, whose imports cost start-up
        async with open_store(settings) as store:
            return await verify_store(store, _progress(err))
    # `salesbot replay --jobs`'s worker processes, started before the store is opened
    # here (while this process has one thread: see `bot.cli_replay.workers`).
    from bot.cli_replay import chunks, in_workers, jobs_wanted, workers
    from domain.verification import VerifyReport

    jobs = jobs_wanted(jobs)
    with workers(jobs) as pool:
        async with open_store(settings) as store:
            if pool is None:
                return await verify_store(store, _progress(err))
            conversation_ids = await store.conversation_ids()
            show, total = _progress(err), len(conversation_ids)
            checks = await in_workers(
                pool,
                _verify_chunk,
                (settings,),
                chunks(conversation_ids, jobs),
                lambda done: show(done, total),
            )
    return VerifyReport.of("store", checks)


def _verify_chunk(settings: Settings, ids: list[str]) -> list[ConversationCheck]:
    """In a worker process: the checks of `ids`, in order, with the worker's store and the
    policy texts it has read so far (`bot.cli_replay.Worker`)."""
    from bot.cli_replay import Worker

    worker = Worker.for_(settings)
    return worker.loop.run_until_complete(
        check_conversations(worker.store, ids, worker.policy_texts)
    )


def _verify_file(path: Path) -> VerifyReport | str:
    from bot import audit_bundle
    from domain.audit_bundle import BundleError, verify_bundle

    try:
        return verify_bundle(audit_bundle.read_zip(path))
    except BundleError as exc:
        return f"{path} is not an audit bundle: {exc}"


def cmd_verify(args: argparse.Namespace, out: TextIO) -> int:
    err: TextIO = getattr(args, "err", sys.stderr)
    if args.bundle is not None and args.db is not None:
        err.write("salesbot: error: give a bundle or --db, not both\n")
        return EXIT_USAGE
    if args.bundle is not None:
        found = _verify_file(Path(args.bundle))
        what = f"bundle {args.bundle}"
    else:
        import asyncio

        found = asyncio.run(_verify_live(args, err))
        what = "the store"
    if isinstance(found, str):
        err.write(f"salesbot: error: {found}\n")
        return EXIT_USAGE
    if args.json:
        out.write(found.model_dump_json(indent=2) + "\n")
    else:
        for finding in found.findings:
            out.write(finding.line() + "\n")
        out.write(_summary(what, found) + "\n")
    return EXIT_FOUND if found.problems else EXIT_OK


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _summary(what: str, report: VerifyReport) -> str:
    counted = ", ".join(
        (
            _count(report.conversations, "conversation"),
            _count(report.events, "event"),
            _count(report.inbounds, "inbound"),
        )
    )
    skipped = ""
    if report.replay_skipped:
        skipped = (
            f"; {_count(len(report.replay_skipped), 'conversation')} with an erasure: "
            f"{_count(report.rederived, 'decision')} re-derived from recorded features"
        )
    if report.problems:
        return f"verified {what}: {counted}: {_count(report.problems, 'problem')}{skipped}"
    return f"verified {what}: {counted}: every chain holds, every decision replays{skipped}"


def _jobs(text: str) -> int:
    """`--jobs`, read as `salesbot replay --jobs` is (`bot.cli.jobs_arg`)."""
    from bot.cli import jobs_arg

    return jobs_arg(text)


def add_commands(sub: Any, parser_class: type) -> None:
    p = sub.add_parser(
        "verify",
        help="recompute the hash chains and replay the decisions (the store, or a bundle)",
    )
    p.add_argument(
        "bundle",
        nargs="?",
        metavar="BUNDLE",
        help="an audit bundle (salesbot audit ID --bundle FILE); default: the store",
    )
    p.add_argument("--db", metavar="PATH", help="the database to verify (default: $SALESBOT_DB)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument(
        "--jobs",
        type=_jobs,
        default=1,
        metavar="N",
        help="verify the store in N worker processes (0: one per CPU; default 1); "
        "the report is the same",
    )
    p.set_defaults(handler=cmd_verify, policy=None, policy_flag_means_candidate=True)
