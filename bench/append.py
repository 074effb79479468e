"""Durable append (issue 18, item 3): the SQLite store's `commit` against a raw single-writer
group-commit loop on the same schema, in one run, 200 conversations committing at once —
the store with its writer on a thread (`store`) and in a process of its own, as `serve`
runs it (`store_process`).

Both sides write the same rows for each commit — the stream's version, its events (the
envelopes a real `decide` produced: about four per prospect message, the reading's features
included), the delivery id and the inbound — in WAL mode with `synchronous = FULL`, one
transaction (one fsync) per batch of whatever is queued. The raw loop does only that: no
expected-version check, no dedupe read, no hash chain, no projections, no validation. The
store's share of the difference is what those guarantees cost.

Between the two, the floor (`StatementGroupCommit`): the raw loop running, for each commit,
the very statements the store's commit job ran for it (recorded once beforehand,
`store_statements`). It pays SQLite's whole share of the guarantees and none of their
Python: the most any store writing the store's rows to SQLite could reach against the raw
loop. `floor_vs_raw` is what the guarantees' rows cost in SQLite; `store_process_vs_floor`
what the store's own machinery costs on top (sealing, the chain's hashes, the projections'
fold, the crossing to its writer process).

Beside the sides, what the guarantees compute per commit, each computation timed alone
(`guarantee_costs`: the masked JSON, sealing, the chain's links, the projections' fold, the
inbound), and two estimates from them (`with_guarantees`): the floor doing them as well in
one thread, and the most a store could reach with them split over two cores at no cost of
crossing between them. Then the least cost of that crossing (`crossing_costs`: the store's
own commit jobs pickled, written to a socket, read and unpickled) and the bound with it
(`process_bound_vs_raw`): the most a writer in a process of its own could reach, its
answers and dispatch free. What separates the store from that bound is the rest of its
machinery.

    python -m bench.append
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import pickle
import socket
import sqlite3
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast

from bench import proc
from bot.policy_loader import load_policy
from domain.chain import GENESIS, link
from domain.decide import decide, new_conversation
from domain.decision import Decision
from domain.events import EventEnvelope
from domain.inbound import Actor, MessagePosted
from domain.policy import Policy
from domain.state import ConversationState
from storage import sealing
from storage.ports import Commit
from storage.projections import NO_FACTS, advance_steps, fold_steps_of
from storage.sql_rows import change_rows, event_rows, sealed_row
from storage.sqlite import SqliteStore
from storage.sqlite_process import FRAME, JOB
from storage.sqlite_writer import WriterKind, _prepare_writer

T = TypeVar("T")
PROSPECT = Actor(id="P", name="Pat", role="prospect")
TEXTS = ("Hello", "We have a $5000 budget", "I am the CTO", "too expensive", "next month works")
NOW_MS = 1_790_000_000_000


def build_commits(conversations: int, messages: int, first: int = 0) -> list[list[Commit]]:
    """Each conversation's commits (`c<first>` on), decided once before anything is timed."""
    policy = load_policy("default")
    result = []
    for c in range(first, first + conversations):
        state = new_conversation(f"c{c}", policy)
        commits = []
        for m in range(messages):
            inbound = MessagePosted(
                delivery_id=f"{c}-{m}",
                conversation_id=f"c{c}",
                actor=PROSPECT,
                text=TEXTS[m % len(TEXTS)],
            )
            commit, decision = decided(state, inbound, policy, NOW_MS + 1000 * m)
            commits.append(commit)
            state = decision.state
        result.append(commits)
    return result


def decided(
    state: ConversationState, inbound: MessagePosted, policy: Policy, now_ms: int
) -> tuple[Commit, Decision]:
    """`decide` on `inbound`, and the commit that stores what it decided."""
    decision = decide(state, inbound, policy, now_ms)
    commit = Commit(
        conversation_id=inbound.conversation_id,
        expected_version=state.version,
        delivery_id=inbound.delivery_id,
        received_at_ms=now_ms,
        policy_version=policy.version,
        inbound=inbound.model_dump(mode="json"),
        events=decision.events,
    )
    return commit, decision


Outcome = tuple[float, int] | tuple[float, int, float]
"""(seconds taken, transactions used), and the CPU seconds spent when the side measured
them."""
Side = Callable[[int, list[list[Commit]]], Awaitable[Outcome]]
"""One side of a comparison: given the round's number and the commits, commit them all and
answer its `Outcome`."""


