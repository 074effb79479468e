"""`salesbot replay`: re-run every stored conversation through `decide` and report what would
change (`domain.replay`), under the policies each inbound recorded or a candidate policy.

Its own module, importing only what replay uses (the store, the policies, the domain), so
the command does not pay at start-up for the chat surfaces, the CRM clients and the runtime
that `bot.cli_ops` imports (about a second of a small store's replay).

The store is read many conversations at a time (`Store.replay_logs`: one query per 200
conversations instead of two round trips each), and only the events replay reads are
decoded (`domain.replay.REPLAY_DECODES`; the others come as their type and place). With
`--jobs N` the conversations are replayed by N worker processes, each with its own
connection to the store, in chunks handed out in order; the outcomes are put back in
conversation order, so the report is the one `--jobs 1` writes, byte for byte
(conversations are independent: nothing one replays changes another's). `salesbot verify
--jobs N` uses the same workers (`workers`, `in_workers`, `Worker`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from multiprocessing import util as multiprocessing_util
from typing import Any, TextIO, TypeVar

from pydantic import TypeAdapter

from bot.bootstrap import open_store
from bot.policy_loader import load_policy
from bot.settings import Settings, load_settings
from domain.artifacts import ReplayReport
from domain.chain import ERASED_EVENT_TYPE
from domain.errors import PolicyError
from domain.inbound import Inbound
from domain.policy import Policy, policy_from_json
from domain.recorded_decisions import RecordedCheck, check_recorded_decisions
from domain.replay import (
    REPLAY_DECODES,
    ConversationReplay,
    RecordedInbound,
    replay_conversation,
)
from storage.ports import REPLAY_BATCH, ConversationLog, Store

INBOUND: TypeAdapter[Inbound] = TypeAdapter(Inbound)


class RecordedPolicies:
    """Each recorded policy version's policy, rebuilt from the text stored under its hash.

    The texts are read as the conversations that name them come up (`fetch`), not by a
    first pass over every stored inbound of the store; each policy is built once."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._texts: dict[str, str] = {}
        self._policies: dict[str, Policy] = {}

    async def fetch(self, versions: Iterable[str]) -> None:
        for version in versions:
            if version not in self._texts:
                text = await self._store.get_policy(version)
                if text is None:
                    raise PolicyError(f"the store has no policy text for version {version[:12]}")
                self._texts[version] = text

    def __call__(self, version: str) -> Policy:
        policy = self._policies.get(version)
        if policy is None:
            policy = self._policies[version] = policy_from_json(self._texts[version])
        return policy


async def _recorded_policies(store: Store) -> Callable[[str], Policy]:
    """The policy of every version the store's inbounds recorded, read up front."""
    policies = RecordedPolicies(store)
    async for stored in store.all_inbounds():
        await policies.fetch((stored.policy_version,))
    return policies


def progress_bar(done: int, total: int, err: TextIO, label: str = "replaying") -> None:
    """`label [#####.....] done/total` on stderr, redrawn in place; on a terminal only."""
    if err.isatty():
        width = 30
        filled = width * done // max(total, 1)
        err.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            err.write("\n")
        err.flush()


Outcome = ConversationReplay | RecordedCheck
"""What replaying one conversation found: its re-decided inbounds compared with the log, or
for an erased conversation its recorded decisions re-derived from their numbers."""

CHUNKS_PER_JOB = 8
"""How many chunks each worker gets on average: enough that one slow chunk does not leave
the other workers idle at the end, and that the progress bar moves."""


