"""What `salesbot report` shows, computed before anything is drawn: `ReportData`.

The HTML page and its pictures (`bot.report_html`, `bot.report_charts`) are functions of this
value only, so every number in the report can be checked here without parsing HTML, and
`salesbot schema export` publishes its shape (`report.schema.json`). Pure: the caller reads
the store and passes each conversation's events.

**The window.** A conversation is in the report when its `ConversationStarted` is at or
after `since_ms` and before `until_ms` (either bound may be open). Only its events before
`until_ms` count, so the report of a closed window says the same thing next month: a ticket
claimed after the window ends is unclaimed in it, a deal won later is open.

**The sections** (docs/report.md says each in words):

- the metrics and their chart, as `/metrics` computes them (`domain.analytics`,
  `domain.metrics_chart`), over the window's conversations, with conversion by persona and
  by lead source;
- scores: each conversation's latest lead score (`LeadScored`, subject "conversation"),
  counted by band and binned by value (`ScoreBin`);
- what drives scores: Σ w×x per named feature over those latest scores (the exact recorded
  contributions), the largest positive and negative totals; the intercept (the same for
  every lead) is shown apart;
- objections: each message an objection class was read in (`ObjectionClassified` under a
  lexicon policy, `MessageRead.objection` under the reader), and the share of them that
  escalated to a person (the classifier's `escalate`, the reader's `needs_human`);
- tickets by reason: opened, claimed, and the time from opening to the first claim
  (p50/p90, type 7 like the metrics);
- the narrative scatter (the notebook's §12): each conversation's latest narrative
  assessment, resonance against penalised urgency, with the raw urgency where the fairness
  penalty lowered it;
- the fairness counterfactual (`domain.fairness_report`) over the window's leads, under the
  report policy's knobs;
- the flow's traffic: how many conversations took each transition of the report policy's
  flow (`FlowAdvanced`), and any transition taken that the policy no longer has.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import ROUND_FLOOR, Decimal
from typing import Literal

from domain import GENERATOR
from domain.analytics import Metrics, compute_metrics, percentiles
from domain.events import (
    ConversationStarted,
    CrmSyncRequested,
    EventEnvelope,
    FlowAdvanced,
    LeadScored,
    MessageRead,
    NarrativeAssessed,
    ObjectionClassified,
    TicketClaimed,
    TicketOpened,
)
from domain.fairness_report import FairnessReport, LeadSample, fairness_report, lead_sample
from domain.feature_words import feature_words
from domain.flow import FlowSpec, Transition, _drawing_order, _label
from domain.metrics_chart import MetricsChart, conversion_segments, metrics_chart, segment_facts
from domain.model import Frozen
from domain.policy import Policy
from domain.presenters import reason_text
from domain.scoring import INTERCEPT, Band, LeadScore

REPORT_SCHEMA_VERSION: Literal[1] = 1
TOP_FEATURES = 10
"""Features listed on each side (driving scores up, driving them down)."""
SCORE_BINS = 10
"""About this many bins in the score histogram (a round width is chosen)."""
NO_CLASS = "sensitive terms (no class)"
"""The objection row for messages escalated on sensitive terms without a class."""
BANDS: tuple[Band, ...] = ("hot", "warm", "cold")


class BandCount(Frozen):
    """Leads whose latest score is in `band`, and their share of the scored leads."""

    band: Band
    leads: int
    share: float | None


class ScoreBin(Frozen):
    """Latest scores in [low, high) (the last bin includes `high`), by band."""

    low: Decimal
    high: Decimal
    hot: int = 0
    warm: int = 0
    cold: int = 0


class FeatureTotal(Frozen):
    """Σ w×x of one feature over the leads' latest scores; `leads` it contributed to."""

    feature: str
    words: str
    total: Decimal
    leads: int


class Contributions(Frozen):
    """What drives scores: the features with the largest positive and negative totals."""

    leads: int
    positive: tuple[FeatureTotal, ...]
    negative: tuple[FeatureTotal, ...]
    intercept_total: Decimal
    features: int
    """How many distinct features contributed anything (the lists show the extremes)."""


class ObjectionClass(Frozen):
    """Messages read as one objection class, how many escalated to a person, the rate."""

    objection: str
    messages: int
    conversations: int
    escalated: int
    escalation_rate: float | None


class TicketReason(Frozen):
    """Tickets opened for one reason, how many were claimed, and the time to claim."""

    reason: str
    words: str
    opened: int
    claimed: int
    claim_p50_ms: int | None
    claim_p90_ms: int | None


