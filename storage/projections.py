"""Projections: the metrics' inputs kept current with the log, so `/metrics` never scans it.

`domain.analytics.compute_metrics` reads the whole event log: a small accumulator per
conversation, then counts, intervals and percentiles over all of them. Its cost grows with
the log (0.8 s at 33k events). Here the same accumulator is kept *stored*, one row per
conversation (`StreamFacts`), with an index from quote id to the conversation that issued
it (for `/audit <quote id>`). What the metrics add up from those rows:

- counters: conversations started, engaged, engaged outcomes (won, lost, abandoned, open),
  the funnel (`reached`, `current`, keyed by state) and what the funnel needs to place
  conversations that never advanced (`first_from`, `never_advanced`) — each conversation's
  share is `contribution(facts)`;
- one qualification time per qualified conversation, counted by value (the percentiles
  need order statistics, not the list);
- the quotes of started conversations: issued, revised under the same id, superseded;
- engaged and won conversations by lead source and by the policy that started them (the
  `/metrics` chart's conversion by persona and by lead source: `SOURCE_MARK`).

Every store updates the facts in the same transaction as the events they fold
(`Store.commit`, `EventStore.append`), so they cannot disagree with the log, not even after
a crash. A commit changes one conversation's row (`fold_events`), so it costs the same at
1k events as at 1M. Every store also keeps the counters, moved in that transaction by the
conversation's change of contribution (`advance`: subtract the old contribution, add the
new), and the qualification times counted in a radix tree (`time_buckets`); the SQL stores
keep the counters in `SHARDS` rows each (why: `SHARDS`). So `/metrics` reads a bounded
number of rows — the counters, and the few buckets the percentiles' ranks fall in — however
many conversations there are (issue 17, item 5; docs/benchmarks.md).

Reading is `metrics_from_projection`: the same interval and percentile functions as
`compute_metrics` (`domain.analytics.percentiles_at` reads only the order statistics p50
and p90 need), fed from the counters. `tests/storage/test_projections.py` and
`test_counters.py` compare the two field by field after scripted conversations, random
logs, after a rebuild and after an older store is migrated.

Everything here is pure (no I/O, no clock) and could move to `domain/` (next to
`domain.analytics`, whose definitions it mirrors); it lives in `storage/` for now because
`domain/` is owned elsewhere. The fold relies on one thing the stores guarantee and
`compute_metrics` does not need: a conversation's events arrive in `seq` order.

Definitions that matter for equality with `compute_metrics` (see its module docstring):
"first" qualification and the `from_state` of the first advance are the earliest by seq,
the outcome (open again after a `ConversationReopened`) and the current state the latest; only `ConversationStarted` streams count,
however late in the stream it comes; the origin of a conversation that never advanced is
decided at read time (the policy's `flow.start`, or the most common first state).
"""

from __future__ import annotations

import bisect
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, TypeVar, cast

from domain.analytics import (
    Metrics,
    Percentiles,
    QuoteCounts,
    metrics_from_counts,
    percentiles_at,
)
from domain.events import (
    ConversationAbandoned,
    ConversationClosed,
    ConversationReopened,
    ConversationStarted,
    DealMarked,
    EventEnvelope,
    FlowAdvanced,
    LeadScored,
    MeetingRequested,
    ProspectMessageReceived,
    QuoteAccepted,
    QuoteIssued,
    QuoteRevised,
    QuoteSuperseded,
    TicketResolved,
)
from domain.metrics_chart import POLICY_KEY, SOURCE_KEY, source_label

PROJECTION_SCHEMA_VERSION = 5
"""Version of the projection rows' format. A change to the fold or the row layout bumps it
and adds a migration that rebuilds them (`salesbot projections rebuild` does the same).
2: the quote counts (`quotes_issued`, `quotes_revised`, `quotes_superseded`).
3: the lead source and starting policy marks (`SOURCE_MARK`, `POLICY_MARK`), for
conversion by lead source and by persona.
4: the counters and the counted qualification times kept by the commit next to the
per-conversation rows (`sharded_rows`; the facts' format is version 3's).
5: the counters and counted times kept per installation (`INSTALLATION_MARK`): each
installation's `/metrics` counts its own conversations (the facts' format is unchanged; a
conversation of the first installation has no mark, as every earlier row)."""