class Replayer:
    """Replays conversations of one store under the policies their inbounds recorded
    (`candidate` None) or under one candidate policy; each recorded policy is read once, as
    its first conversation comes up."""

    def __init__(self, store: Store, candidate: Policy | None) -> None:
        self.store = store
        self._recorded: RecordedPolicies | None = None
        self._policy_for: Callable[[str], Policy]
        if candidate is not None:
            self._policy_for = lambda _version: candidate  # a what-if: one policy for all
        else:
            self._policy_for = self._recorded = RecordedPolicies(store)

    async def replay(
        self, conversation_ids: Sequence[str], done: Callable[[int], None] = lambda _n: None
    ) -> list[Outcome]:
        """The outcome of each of `conversation_ids`, in order; `done(n)` after the n-th."""
        outcomes: list[Outcome] = []
        async for log in self.store.replay_logs(conversation_ids, decode=REPLAY_DECODES):
            outcomes.append(await self._one(log))
            done(len(outcomes))
        return outcomes

    async def _one(self, log: ConversationLog) -> Outcome:
        conversation_id = log.conversation_id
        recorded_policies = self._recorded
        if recorded_policies is not None:
            await recorded_policies.fetch(stored.policy_version for stored in log.inbounds)
        if any(env.event.type == ERASED_EVENT_TYPE for env in log.events):
            # The inbounds' words are gone: the decisions are re-derived from the numbers
            # they recorded instead (`domain.recorded_decisions`), under the policies their
            # events recorded, which reads every event's values (so all are decoded).
            events = await self.store.load(conversation_id)
            if recorded_policies is not None:
                await recorded_policies.fetch(env.policy_version for env in events)
            return check_recorded_decisions(conversation_id, events, self._policy_for)
        recorded = [
            RecordedInbound(
                inbound=INBOUND.validate_python(stored.inbound),
                received_at_ms=stored.received_at_ms,
                policy_version=stored.policy_version,
            )
            for stored in log.inbounds
        ]
        return replay_conversation(conversation_id, recorded, log.events, self._policy_for)


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, where the system tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def jobs_wanted(value: int) -> int:
    """`--jobs`: 0 means one worker per available CPU."""
    return available_cpus() if value == 0 else value