class CrmDelivery(Frozen):
    """Where one requested CRM write stands in the outbox (read by the caller, which knows
    the store): `status` pending, in_flight, sent or dead; when it was enqueued and sent."""

    status: str
    created_at_ms: int
    sent_at_ms: int | None = None


class CrmArtifactSync(Frozen):
    """The CRM writes of one kind (deal, quote, note) the window's decisions requested, and
    where they stand: sent (with the lag from decision to send), waiting, or failed."""

    artifact: str
    requested: int
    sent: int
    waiting: int
    failed: int
    lag_p50_ms: int | None
    lag_p90_ms: int | None


class CrmSync(Frozen):
    """The CRM sync over the window (`[crm]`): by artifact, and the oldest write still
    waiting (its age at `as_of_ms`: how far the CRM is behind)."""

    artifacts: tuple[CrmArtifactSync, ...]
    oldest_waiting_ms: int | None


class NarrativePoint(Frozen):
    """One conversation on the narrative scatter: its latest assessment."""

    key: str
    """`c1`, `c2`… in the order the conversations started (the notebook's labels)."""
    conversation_id: str
    company: str
    resonance: Decimal
    raw_urgency: Decimal
    penalized_urgency: Decimal
    credit: int | None
    reason_code: str

    @property
    def penalized(self) -> bool:
        return self.penalized_urgency < self.raw_urgency


class FlowEdge(Frozen):
    """One transition and its traffic in the window: conversations that took it (each
    once) and how many times it was taken in all."""

    source: str
    to: str
    on: str
    guard: str | None = None
    label: str
    conversations: int
    taken: int
    in_policy: bool = True


class FlowPair(Frozen):
    """All transitions from one state to another together, as the picture draws them:
    conversations that went from `source` to `to` at least once, times in all, and the
    labels of the transitions they took."""

    source: str
    to: str
    conversations: int
    taken: int
    labels: tuple[str, ...]
    in_policy: bool = True


class FlowTraffic(Frozen):
    """The report policy's flow with the window's traffic on every transition."""

    start: str
    started: int
    """Conversations that entered the flow (the start arrow)."""
    states: tuple[str, ...]
    terminal: tuple[str, ...]
    handoff: str
    edges: tuple[FlowEdge, ...]
    pairs: tuple[FlowPair, ...]


class ReportData(Frozen):
    """Everything `salesbot report` shows (the module docstring), with its versions."""

    schema_version: Literal[1] = REPORT_SCHEMA_VERSION
    generator_version: str = GENERATOR
    store: str
    policy_name: str
    policy_version: str
    since_ms: int | None
    until_ms: int | None
    as_of_ms: int | None
    """The time of the latest event counted (None for an empty window)."""
    conversations: int
    leads: int
    metrics: Metrics
    chart: MetricsChart
    bands: tuple[BandCount, ...]
    score_bins: tuple[ScoreBin, ...]
    contributions: Contributions
    objections: tuple[ObjectionClass, ...]
    tickets: tuple[TicketReason, ...]
    narrative: tuple[NarrativePoint, ...]
    fairness: FairnessReport | None
    fairness_note: str | None = None
    flow: FlowTraffic
    crm: CrmSync | None = None
    """The CRM writes the window's decisions requested, when there are any."""


def in_window(
    events: Sequence[EventEnvelope], since_ms: int | None, until_ms: int | None
) -> list[EventEnvelope] | None:
    """The conversation's events that count, or None when it is not in the window (or is
    no conversation: a rep's `/lead` or `/metrics` stream)."""
    started = [e.at_ms for e in events if isinstance(e.event, ConversationStarted)]
    if not started:
        return None
    at = min(started)
    if (since_ms is not None and at < since_ms) or (until_ms is not None and at >= until_ms):
        return None
    return [e for e in events if until_ms is None or e.at_ms < until_ms]