PROJECTED_TYPES: frozenset[str] = frozenset(
    {
        "conversation_started",
        "prospect_message_received",
        "lead_scored",
        "flow_advanced",
        "conversation_closed",
        "conversation_abandoned",
        "conversation_reopened",
        "quote_issued",
        "quote_revised",
        "quote_superseded",
        "meeting_requested",
        "deal_marked",
        "ticket_resolved",
        "quote_accepted",
    }
)
"""Event types the projections read; a rebuild parses only these (the rest is most of
the log: replies, narratives, objections)."""

# Counter kinds. A counter is (kind, name) → how many conversations; names are "" for the
# plain counts and a state or an outcome otherwise.
CONVERSATIONS = "conversations"
ENGAGED = "engaged"
ENDING = "ending"  # names: won, lost, abandoned, open (engaged conversations only)
REACHED = "reached"  # conversations that advanced, by every state they reached or left
CURRENT = "current"  # conversations that advanced, by the state they are in now
FIRST_FROM = "first_from"  # conversations that advanced, by the state they first left
NEVER_ADVANCED = "never_advanced"  # started, no advance yet: placed at read time
QUOTES = "quotes"  # names: issued, revised, superseded (quotes, not conversations)
MEETINGS = "meetings"  # name: requested (conversations that asked for a meeting)
LOST_REASONS = "lost_reasons"  # names: a lost reason (engaged conversations lost with one)
ON_BEHALF = "accepted_on_behalf"  # name: "" (a rep accepted a quote for the prospect)
LOST_MARK = "+lost:"
"""Kept in `reached` like `MEETING_MARK`, followed by the latest lost reason a rep recorded
(`deal_marked`, `ticket_resolved`); counted while the conversation's ending is lost."""
ON_BEHALF_MARK = "+accepted_on_behalf"
MEETING_MARK = "+meeting_requested"
"""Kept in a conversation's `reached` (a stage, not a flow state: no state name starts with
"+"), so the stored rows need no new column and a store from before meetings is unchanged."""
SEGMENT_ENGAGED = "segment_engaged"  # names: source:<label>, policy:<version> (engaged)
SEGMENT_WON = "segment_won"  # the same names, engaged conversations won
SOURCE_MARK = "+" + SOURCE_KEY
POLICY_MARK = "+" + POLICY_KEY
"""Kept in `reached` like `MEETING_MARK`: the lead source a conversation is grouped under
(`domain.metrics_chart.source_label`) and the version of the policy that started it (the
persona is that policy's, read at query time), set by its `ConversationStarted`. Counted,
for engaged conversations, as `SEGMENT_ENGAGED` and, when won, `SEGMENT_WON`: the
`/metrics` chart's conversion by persona and by lead source without reading the log."""
INSTALLATION_MARK = "+installation:"
"""Kept in `reached` like `MEETING_MARK`: the installation the conversation was started
through (`ConversationStarted.installation`), for a conversation of an installation other
than the first; its counters and qualification time are that installation's
(`StreamFacts.installation`)."""
OPEN = "open"

Ending = Literal["won", "lost", "abandoned"]
K = TypeVar("K")
V = TypeVar("V")
CounterKey = tuple[str, str]
"""(kind, name) of a counter, within an installation."""
TimeKey = tuple[int, int]
"""(level, bucket) of the counted qualification times (`time_buckets`)."""
ScopedCounter = tuple[str, str, str]
"""(installation, kind, name): a counter of one installation ("" the first)."""
ScopedTime = tuple[str, int, int]
"""(installation, level, bucket): a counted time of one installation."""

SHARDS = 16
"""Each counter is kept as `SHARDS` rows, (installation, kind, name, shard), and read as
their sum.

Why shards: the counters are updated by the commit, in the transaction that appends the
events they count, so they can never disagree with the log. On PostgreSQL several replicas
commit at once, and a row updated by one transaction is locked until it commits: with one
row per counter, every commit that moves `engaged` or `current/<state>` would queue behind
every other replica's commit holding that row, serialising the replicas exactly where they
should run side by side. A conversation's rows are those of its shard (`shard_of`, a stable
hash of its id, the same on every replica and backend, so `salesbot migrate` copies rows as
they are), so two commits contend only when their conversations share a shard (1 in 16)
and move the same counter. Sixteen keeps the read small — at most 16 rows per counter,
about 50 counters: under a thousand rows however long the log — while making contention
rare for the few replicas one database serves; the lock order is fixed (a transaction
folds one conversation, so one shard, and updates its rows sorted by key: counters, then
times), so contention never becomes a deadlock. SQLite has one writer and gains nothing
from shards, but keeps the same rows so both stores hold the same thing.

The counted qualification times (`TIME_LEVELS`) are not sharded: the read descends them
level by level, and shards would multiply the rows it reads at each level by `SHARDS`
(measured: 16 × the rows, about 4 ms instead of 0.3 at 20k distinct times on SQLite),
while a conversation's time rows are written once in its life (when it qualifies; again
only if a late `ConversationStarted` moves its start), so two replicas' commits meet on
them only when both qualify a conversation within the other's few milliseconds."""