def cpu_s() -> float:
    """CPU seconds of this process (to the microsecond) and of every process it started
    (the store's writer process; to the clock tick): what a side costs the machine, beside
    what it takes on the wall clock."""
    spent = time.process_time()
    for child in proc.descendants(os.getpid()):
        try:
            spent += proc.cpu_seconds(child)
        except (OSError, IndexError, ValueError):
            continue  # it ended meanwhile
    return spent


async def timed(
    commit: Callable[[Commit], Awaitable[object]], commits: list[list[Commit]]
) -> float:
    """Seconds for every conversation to commit its commits through `commit`, all
    conversations at once and each one's commits in order (each waits for the previous
    one's answer, as the runtime does): the frame both sides of every backend are timed in."""

    async def one(conversation: list[Commit]) -> None:
        for each in conversation:
            await commit(each)

    start = time.perf_counter()
    await asyncio.gather(*(one(conversation) for conversation in commits))
    return time.perf_counter() - start


async def product(
    path: Path, commits: list[list[Commit]], writer: WriterKind = "thread"
) -> tuple[float, int, float]:
    store = await SqliteStore.open(path, writer=writer)
    try:
        spent = cpu_s()
        elapsed = await timed(store.commit, commits)
        return elapsed, store.batches, cpu_s() - spent
    finally:
        await store.close()


Row = tuple[object, ...]


class RawRows(NamedTuple):
    """The rows a raw loop writes for one commit, in the schema's columns (the same on
    SQLite and PostgreSQL): nothing the store adds (chain links, projections, sealing)."""

    stream: Row
    events: list[Row]
    delivery: Row
    inbound: Row


def raw_rows(commit: Commit) -> RawRows:
    events: tuple[EventEnvelope, ...] = commit.events
    stream: Row = (
        commit.conversation_id,
        commit.expected_version + len(events),
        events[0].at_ms if events else commit.received_at_ms,
        events[-1].at_ms if events else commit.received_at_ms,
    )
    rows: list[Row] = [
        (
            e.conversation_id,
            e.seq,
            e.at_ms,
            e.policy_version,
            e.event.type,
            e.delivery_id,
            e.model_dump_json(),
            None,
        )
        for e in events
    ]
    delivery: Row = (commit.delivery_id, commit.conversation_id, commit.received_at_ms, stream[1])
    inbound: Row = (
        commit.conversation_id,
        commit.expected_version + 1,  # any increasing position: the raw loop does not look
        commit.delivery_id,
        commit.received_at_ms,
        commit.policy_version,
        json.dumps(commit.inbound),
        None,
    )
    return RawRows(stream, rows, delivery, inbound)