def report_data(
    conversations: Iterable[Sequence[EventEnvelope]],
    *,
    policy: Policy,
    store: str,
    persona_of: Callable[[str], str],
    since_ms: int | None = None,
    until_ms: int | None = None,
    crm_deliveries: Mapping[tuple[str, int], CrmDelivery] | None = None,
    now_ms: int | None = None,
) -> ReportData:
    """The report over `conversations` (each one conversation's events, any order), under
    `policy` (its flow, states and fairness knobs), for the window [since_ms, until_ms).
    `crm_deliveries`: the outbox's state of each `crm_sync_requested` (by conversation and
    seq), read at `now_ms`."""
    streams: list[list[EventEnvelope]] = []
    for events in conversations:
        kept = in_window(events, since_ms, until_ms)
        if kept is not None:
            streams.append(sorted(kept, key=lambda e: e.seq))
    streams.sort(key=lambda s: (_started_at(s), s[0].conversation_id if s else ""))
    every = [e for stream in streams for e in stream]
    metrics = compute_metrics(every, states=policy.flow.states, start=policy.flow.start)
    segments = conversion_segments(segment_facts(every), persona_of)
    chart = metrics_chart(metrics, _qualification_ms(streams), segments)
    latest = [score for stream in streams if (score := _latest_score(stream)) is not None]
    fairness, note = _fairness(streams, policy)
    return ReportData(
        store=store,
        policy_name=policy.name,
        policy_version=policy.version,
        since_ms=since_ms,
        until_ms=until_ms,
        as_of_ms=max((e.at_ms for e in every), default=None),
        conversations=len(streams),
        leads=sum(1 for s in streams if _lead_company(s) is not None),
        metrics=metrics,
        chart=chart,
        bands=_bands(latest),
        score_bins=score_bins([s.score for s in latest], [s.band for s in latest]),
        contributions=contributions(latest),
        objections=_objections(streams),
        tickets=_tickets(streams),
        narrative=_narrative(streams),
        fairness=fairness,
        fairness_note=note,
        flow=flow_traffic(policy.flow, streams),
        crm=crm_sync(streams, crm_deliveries or {}, now_ms),
    )


def crm_sync(
    streams: Sequence[Sequence[EventEnvelope]],
    deliveries: Mapping[tuple[str, int], CrmDelivery],
    now_ms: int | None,
) -> CrmSync | None:
    """The window's CRM writes by artifact: sent (lag from the decision to the send),
    waiting (never claimed, or retried), failed (dead-lettered); None without any."""
    requested: dict[str, list[tuple[int, CrmDelivery | None]]] = defaultdict(list)
    for stream in streams:
        for envelope in stream:
            if isinstance(envelope.event, CrmSyncRequested):
                delivery = deliveries.get((envelope.conversation_id, envelope.seq))
                requested[envelope.event.artifact].append((envelope.at_ms, delivery))
    if not requested:
        return None
    rows = []
    waiting_since: list[int] = []
    for artifact in ("deal", "quote", "note"):
        writes = requested.get(artifact, [])
        if not writes:
            continue
        lags = [
            d.sent_at_ms - at
            for at, d in writes
            if d is not None and d.status == "sent" and d.sent_at_ms is not None
        ]
        waiting = [at for at, d in writes if d is None or d.status in ("pending", "in_flight")]
        waiting_since += waiting
        lag = percentiles(lags)
        rows.append(
            CrmArtifactSync(
                artifact=artifact,
                requested=len(writes),
                sent=len(lags),
                waiting=len(waiting),
                failed=sum(1 for _, d in writes if d is not None and d.status == "dead"),
                lag_p50_ms=lag.p50_ms,
                lag_p90_ms=lag.p90_ms,
            )
        )
    oldest = min(waiting_since, default=None)
    return CrmSync(
        artifacts=tuple(rows),
        oldest_waiting_ms=None if oldest is None or now_ms is None else max(0, now_ms - oldest),
    )


def _started_at(stream: Sequence[EventEnvelope]) -> int:
    return min((e.at_ms for e in stream if isinstance(e.event, ConversationStarted)), default=0)


def _lead_company(stream: Sequence[EventEnvelope]) -> str | None:
    """The lead's company ("" when it gave none); None when the conversation is no lead."""
    for envelope in stream:
        if isinstance(envelope.event, ConversationStarted) and envelope.event.lead is not None:
            return envelope.event.lead.company
    return None


def _qualification_ms(streams: Sequence[Sequence[EventEnvelope]]) -> list[int]:
    """Start to the first qualified conversation score, per conversation that qualified (the
    definition of `domain.analytics`)."""
    times = []
    for stream in streams:
        start = _started_at(stream)
        for envelope in stream:
            event = envelope.event
            if (
                isinstance(event, LeadScored)
                and event.subject == "conversation"
                and event.qualified
            ):
                times.append(envelope.at_ms - start)
                break
    return times


def _latest_score(stream: Sequence[EventEnvelope]) -> LeadScore | None:
    scores = [
        e.event.score
        for e in stream
        if isinstance(e.event, LeadScored) and e.event.subject == "conversation"
    ]
    return scores[-1] if scores else None