TIME_BITS = 5
TIME_LEVELS = 9
"""The qualification times are counted, not listed, in a radix tree of `TIME_LEVELS`
levels: level L counts the times t by `t >> (TIME_BITS * L)` (level 0 is the time itself,
level 8 buckets of 2^40 ms, 35 years). The order statistics p50 and p90 need (the ranks
`domain.analytics.percentile_ranks` names) are found by descending it: at the top the
buckets are few (one for any time under 35 years), and below each bucket at most 32
children, so the read is bounded by the tree's shape (at most 9 levels × 32 children × 4
ranks), never by how many conversations qualified — where `ORDER BY … OFFSET k` on an
index steps over k entries (B-trees keep no counts). Exact: the leaves are the times
themselves. Why 32: at 256 children the read of 20k times spread over two weeks took 3×
that of 72 (0.76 against 0.24 ms on SQLite: the levels' children are read in full), at 32
1.3× (0.42 against 0.32 ms); 16 adds levels for no gain. A qualification writes one row
per level."""


def shard_of(conversation_id: str) -> int:
    """The counter shard of a conversation: CRC-32 of its id, stable across processes,
    releases and backends (Python's `hash` of a string is salted per process)."""
    return zlib.crc32(conversation_id.encode("utf-8")) % SHARDS


def time_buckets(ms: int) -> tuple[TimeKey, ...]:
    """The (level, bucket) a time is counted under at each level (floor division, so a
    negative time — a `ConversationStarted` stored after the qualifying score — counts in
    order too)."""
    return tuple((level, ms >> (TIME_BITS * level)) for level in range(TIME_LEVELS))


@dataclass(frozen=True, slots=True)
class StreamFacts:
    """What one conversation contributes to the metrics (`domain.analytics._Stream`,
    folded in seq order). `reached` is sorted so equal facts compare and store equal."""

    started_at_ms: int | None = None
    prospect_messages: int = 0
    qualified_at_ms: int | None = None
    ending: Ending | None = None
    first_from_state: str | None = None
    current_state: str | None = None
    reached: tuple[str, ...] = ()
    quotes_issued: int = 0
    quotes_revised: int = 0
    quotes_superseded: int = 0

    @property
    def installation(self) -> str:
        """The installation the conversation belongs to ("" the first: no mark)."""
        for mark in self.reached:
            if mark.startswith(INSTALLATION_MARK):
                return mark.removeprefix(INSTALLATION_MARK)
        return ""

    @property
    def qualification_ms(self) -> int | None:
        """Time to qualify, for a started conversation that qualified; else None."""
        if self.started_at_ms is None or self.qualified_at_ms is None:
            return None
        return self.qualified_at_ms - self.started_at_ms


NO_FACTS = StreamFacts()


def fold_facts(facts: StreamFacts, envelope: EventEnvelope) -> StreamFacts:
    """`facts` after one more event of the conversation (events come in seq order)."""
    return fold_events(facts, (envelope,))[0]


class Step(NamedTuple):
    """One event as the fold reads it (`fold_step`): its kind and the few values the fold
    takes from it. A commit's steps, not its events, cross to SQLite's writer: a tuple of
    strings pickles in a microsecond, an event model in about fifteen (issue 18)."""

    kind: str
    at_ms: int = 0
    first: str | None = None
    second: str | None = None
    third: str | None = None


MESSAGE, ADVANCED, QUALIFIED, STARTED, CLOSED = (
    "message",
    "advanced",
    "qualified",
    "started",
    "closed",
)
ABANDONED, REOPENED, ISSUED, REVISED, SUPERSEDED = (
    "abandoned",
    "reopened",
    "issued",
    "revised",
    "superseded",
)
MEETING, LOST, ON_BEHALF_STEP = "meeting", "lost", "on_behalf"