RAW_STREAM = (
    "INSERT INTO streams (conversation_id, version, created_at_ms, updated_at_ms) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (conversation_id) DO "
    "UPDATE SET version = excluded.version, updated_at_ms = excluded.updated_at_ms"
)
RAW_EVENTS = (
    "INSERT INTO events (conversation_id, seq, at_ms, policy_version, type, delivery_id, "
    "envelope, chain_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
RAW_DELIVERY = (
    "INSERT INTO deliveries (delivery_id, conversation_id, received_at_ms, committed_version) "
    "VALUES (?, ?, ?, ?)"
)
RAW_INBOUND = (
    "INSERT INTO inbounds (conversation_id, position, delivery_id, received_at_ms, "
    "policy_version, inbound, generator) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
"""The raw loops' four statements, in SQLite's placeholders (`bench.append_pg` numbers
them for PostgreSQL): the same rows on both backends, in an order the foreign keys accept."""
RAW_BATCH = 512
"""The most commits a raw loop puts in one transaction."""


class RawGroupCommit:
    """The baseline: one thread, one connection, a queue; each batch is one transaction."""

    def __init__(self, path: Path) -> None:
        self.conn = self.connect(path)
        self.queue: list[tuple[Commit, Future[None]]] = []
        self.ready = threading.Condition()
        self.batches = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, name="raw-writer")
        self.thread.start()

    def submit(self, commit: Commit) -> Future[None]:
        future: Future[None] = Future()
        with self.ready:
            self.queue.append((commit, future))
            self.ready.notify()
        return future

    def _loop(self) -> None:
        while True:
            with self.ready:
                while not self.queue and not self.stopping:
                    self.ready.wait()
                if not self.queue:
                    return
                batch, self.queue = self.queue[:RAW_BATCH], self.queue[RAW_BATCH:]
            self.conn.execute("BEGIN IMMEDIATE")
            for commit, _ in batch:
                self.write(commit)
            self.conn.execute("COMMIT")
            self.batches += 1
            for _, future in batch:
                future.set_result(None)

    def connect(self, path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    def write(self, commit: Commit) -> None:
        """One commit's rows, inside the batch's transaction."""
        rows = raw_rows(commit)
        self.conn.execute(RAW_STREAM, rows.stream)
        self.conn.executemany(RAW_EVENTS, rows.events)
        self.conn.execute(RAW_DELIVERY, rows.delivery)
        self.conn.execute(RAW_INBOUND, rows.inbound)

    def close(self) -> None:
        with self.ready:
            self.stopping = True
            self.ready.notify()
        self.thread.join()
        self.conn.close()


Statement = tuple[str, Any, bool]
"""(SQL, its parameters, whether `executemany` ran it) as a commit job ran it."""


class _Recording(sqlite3.Connection):
    """A connection that writes down every statement it runs, with its parameters."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.statements: list[Statement] = []

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        self.statements.append((sql, parameters, False))
        return super().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        rows = list(parameters)
        self.statements.append((sql, rows, True))
        return super().executemany(sql, rows)


def _store_connection(path: Path, factory: type[sqlite3.Connection]) -> sqlite3.Connection:
    """A connection set up by the store's writer's own set-up (`_prepare_writer`: WAL, a
    full sync at each commit, foreign keys enforced, deleted rows overwritten), usable from
    the loop's thread."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, factory=factory)
    _prepare_writer(conn, path, verify=False)
    return conn


class _RecordingStore(SqliteStore):
    """The store, each of its writes run at once on a `_Recording` connection of its own
    file, one transaction each."""

    recording: _Recording
    jobs: list[bytes]

    async def _write(self, run: Callable[[sqlite3.Connection], T]) -> T:
        self.jobs.append(pickle.dumps(run, pickle.HIGHEST_PROTOCOL))  # as it would cross
        conn = self.recording
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = run(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result


async def store_statements(
    commits: list[list[Commit]], jobs: dict[str, bytes] | None = None
) -> dict[str, list[Statement]]:
    """The statements the store's commit job runs for each commit (by delivery id), with
    their parameters: its look-up, its rows, its chain links, its projections, its key,
    the sealed values already encrypted. Recorded once, on a scratch file, before anything
    is timed. Into `jobs`, when given: each commit's job as it crosses to a writer process
    (pickled, as `storage.sqlite_process.ProcessWriter.prepare` sends it)."""
    recorded: dict[str, list[Statement]] = {}
    with tempfile.TemporaryDirectory() as name:
        path = Path(name) / "recorded.db"
        store = await _RecordingStore.open(path)
        store.recording = cast(_Recording, _store_connection(path, _Recording))
        try:
            for conversation in commits:
                for commit in conversation:
                    store.recording.statements = []
                    store.jobs = []
                    await store.commit(commit)
                    if jobs is not None:
                        (jobs[commit.delivery_id],) = store.jobs
                    recorded[commit.delivery_id] = [
                        statement
                        for statement in store.recording.statements
                        if statement[0] not in ("BEGIN IMMEDIATE", "COMMIT")
                    ]
        finally:
            store.recording.close()
            await store.close()
    return recorded


class StatementGroupCommit(RawGroupCommit):
    """The floor: the raw loop, each commit's rows written by the very statements the
    store's commit job ran for it (`store_statements`) — SQLite's whole share of the
    store's guarantees (the dedupe look-up, the expected-version check, the chain links,
    the projections, the conversation's key, the outbox and answer rows) and none of their
    Python (sealing, hashing, folding, the job's pickling). The raw loop's own Python per
    commit (`raw_rows`: each event dumped to JSON, as any store must) is done as well, so
    the two loops differ in SQL only."""

    def __init__(self, path: Path, statements: Mapping[str, list[Statement]]) -> None:
        self.statements = statements
        super().__init__(path)

    def connect(self, path: Path) -> sqlite3.Connection:
        return _store_connection(path, sqlite3.Connection)

    def write(self, commit: Commit) -> None:
        raw_rows(commit)  # the raw loop's Python, so that only the SQL differs
        for sql, parameters, many in self.statements[commit.delivery_id]:
            if many:
                self.conn.executemany(sql, parameters)
            else:
                self.conn.execute(sql, parameters)


async def floor(
    path: Path, commits: list[list[Commit]], statements: Mapping[str, list[Statement]]
) -> tuple[float, int, float]:
    """`raw`, through `StatementGroupCommit`: the most any store writing the store's rows
    with SQLite can reach against the raw loop."""
    return await raw(path, commits, partial(StatementGroupCommit, statements=statements))


async def raw(
    path: Path,
    commits: list[list[Commit]],
    loop: Callable[[Path], RawGroupCommit] = RawGroupCommit,
) -> tuple[float, int, float]:
    """The commits through a raw group-commit `loop` on a file with the store's schema."""
    store = await SqliteStore.open(path)  # the same schema, then the store lets go of it
    await store.close()
    writer = loop(path)
    try:
        spent = cpu_s()
        elapsed = await timed(lambda commit: asyncio.wrap_future(writer.submit(commit)), commits)
        return elapsed, writer.batches, cpu_s() - spent
    finally:
        writer.close()


def figures(
    rounds: Sequence[Mapping[str, Outcome]], commits: list[list[Commit]]
) -> dict[str, float]:
    """The report of alternated rounds (each round: side → its `Outcome`): each side's best
    round (commits and events per second, commits per transaction), events per commit, and
    the store against the raw loop — best against best, and round by round
    (`round_<n>_store_vs_raw`, from 1), so a round slowed by someone else's load shows.
    Sides that measured their CPU also report their least CPU per commit over the rounds
    (`<side>_cpu_us_per_commit`) and, against the raw loop's, how many times it that is
    (`<side>_cpu_vs_raw`): a figure the machine's other load moves less than the rates."""
    count = sum(len(conversation) for conversation in commits)
    events = sum(len(c.events) for conversation in commits for c in conversation)
    best: dict[str, float] = {}
    for outcome in rounds:
        for name, (elapsed, transactions, *spent) in outcome.items():
            rate = count / elapsed
            if rate > best.get(f"{name}_commits_per_s", 0.0):
                best[f"{name}_commits_per_s"] = rate
                best[f"{name}_events_per_s"] = events / elapsed
                best[f"{name}_commits_per_batch"] = count / max(1, transactions)
            if spent:
                per_commit = 1e6 * spent[0] / count
                key = f"{name}_cpu_us_per_commit"
                best[key] = min(best.get(key, per_commit), per_commit)
    best["events_per_commit"] = events / count
    stores = [name for name in rounds[0] if name != "raw"]
    for name in stores:
        best[f"{name}_vs_raw"] = best[f"{name}_commits_per_s"] / best["raw_commits_per_s"]
        if best.get("raw_cpu_us_per_commit") and f"{name}_cpu_us_per_commit" in best:
            best[f"{name}_cpu_vs_raw"] = (
                best[f"{name}_cpu_us_per_commit"] / best["raw_cpu_us_per_commit"]
            )
    if "floor" in rounds[0]:
        for name in stores:
            if name != "floor":
                best[f"{name}_vs_floor"] = (
                    best[f"{name}_commits_per_s"] / best["floor_commits_per_s"]
                )
    for n, outcome in enumerate(rounds, start=1):
        for name in stores:
            best[f"round_{n}_{name}_vs_raw"] = outcome["raw"][0] / outcome[name][0]
    return best


async def alternate(
    sides: Mapping[str, Side], commits: list[list[Commit]], rounds: int = 3
) -> dict[str, float]:
    """Run the sides one after the other, `rounds` times over (the machine is shared: a
    burst of someone else's load then hits one round of one side, not all of one side),
    and report them (`figures`)."""
    outcomes = []
    for n in range(rounds):
        outcomes.append({name: await side(n, commits) for name, side in sides.items()})
    return figures(outcomes, commits)


def guarantee_costs(commits: list[list[Commit]], repeat: int = 3) -> dict[str, float]:
    """CPU microseconds per commit of each computation the store's guarantees add to the
    raw loop's work, as the store computes them, each timed alone on the same commits
    (best of `repeat`, the collector off): what the store pays for them whatever its
    machinery (crossing to a writer, transactions, pickling) costs on top.

    * `guarantee_json_us`: the raw loop's own serialisation (each event and the inbound
      dumped), for scale;
    * `guarantee_masked_json_us`: the store's (`event_rows`: each event's personal values
      split from its JSON to be sealed);
    * `guarantee_seal_us`: those values encrypted under the conversation's key;
    * `guarantee_link_us`: each event's link in its conversation's hash chain;
    * `guarantee_fold_us`: the projections' fold of the events (from a conversation's
      empty facts) and the counter rows it makes;
    * `guarantee_inbound_us`: the inbound's personal values split and sealed.

    `guarantees_us_per_commit` is what they add to the raw loop's work: all but the first,
    less the raw loop's JSON (the masked JSON replaces it)."""
    flat = [commit for conversation in commits for commit in conversation]
    sealer = sealing.Sealer(1, sealing.new_key())
    forms = [event_rows(commit.events) for commit in flat]
    sealed = [[sealed_row(row, sealer) for row in rows] for rows in forms]

    def json_rows() -> None:
        for commit in flat:
            raw_rows(commit)

    def masked_json() -> None:
        for commit in flat:
            event_rows(commit.events)

    def seal() -> None:
        for rows in forms:
            for row in rows:
                sealed_row(row, sealer)

    def links() -> None:
        for rows in sealed:
            previous = GENESIS
            for row in rows:
                previous = link(previous, str(row[6]))

    def fold() -> None:
        for commit in flat:
            change = advance_steps(NO_FACTS, fold_steps_of(commit.events))
            change_rows(commit.conversation_id, change)

    def inbound() -> None:
        for commit in flat:
            if commit.inbound is None:
                continue
            form = sealing.inbound_form(commit.inbound, commit.conversation_id)
            if isinstance(form, sealing.Masked):
                sealer.event(form)

    parts = {
        "json": json_rows,
        "masked_json": masked_json,
        "seal": seal,
        "link": links,
        "fold": fold,
        "inbound": inbound,
    }
    costs = {
        f"guarantee_{name}_us": 1e6 * best_cpu_s(run, repeat) / len(flat)
        for name, run in parts.items()
    }
    costs["guarantees_us_per_commit"] = (
        sum(costs[f"guarantee_{name}_us"] for name in parts if name != "json")
        - costs["guarantee_json_us"]
    )
    return costs


def crossing_costs(
    commits: list[list[Commit]], jobs: Mapping[str, bytes], repeat: int = 3
) -> dict[str, float]:
    """CPU microseconds per commit of the least a writer in another process adds: the job
    pickled where the decision is made (`crossing_out_us`) and unpickled in the writer
    (`crossing_in_us`), each timed alone on the store's own jobs (best of `repeat`, the
    collector off); and the bytes moved between them (`socket_costs`: framed and written
    on one side, `crossing_send_us`, read on the other, `crossing_recv_us`). The answers
    and the job's dispatch come on top, so these are a lower bound of the crossing."""
    flat = [commit for conversation in commits for commit in conversation]
    sent = [jobs[commit.delivery_id] for commit in flat]
    received = [pickle.loads(job) for job in sent]

    def out() -> None:
        for job in received:
            pickle.dumps(job, pickle.HIGHEST_PROTOCOL)

    def into() -> None:
        for job in sent:
            pickle.loads(job)

    costs = {
        f"crossing_{name}_us": 1e6 * best_cpu_s(run, repeat) / len(flat)
        for name, run in (("out", out), ("in", into))
    }
    send_s, recv_s = socket_costs(sent, repeat)
    costs["crossing_send_us"] = 1e6 * send_s / len(flat)
    costs["crossing_recv_us"] = 1e6 * recv_s / len(flat)
    return costs


def socket_costs(sent: Sequence[bytes], repeat: int = 3) -> tuple[float, float]:
    """The least CPU seconds (best of `repeat`, `collector_off`) to move `sent` through
    a socket pair as `storage.sqlite_process` does: each job framed (`FRAME`, `JOB`) and
    written on one end, the bytes read on the other into one buffer (the writer process
    reads 1 MB at a time). The jobs go in pieces the socket's buffer holds, each written in
    one call (fewer calls than the event loop's transport makes) and read before the next
    is written, so one thread does both and each side's time is its own."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        room = ours.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 4
        pieces: list[list[bytes]] = [[]]
        held = 0
        for job in sent:
            size = FRAME.size + len(job)
            if size > room:
                raise ValueError(f"a job of {len(job)} bytes does not fit the socket's buffer")
            if held + size > room:
                pieces.append([])
                held = 0
            pieces[-1].append(job)
            held += size
        buffer = memoryview(bytearray(1 << 20))
        best_send = best_recv = float("inf")
        for _ in range(repeat):
            send_s = recv_s = 0.0
            with collector_off():
                for piece in pieces:
                    start = time.process_time()
                    ours.sendall(b"".join([FRAME.pack(len(job), JOB) + job for job in piece]))
                    written = time.process_time()
                    due = sum(FRAME.size + len(job) for job in piece)
                    while due:
                        got = theirs.recv_into(buffer)
                        if not got:
                            raise ConnectionError("the socket pair closed mid-piece")
                        due -= got
                    send_s += written - start
                    recv_s += time.process_time() - written
            best_send, best_recv = min(best_send, send_s), min(best_recv, recv_s)
    return best_send, best_recv


def best_cpu_s(run: Callable[[], object], repeat: int) -> float:
    """The least CPU time `run` took in `repeat` runs, the collector off (`collector_off`)."""
    best = float("inf")
    for _ in range(repeat):
        with collector_off():
            start = time.process_time()
            run()
            best = min(best, time.process_time() - start)
    return best


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    """The cycle collector off inside, after one collection: the earlier rounds' garbage is
    not the timed work's cost."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def with_guarantees(report: Mapping[str, float]) -> dict[str, float]:
    """What the floor would reach doing the guarantees' computations as well, in one
    thread (`floor_with_guarantees_vs_raw`: its time per commit plus theirs, against the
    raw loop's rate), and the most a store could reach with them split across two cores
    at no cost of crossing (`split_bound_vs_raw`: the slower of the two halves, the
    floor's SQL with the seal, link and fold on the writer's side and the masked JSON and
    the inbound's form on the other, as `serve` splits them; the inbound's own sealing, a
    microsecond or two, is counted on that side too). Estimates from figures measured in
    one run, not a side that ran.

    With the crossing's least cost measured too (`crossing_costs`),
    `process_bound_vs_raw`: the split bound with the job read off the socket and unpickled
    on the writer's side, pickled and written on the other — the most a writer in a
    process of its own can reach, its answers and dispatch free."""
    floor_us = 1e6 / report["floor_commits_per_s"]
    raw_us = 1e6 / report["raw_commits_per_s"]
    writer_side = (
        floor_us
        - report["guarantee_json_us"]
        + report["guarantee_seal_us"]
        + report["guarantee_link_us"]
        + report["guarantee_fold_us"]
    )
    other_side = report["guarantee_masked_json_us"] + report["guarantee_inbound_us"]
    bounds = {
        "floor_with_guarantees_vs_raw": raw_us / (floor_us + report["guarantees_us_per_commit"]),
        "split_bound_vs_raw": raw_us / max(writer_side, other_side),
    }
    if "crossing_in_us" in report:
        bounds["process_bound_vs_raw"] = raw_us / max(
            writer_side + report["crossing_in_us"] + report["crossing_recv_us"],
            other_side + report["crossing_out_us"] + report["crossing_send_us"],
        )
    return bounds


async def measure(conversations: int = 200, messages: int = 5, rounds: int = 3) -> dict[str, float]:
    commits = build_commits(conversations, messages)
    jobs: dict[str, bytes] = {}
    statements = await store_statements(commits, jobs)
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        sides: dict[str, Side] = {
            "store": lambda n, c: product(directory / f"store-{n}.db", c),
            # `serve`'s: the writer in a process of its own (`storage.sqlite_process`).
            "store_process": lambda n, c: product(directory / f"process-{n}.db", c, "process"),
            "floor": lambda n, c: floor(directory / f"floor-{n}.db", c, statements),
            "raw": lambda n, c: raw(directory / f"raw-{n}.db", c),
        }
        report = await alternate(sides, commits, rounds)
    report.update(guarantee_costs(commits))
    report.update(crossing_costs(commits, jobs))
    report.update(with_guarantees(report))
    return report


if __name__ == "__main__":
    for key, value in asyncio.run(measure()).items():
        print(f"{key}: {value:,.2f}")