def _bands(latest: Sequence[LeadScore]) -> tuple[BandCount, ...]:
    counts = Counter(score.band for score in latest)
    total = len(latest)
    return tuple(
        BandCount(
            band=band,
            leads=counts[band],
            share=round(counts[band] / total, 4) if total else None,
        )
        for band in BANDS
    )


def _step(span: Decimal) -> Decimal:
    """A round bin width (1, 2 or 5 × a power of ten) giving about `SCORE_BINS` bins."""
    raw = span / SCORE_BINS
    magnitude = Decimal(1).scaleb(raw.adjusted())
    for multiple in (1, 2, 5, 10):
        if multiple * magnitude >= raw:
            return multiple * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def score_bins(scores: Sequence[Decimal], bands: Sequence[Band]) -> tuple[ScoreBin, ...]:
    """A histogram of `scores` with round edges, each bin counted by band."""
    if not scores:
        return ()
    low, high = min(scores), max(scores)
    step = _step(high - low) if high > low else Decimal(1)
    first = (low / step).to_integral_value(rounding=ROUND_FLOOR) * step
    count = int(((high - first) / step).to_integral_value(rounding=ROUND_FLOOR)) + 1
    tallies: list[Counter[str]] = [Counter() for _ in range(count)]
    for score, band in zip(scores, bands, strict=True):
        index = min(count - 1, int(((score - first) / step).to_integral_value(ROUND_FLOOR)))
        tallies[index][band] += 1
    return tuple(
        ScoreBin(
            low=(first + i * step).normalize() + 0,
            high=(first + (i + 1) * step).normalize() + 0,
            hot=tally["hot"],
            warm=tally["warm"],
            cold=tally["cold"],
        )
        for i, tally in enumerate(tallies)
    )