def fold_step(envelope: EventEnvelope) -> Step | None:
    """What the fold reads of `envelope`; None for an event that changes no fact."""
    event = envelope.event
    if isinstance(event, ProspectMessageReceived):
        return Step(MESSAGE)
    if isinstance(event, FlowAdvanced):
        return Step(ADVANCED, first=event.from_state, second=event.to_state)
    if isinstance(event, LeadScored):
        if event.qualified and event.subject == "conversation":
            return Step(QUALIFIED, envelope.at_ms)
        return None
    if isinstance(event, ConversationStarted):
        return Step(
            STARTED,
            envelope.at_ms,
            source_label(event),
            envelope.policy_version,
            event.installation or None,
        )
    if isinstance(event, ConversationClosed):
        return Step(CLOSED, first=event.outcome)
    if isinstance(event, ConversationAbandoned):
        return Step(ABANDONED)
    if isinstance(event, ConversationReopened):
        return Step(REOPENED)
    if isinstance(event, QuoteIssued):
        return Step(ISSUED, first=event.quote.quote_id)
    if isinstance(event, QuoteRevised):
        return Step(REVISED)
    if isinstance(event, QuoteSuperseded):
        return Step(SUPERSEDED)
    if isinstance(event, MeetingRequested):
        return Step(MEETING)
    if isinstance(event, DealMarked | TicketResolved):
        return Step(LOST, first=event.reason) if event.outcome == "lost" and event.reason else None
    if isinstance(event, QuoteAccepted) and event.on_behalf:
        return Step(ON_BEHALF_STEP)
    return None


def fold_steps_of(events: Iterable[EventEnvelope]) -> tuple[Step, ...]:
    """The steps of a conversation's next events, in order."""
    return tuple(step for envelope in events if (step := fold_step(envelope)) is not None)


def fold_events(
    facts: StreamFacts, events: Iterable[EventEnvelope]
) -> tuple[StreamFacts, tuple[str, ...]]:
    """The facts after `events` (one conversation's next events, in seq order), and the
    quote ids they issue."""
    return fold_steps(facts, fold_steps_of(events))


def fold_steps(facts: StreamFacts, steps: Iterable[Step]) -> tuple[StreamFacts, tuple[str, ...]]:
    """`fold_events` on the events' steps. Locals, not a `replace` per event: this runs
    inside the writer's transaction for every commit."""
    started, messages, qualified = (
        facts.started_at_ms,
        facts.prospect_messages,
        facts.qualified_at_ms,
    )
    ending, first, current = facts.ending, facts.first_from_state, facts.current_state
    reached, advanced = facts.reached, facts.first_from_state is not None
    issued, revised, superseded = (
        facts.quotes_issued,
        facts.quotes_revised,
        facts.quotes_superseded,
    )
    quotes: list[str] = []
    for step in steps:
        kind = step.kind
        if kind == MESSAGE:
            messages += 1
        elif kind == ADVANCED:
            if not advanced:
                first, advanced = step.first, True
            current = step.second
            if current not in reached:
                reached = tuple(sorted((*reached, cast(str, current))))
        elif kind == QUALIFIED:
            if qualified is None:
                qualified = step.at_ms
        elif kind == STARTED:
            started = step.at_ms
            marks: tuple[str, ...] = (
                SOURCE_MARK + cast(str, step.first),
                POLICY_MARK + cast(str, step.second),
            )
            if step.third and not started_before(reached):
                marks += (INSTALLATION_MARK + step.third,)
            if any(mark not in reached for mark in marks):
                reached = tuple(sorted({*reached, *marks}))
        elif kind == CLOSED:
            ending = cast(Ending, step.first)
        elif kind == ABANDONED:
            ending = "abandoned"
        elif kind == REOPENED:
            ending = None  # open again: the prospect who left wrote again
        elif kind == ISSUED:
            quotes.append(cast(str, step.first))
            issued += 1
        elif kind == REVISED:
            revised += 1
        elif kind == SUPERSEDED:
            superseded += 1
        elif kind == MEETING and MEETING_MARK not in reached:
            reached = tuple(sorted((*reached, MEETING_MARK)))
        elif kind == LOST:
            kept = (mark for mark in reached if not mark.startswith(LOST_MARK))
            reached = tuple(sorted((*kept, LOST_MARK + cast(str, step.first))))
        elif kind == ON_BEHALF_STEP and ON_BEHALF_MARK not in reached:
            reached = tuple(sorted((*reached, ON_BEHALF_MARK)))
    after = StreamFacts(
        started, messages, qualified, ending, first, current, reached, issued, revised, superseded
    )
    return (facts if after == facts else after), tuple(quotes)