def chunks(conversation_ids: Sequence[str], jobs: int) -> list[Sequence[str]]:
    """`conversation_ids` cut in order into about `CHUNKS_PER_JOB` chunks per job (at most
    a store read's batch each, at least one conversation)."""
    size = max(1, min(REPLAY_BATCH, -(-len(conversation_ids) // (jobs * CHUNKS_PER_JOB))))
    return [conversation_ids[i : i + size] for i in range(0, len(conversation_ids), size)]


async def replay(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = load_settings()
    candidate = load_policy(args.policy) if args.policy is not None else None
    jobs = jobs_wanted(getattr(args, "jobs", 1))
    # The workers start before the store is opened here, while this process has one
    # thread: see `workers`.
    with workers(jobs) as pool:
        async with open_store(settings) as store:
            conversation_ids = await store.conversation_ids()
            total = len(conversation_ids)
            if pool is None or total < 2:
                outcomes = await Replayer(store, candidate).replay(
                    conversation_ids, lambda done: progress_bar(done, total, err)
                )
            else:
                outcomes = await in_workers(
                    pool,
                    _replay_chunk,
                    (settings, args.policy),
                    chunks(conversation_ids, jobs),
                    lambda done: progress_bar(done, total, err),
                )
    report(args, outcomes, out)
    return 1 if args.fail_on_diff and any(outcome.differences for outcome in outcomes) else 0


def report(args: argparse.Namespace, outcomes: Sequence[Outcome], out: TextIO) -> None:
    """The report on stdout: every difference of the replayed conversations in their
    order, then those of the erased ones; as JSON with `--json`."""
    results = [outcome for outcome in outcomes if isinstance(outcome, ConversationReplay)]
    erased = [outcome for outcome in outcomes if isinstance(outcome, RecordedCheck)]
    diffs = (
        *(d for r in results for d in r.differences),
        *(d for check in erased for d in check.differences),
    )
    summary = ReplayReport(
        conversations=len(results),
        inbounds=sum(r.inbounds for r in results),
        differences=len(diffs),
        diffs=diffs,
        erased=tuple(check.conversation_id for check in erased),
        rederived=sum(check.checked for check in erased),
    )
    if args.json:
        out.write(json.dumps(summary.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n")
        return
    for d in diffs:
        out.write(
            f"{d.conversation_id} #{d.position} ({d.delivery_id}) {d.aspect}: "
            f"{d.recorded!r} → {d.replayed!r}\n"
        )
    for check in erased:
        out.write(
            f"{check.conversation_id}: [erased]: {check.checked} recorded decisions "
            f"re-derived from their recorded features, {len(check.differences)} differences\n"
        )
    against = f"policy {args.policy}" if args.policy else "the recorded policies"
    out.write(
        f"replayed {summary.conversations} conversations, {summary.inbounds} inbounds "
        f"against {against}: {summary.differences} differences\n"
    )


# -- worker processes -------------------------------------------------------------------


@contextlib.contextmanager
def workers(jobs: int) -> Iterator[Executor | None]:
    """A pool of `jobs` worker processes (None for one job), started at once.

    Forked where the system can fork and this process has a single thread (as
    `salesbot replay` has before it opens the store): a forked worker starts with every
    module imported, and its CPU time is counted with this process's when it ends.
    Otherwise spawned (a fresh interpreter: forking a process with other threads can copy a
    lock some thread holds)."""
    if jobs <= 1:
        yield None
        return
    fork = "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1
    context = multiprocessing.get_context("fork" if fork else "spawn")
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context)
    try:
        pool.submit(_started).result()  # with fork, every worker is forked now
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _started() -> None:
    """Nothing: the first task, so the pool starts its workers."""


Result = TypeVar("Result")


async def in_workers(
    pool: Executor,
    task: Callable[..., list[Result]],
    args: tuple[Any, ...],
    parts: list[Sequence[str]],
    done: Callable[[int], None],
) -> list[Result]:
    """`task(*args, part)` of every part (conversation ids), run by the workers, its
    results put back in the parts' order; `done(n)` as the n-th result comes back."""
    futures = [asyncio.wrap_future(pool.submit(task, *args, list(part))) for part in parts]
    finished_count = 0
    try:
        for finished in asyncio.as_completed(futures):
            finished_count += len(await finished)
            done(finished_count)
    except BaseException:
        # The first failure is the command's (one line, as without workers); the other
        # chunks' outcomes and failures are dropped without a word.
        for future in futures:
            if future.done() and not future.cancelled():
                future.exception()
            future.cancel()
        raise
    return [outcome for future in futures for outcome in future.result()]


class Worker:
    """A worker process's store, opened on its first chunk and kept for the next ones (with
    the recorded policies read so far: `replayer` for replay, `policy_texts` for verify),
    closed when the process ends."""

    current: Worker | None = None

    def __init__(self, settings: Settings, policy: str | None) -> None:
        self.key = (settings.salesbot_db, policy)
        self.loop = loop = asyncio.new_event_loop()
        stack = contextlib.AsyncExitStack()
        self.store = loop.run_until_complete(stack.enter_async_context(open_store(settings)))
        self.replayer = Replayer(self.store, load_policy(policy) if policy is not None else None)
        self.policy_texts: dict[str, str | None] = {}
        # Run once: by `close`, or as the worker process exits (multiprocessing runs its
        # finalizers there; the interpreter's `atexit` does not run in a worker).
        self.close = multiprocessing_util.Finalize(
            self, _close_worker, args=(loop, stack), exitpriority=10
        )

    @classmethod
    def for_(cls, settings: Settings, policy: str | None = None) -> Worker:
        worker = cls.current
        if worker is None or worker.key != (settings.salesbot_db, policy):
            if worker is not None:
                worker.close()
            worker = cls.current = cls(settings, policy)
        return worker


def _close_worker(loop: asyncio.AbstractEventLoop, stack: contextlib.AsyncExitStack) -> None:
    loop.run_until_complete(stack.aclose())
    loop.close()


def _replay_chunk(settings: Settings, policy: str | None, ids: list[str]) -> list[Outcome]:
    """In a worker: the outcomes of `ids`, in order."""
    worker = Worker.for_(settings, policy)
    return worker.loop.run_until_complete(worker.replayer.replay(ids))