def contributions(latest: Sequence[LeadScore], top: int = TOP_FEATURES) -> Contributions:
    """Σ w×x per feature over `latest` (exact Decimal sums of the recorded contributions)."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    leads: Counter[str] = Counter()
    intercept = Decimal(0)
    for score in latest:
        for name, value in score.contributions.items():
            if name == INTERCEPT:
                intercept += value
            elif value != 0:
                totals[name] += value
                leads[name] += 1

    def row(name: str) -> FeatureTotal:
        return FeatureTotal(
            feature=name, words=feature_words(name), total=totals[name], leads=leads[name]
        )

    positive = sorted((n for n in totals if totals[n] > 0), key=lambda n: (-totals[n], n))
    negative = sorted((n for n in totals if totals[n] < 0), key=lambda n: (totals[n], n))
    return Contributions(
        leads=len(latest),
        positive=tuple(row(n) for n in positive[:top]),
        negative=tuple(row(n) for n in negative[:top]),
        intercept_total=intercept,
        features=len(totals),
    )


def _objections(streams: Sequence[Sequence[EventEnvelope]]) -> tuple[ObjectionClass, ...]:
    messages: Counter[str] = Counter()
    escalated: Counter[str] = Counter()
    conversations: dict[str, set[str]] = defaultdict(set)
    for stream in streams:
        for envelope in stream:
            event = envelope.event
            if isinstance(event, ObjectionClassified):
                name = event.result.objection or NO_CLASS
                up = event.result.escalate
            elif isinstance(event, MessageRead) and event.objection is not None:
                name, up = event.objection, event.needs_human
            else:
                continue
            messages[name] += 1
            escalated[name] += up
            conversations[name].add(envelope.conversation_id)
    return tuple(
        ObjectionClass(
            objection=name,
            messages=messages[name],
            conversations=len(conversations[name]),
            escalated=escalated[name],
            escalation_rate=round(escalated[name] / messages[name], 4),
        )
        for name in sorted(messages, key=lambda n: (-messages[n], n))
    )


def _tickets(streams: Sequence[Sequence[EventEnvelope]]) -> tuple[TicketReason, ...]:
    opened: dict[str, tuple[str, int]] = {}  # ticket key → (reason, opened at)
    claimed: dict[str, int] = {}
    for stream in streams:
        for envelope in stream:
            event = envelope.event
            if isinstance(event, TicketOpened) and event.ticket_key not in opened:
                opened[event.ticket_key] = (event.reason, envelope.at_ms)
            elif isinstance(event, TicketClaimed) and event.ticket_key not in claimed:
                claimed[event.ticket_key] = envelope.at_ms
    by_reason: dict[str, list[int | None]] = defaultdict(list)
    for key, (reason, at) in opened.items():
        by_reason[reason].append(claimed[key] - at if key in claimed else None)
    rows = []
    for reason in sorted(by_reason, key=lambda r: (-len(by_reason[r]), r)):
        waits = [w for w in by_reason[reason] if w is not None]
        found = percentiles(waits)
        rows.append(
            TicketReason(
                reason=reason,
                words=reason_text(reason),
                opened=len(by_reason[reason]),
                claimed=len(waits),
                claim_p50_ms=found.p50_ms,
                claim_p90_ms=found.p90_ms,
            )
        )
    return tuple(rows)


def _narrative(streams: Sequence[Sequence[EventEnvelope]]) -> tuple[NarrativePoint, ...]:
    points: list[NarrativePoint] = []
    for stream in streams:
        audits = [e.event.audit for e in stream if isinstance(e.event, NarrativeAssessed)]
        if not audits:
            continue
        audit = audits[-1]
        conversation_id = stream[0].conversation_id
        points.append(
            NarrativePoint(
                key=f"c{len(points) + 1}",
                conversation_id=conversation_id,
                company=_lead_company(stream) or "",
                resonance=audit.resonance,
                raw_urgency=audit.raw_urgency,
                penalized_urgency=audit.penalized_urgency,
                credit=audit.credit,
                reason_code=audit.reason_code,
            )
        )
    return tuple(points)


def _fairness(
    streams: Sequence[Sequence[EventEnvelope]], policy: Policy
) -> tuple[FairnessReport | None, str | None]:
    if policy.pursuit is None:
        return None, (
            f"Policy {policy.name} has no [pursuit]: nothing is pursued now, so the penalty "
            "changes nothing to compare (`salesbot fairness --min-urgency X` asks what it would)."
        )
    samples: list[LeadSample] = []
    for stream in streams:
        if stream and (sample := lead_sample(stream[0].conversation_id, stream)) is not None:
            samples.append(sample)
    report = fairness_report(
        samples,
        policy_version=policy.version,
        urgency_weights=dict(policy.narrative.urgency_weights),
        fairness=policy.fairness,
        min_urgency=policy.pursuit.min_urgency,
    )
    return report, None


def _edge_key(source: str, to: str, on: str, guard: str | None) -> tuple[str, str, str, str]:
    return (source, to, on, guard or "")


def flow_traffic(spec: FlowSpec, streams: Sequence[Sequence[EventEnvelope]]) -> FlowTraffic:
    """Each transition of `spec` with the window's traffic, in the drawing order of
    `salesbot flow`; transitions taken that `spec` lacks (decided under another policy)
    follow, marked `in_policy=False`."""
    taken: Counter[tuple[str, str, str, str]] = Counter()
    who: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
    for stream in streams:
        for envelope in stream:
            event = envelope.event
            if isinstance(event, FlowAdvanced):
                key = _edge_key(event.from_state, event.to_state, event.trigger, event.guard)
                taken[key] += 1
                who[key].add(envelope.conversation_id)

    def edge(t: Transition, in_policy: bool = True) -> FlowEdge:
        key = _edge_key(t.source, t.to, t.on, t.guard)
        return FlowEdge(
            source=t.source,
            to=t.to,
            on=t.on,
            guard=t.guard,
            label=_label(t),
            conversations=len(who[key]),
            taken=taken[key],
            in_policy=in_policy,
        )

    ordered = _drawing_order(spec)
    known = {_edge_key(t.source, t.to, t.on, t.guard) for t in ordered}
    others = [
        Transition.model_validate({"from": s, "to": to, "on": on, "guard": guard or None})
        for s, to, on, guard in sorted(k for k in taken if k not in known)
    ]
    edges = tuple(edge(t) for t in ordered) + tuple(edge(t, False) for t in others)
    pairs: dict[tuple[str, str], list[FlowEdge]] = {}
    for found in edges:
        pairs.setdefault((found.source, found.to), []).append(found)
    return FlowTraffic(
        start=spec.start,
        started=len(streams),
        states=tuple(spec.states),
        terminal=tuple(spec.terminal),
        handoff=spec.handoff,
        edges=edges,
        pairs=tuple(
            FlowPair(
                source=source,
                to=to,
                conversations=len(
                    set().union(*(who[_edge_key(e.source, e.to, e.on, e.guard)] for e in group))
                ),
                taken=sum(e.taken for e in group),
                labels=tuple(e.label for e in group if e.taken),
                in_policy=any(e.in_policy for e in group),
            )
            for (source, to), group in pairs.items()
        ),
    )


def persona_lookup(names: Mapping[str, str]) -> Callable[[str], str]:
    """`persona_of` from a version → persona mapping (unknown versions by short hash)."""
    return lambda version: names.get(version, f"policy {version[:12]}")