def contribution(facts: StreamFacts) -> dict[CounterKey, int]:
    """The counters one conversation adds: nothing until it has started."""
    if facts.started_at_ms is None:
        return {}
    counts = {(CONVERSATIONS, ""): 1}
    for name, value in (
        ("issued", facts.quotes_issued),
        ("revised", facts.quotes_revised),
        ("superseded", facts.quotes_superseded),
    ):
        if value:
            counts[QUOTES, name] = value
    if MEETING_MARK in facts.reached:
        counts[MEETINGS, "requested"] = 1
    if ON_BEHALF_MARK in facts.reached:
        counts[ON_BEHALF, ""] = 1
    if facts.prospect_messages > 0:
        counts[ENGAGED, ""] = 1
        counts[ENDING, facts.ending or OPEN] = 1
        if facts.ending == "lost":
            for mark in facts.reached:
                if mark.startswith(LOST_MARK):
                    counts[LOST_REASONS, mark.removeprefix(LOST_MARK)] = 1
        for mark in facts.reached:
            if mark.startswith((SOURCE_MARK, POLICY_MARK)):
                counts[SEGMENT_ENGAGED, mark[1:]] = 1
                if facts.ending == "won":
                    counts[SEGMENT_WON, mark[1:]] = 1
    origin = facts.first_from_state
    if not origin:
        counts[NEVER_ADVANCED, ""] = 1
        return counts
    counts[FIRST_FROM, origin] = 1
    counts[REACHED, origin] = 1
    for state in facts.reached:
        if not state.startswith("+"):  # the marks above are stages, not flow states
            counts[REACHED, state] = 1
    counts[CURRENT, facts.current_state or origin] = 1
    return counts


@dataclass(frozen=True, slots=True)
class StreamChange:
    """What a batch of one conversation's events changes in the projections."""

    before: StreamFacts
    after: StreamFacts
    counter_deltas: dict[ScopedCounter, int]
    """The counters' change, each in its installation's."""
    quotes: tuple[str, ...]
    """Quote ids issued by these events, in order."""
    time_deltas: dict[ScopedTime, int] = field(default_factory=dict)
    """The counted qualification times' change (`time_buckets`): -1 at the old time's
    buckets, +1 at the new one's (a time changes when a late `ConversationStarted` moves
    the start, or appears when the conversation qualifies)."""

    @property
    def changed(self) -> bool:
        return self.before != self.after


def advance(before: StreamFacts, events: Iterable[EventEnvelope]) -> StreamChange:
    """Fold a conversation's next events; the counters move by the contribution's change."""
    return advance_steps(before, fold_steps_of(events))


def advance_steps(before: StreamFacts, steps: Iterable[Step]) -> StreamChange:
    """`advance` on the events' steps (`fold_step`)."""
    after, quotes = fold_steps(before, steps)
    deltas: dict[ScopedCounter, int] = {}
    times: dict[ScopedTime, int] = {}
    if after != before:
        old, new = scoped_contribution(before), scoped_contribution(after)
        for key in old.keys() | new.keys():
            if (delta := new.get(key, 0) - old.get(key, 0)) != 0:
                deltas[key] = delta
        was, now = before.qualification_ms, after.qualification_ms
        if was != now or before.installation != after.installation:
            for bucket in () if was is None else scoped_buckets(before.installation, was):
                times[bucket] = times.get(bucket, 0) - 1
            for bucket in () if now is None else scoped_buckets(after.installation, now):
                times[bucket] = times.get(bucket, 0) + 1
            times = {key: delta for key, delta in times.items() if delta}
    return StreamChange(before, after, deltas, quotes, times)


def scoped_contribution(facts: StreamFacts) -> dict[ScopedCounter, int]:
    """`contribution`, each counter in the conversation's installation."""
    installation = facts.installation
    return {(installation, kind, name): n for (kind, name), n in contribution(facts).items()}


def scoped_buckets(installation: str, ms: int) -> tuple[ScopedTime, ...]:
    """`time_buckets` in an installation's tree."""
    return tuple((installation, level, bucket) for level, bucket in time_buckets(ms))


def started_before(reached: tuple[str, ...]) -> bool:
    """Whether an earlier `ConversationStarted` already marked the conversation: the first
    one says which installation it belongs to."""
    return any(mark.startswith(POLICY_MARK) for mark in reached)


def is_projected(envelope: EventEnvelope) -> bool:
    return envelope.event.type in PROJECTED_TYPES


@dataclass(slots=True)
class Projection:
    """The whole projection in memory: `MemoryStore` keeps one, and a rebuild folds the
    log into one before writing it out. `quotes` keeps the first conversation that issued
    an id, as `domain.audit.find_quote_conversation` finds it in log order."""

    facts: dict[str, StreamFacts] = field(default_factory=dict)
    counts: Counter[ScopedCounter] = field(default_factory=Counter)
    quotes: dict[str, str] = field(default_factory=dict)
    times: dict[str, list[int]] = field(default_factory=dict)
    """By installation, one time to qualify per qualified conversation, kept ascending
    (`bisect`), so the percentiles read their order statistics by index."""

    def apply(self, conversation_id: str, events: Sequence[EventEnvelope]) -> StreamChange:
        change = advance(self.facts.get(conversation_id, NO_FACTS), events)
        if change.changed:
            self.facts[conversation_id] = change.after
            before, after = change.before, change.after
            was, now = before.qualification_ms, after.qualification_ms
            if was != now or before.installation != after.installation:
                if was is not None:
                    old = self.times[before.installation]
                    del old[bisect.bisect_left(old, was)]
                if now is not None:
                    bisect.insort(self.times.setdefault(after.installation, []), now)
        for key, delta in change.counter_deltas.items():
            self.counts[key] += delta
            if self.counts[key] == 0:
                del self.counts[key]
        for quote_id in change.quotes:
            self.quotes.setdefault(quote_id, conversation_id)
        return change

    def copy(self) -> Projection:
        """A projection that applying events to leaves this one as it is (the facts are
        frozen; the containers are copied)."""
        return Projection(
            facts=dict(self.facts),
            counts=Counter(self.counts),
            quotes=dict(self.quotes),
            times={installation: list(times) for installation, times in self.times.items()},
        )

    @classmethod
    def of(cls, events: Iterable[EventEnvelope]) -> Projection:
        """Fold a log in append order (each conversation's events in seq order)."""
        projection = cls()
        for envelope in events:
            if is_projected(envelope):
                projection.apply(envelope.conversation_id, (envelope,))
        return projection

    def qualified(self) -> dict[str, int]:
        """Time to qualify by conversation, for the qualified ones."""
        return {cid: t for cid, f in self.facts.items() if (t := f.qualification_ms) is not None}

    def qualification_times(self, installation: str = "") -> list[int]:
        """One time to qualify per qualified conversation of `installation`, ascending."""
        return list(self.times.get(installation, ()))

    def time_to_qualify(self, installation: str = "") -> Percentiles:
        """The percentiles of `installation`'s times, reading only the order statistics
        they need."""
        times = self.times.get(installation, [])
        return percentiles_at(len(times), times.__getitem__)

    def count_table(self, installation: str = "") -> dict[str, dict[str, int]]:
        """`installation`'s counters as kind → name → value."""
        return count_table(
            ((kind, name), n)
            for (inst, kind, name), n in self.counts.items()
            if inst == installation
        )


ShardedCounts = dict[tuple[str, str, str, int], int]
"""(installation, kind, name, shard) → value."""
CountedTimes = dict[ScopedTime, int]


def sharded_rows(facts: Mapping[str, StreamFacts]) -> tuple[ShardedCounts, CountedTimes]:
    """The stored counters, (installation, kind, name, shard) → value, and counted times,
    (installation, level, bucket) → how many, of these conversations' facts: what a
    rebuild or the migration that creates them writes, and what the commits keep moving
    since."""
    counts: ShardedCounts = {}
    times: CountedTimes = {}
    for conversation_id, one in facts.items():
        shard = shard_of(conversation_id)
        for (inst, kind, name), value in scoped_contribution(one).items():
            key = (inst, kind, name, shard)
            counts[key] = counts.get(key, 0) + value
        if (ms := one.qualification_ms) is not None:
            for bucket in scoped_buckets(one.installation, ms):
                times[bucket] = times.get(bucket, 0) + 1
    return counts, times


def count_table(rows: Iterable[tuple[CounterKey, int]]) -> dict[str, dict[str, int]]:
    """Counters as kind → name → value, without zeros (a row may be kept at 0)."""
    table: dict[str, dict[str, int]] = {}
    for (kind, name), value in sorted(rows):
        if value:
            table.setdefault(kind, {})[name] = value
    return table


# -- reading: the metrics from the counters ------------------------------------------------


def metrics_from_projection(
    counts: Mapping[str, Mapping[str, int]],
    time_to_qualify: Percentiles,
    *,
    states: Sequence[str] = (),
    start: str | None = None,
) -> Metrics:
    """The `Metrics` that `compute_metrics` would give for the log these counters and
    qualification percentiles fold, with `states` and `start` meaning what they mean there."""

    def count(kind: str, name: str = "") -> int:
        return counts.get(kind, {}).get(name, 0)

    funnel, current = _funnel(counts, states, start)
    return metrics_from_counts(
        conversations=count(CONVERSATIONS),
        engaged=count(ENGAGED),
        won=count(ENDING, "won"),
        lost=count(ENDING, "lost"),
        abandoned=count(ENDING, "abandoned"),
        still_open=count(ENDING, OPEN),
        qualification_ms=(),
        time_to_qualify=time_to_qualify,
        funnel=funnel,
        current=current,
        quotes=QuoteCounts(
            issued=count(QUOTES, "issued"),
            revised=count(QUOTES, "revised"),
            superseded=count(QUOTES, "superseded"),
        ),
        meetings_requested=count(MEETINGS, "requested"),
        lost_reasons=counts.get(LOST_REASONS, {}),
        accepted_on_behalf=count(ON_BEHALF),
    )


def _funnel(
    counts: Mapping[str, Mapping[str, int]], states: Sequence[str], start: str | None
) -> tuple[dict[str, int], dict[str, int]]:
    if start is None:
        firsts = {name: n for name, n in counts.get(FIRST_FROM, {}).items() if n > 0}
        # The most common first state, ties broken by name (as domain.analytics does).
        seen = min(firsts, key=lambda name: (-firsts[name], name)) if firsts else None
        start = seen or (states[0] if states else "start")
    reached: Counter[str] = Counter({k: v for k, v in counts.get(REACHED, {}).items() if v > 0})
    now: Counter[str] = Counter({k: v for k, v in counts.get(CURRENT, {}).items() if v > 0})
    unplaced = counts.get(NEVER_ADVANCED, {}).get("", 0)
    if unplaced > 0:
        reached[start] += unplaced
        now[start] += unplaced
    extra = sorted(set(reached) - set(states), key=lambda name: (-reached[name], name))
    order = [*dict.fromkeys(states), *extra]
    return {name: reached[name] for name in order}, {name: now[name] for name in order}


def differences(old: Projection, new: Projection) -> int:
    """How many stored rows differ between two projections: conversations' facts and quote
    index entries (the counters' rows are compared by `counter_differences`). A
    conversation whose facts are empty contributes nothing, with or without a row: a stream
    without a start whose only outcome was undone (`ConversationReopened` after
    `ConversationAbandoned`) is empty again, whether folded one event at a time or in one
    commit."""
    return _differing(old.facts, new.facts, NO_FACTS) + _differing(old.quotes, new.quotes)


def counter_differences(
    stored_counts: Mapping[tuple[str, str, str, int], int],
    stored_times: Mapping[ScopedTime, int],
    facts: Mapping[str, StreamFacts],
) -> int:
    """How many stored counter and counted-time rows differ from what `facts` add up to
    (rows at 0 count as absent): the SQL stores' share of a rebuild's `changed`."""
    counts, times = sharded_rows(facts)
    return _differing(_nonzero(stored_counts), counts, 0) + _differing(
        _nonzero(stored_times), times, 0
    )


def memory_counter_differences(old: Projection, new: Projection) -> int:
    """`counter_differences` for `MemoryStore`, whose counters are not sharded."""
    return _differing(_nonzero(old.counts), _nonzero(new.counts), 0) + _differing(
        _counted(old.times), _counted(new.times), 0
    )


def _counted(times: Mapping[str, list[int]]) -> Counter[tuple[str, int]]:
    return Counter((inst, ms) for inst, values in times.items() for ms in values)


def _nonzero(rows: Mapping[K, int]) -> dict[K, int]:
    return {key: value for key, value in rows.items() if value}


def _differing(a: Mapping[K, V], b: Mapping[K, V], absent: V | None = None) -> int:
    return sum(1 for key in a.keys() | b.keys() if a.get(key, absent) != b.get(key, absent))
