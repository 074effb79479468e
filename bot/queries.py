"""Answers to queries a decision asked for (audits, metrics): the reads `decide` cannot do.

The domain has already authorised the query (auditors only for audits) and recorded the
access; this module reads the store, builds the report with the pure domain functions and
returns replies for the requester. The runtime enqueues them after the decision's commit
(`bot.runtime`: the acknowledgement never waits for these reads).

Neither read parses the log: the metrics come from the projections the store keeps in
step with the events (`storage.projections`: each conversation's contribution to the
counters, and its time to qualify), and an audit reads one conversation's stream — a quote
id is found through the store's quote index, not by scanning every event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal

from bot import charts
from bot.report_reads import projected_segments
from domain.analytics import Metrics, render_metrics
from domain.audit import AuditReport, audit_card, audit_conversation, audit_quote
from domain.audit_plain import HotCalibration
from domain.audit_summary import hot_calibration
from domain.cards import Card, Reply, ReplyImage
from domain.decision import Query
from domain.errors import DomainError, PolicyError
from domain.events import EventEnvelope
from domain.installations import visible_to
from domain.metrics_chart import Segment, metrics_chart
from domain.policy import Policy, policy_from_json
from storage.ports import Store
from storage.projections import metrics_from_projection

log = logging.getLogger(__name__)

CHART_TEXT = "Sales metrics chart"
"""The chart reply's text: its caption where the picture shows, its fallback where not."""


async def load_audit(store: Store, target: str, installation: str | None = None) -> AuditReport:
    """A conversation (or lead) by id, else a quote by id; DomainError when neither exists.
    Reads one conversation's events only (and the policies they were decided under).

    `installation`: the asker's (`Query.installation`); a conversation of another
    installation is answered exactly as one that does not exist (`domain.installations`).
    None: every installation's (the operator's command line)."""
    missing = DomainError(f"No conversation, lead or quote with id {target!r}.")
    events = await store.load(target)
    if not events:
        conversation_id = await store.quote_conversation(target)
        if conversation_id is None:
            raise missing
        events = await store.load(conversation_id)
    if installation is not None and not visible_to(installation, events):
        raise missing
    if events[0].conversation_id == target:
        return audit_conversation(target, events, await _calibration(store, events))
    return audit_quote(target, events, await _calibration(store, events))


async def _calibration(store: Store, events: Sequence[EventEnvelope]) -> HotCalibration:
    """A score's calibrated hot probability under the policy that decided it, read from the
    policy texts the store keeps; a policy it lacks (or cannot read) claims none."""
    policies: dict[str, Policy | None] = {}
    for version in {env.policy_version for env in events}:
        text = await store.get_policy(version)
        try:
            policies[version] = None if text is None else policy_from_json(text)
        except PolicyError:
            policies[version] = None

    def calibrate(version: str, score: Decimal) -> Decimal | None:
        policy = policies.get(version)
        return None if policy is None else hot_calibration(policy, score)

    return calibrate


async def answer_query(query: Query, store: Store, policy: Policy) -> Sequence[Reply]:
    if query.kind == "audit":
        try:
            report = await load_audit(store, query.target, query.installation)
        except DomainError as exc:
            return [Reply(audience=query.audience, text=str(exc))]
        card = audit_card(report)
        return [Reply(audience=query.audience, text=card.title, card=card)]
    metrics, counts = await _metrics_and_counts(store, policy, query.installation)
    lines = render_metrics(metrics)
    card = Card(kind="notice", title="Sales metrics", lines=lines, ref="metrics")
    replies = [
        Reply(audience=query.audience, text=lines[0] if lines else "No data yet.", card=card)
    ]
    try:
        segments = await projected_segments(store, counts)
    except Exception:
        log.exception("the metrics by persona and lead source could not be read")
        segments = ()
    # The chart's bootstrap resamples the times themselves: a read of its own (linear in
    # the distinct times, as the bootstrap is in the times), which the card never waits on.
    qualification_ms = await store.qualification_times(query.installation)
    chart = await metrics_chart_reply(query, metrics, qualification_ms, segments)
    if chart is not None:
        replies.append(chart)
    return replies


async def metrics_chart_reply(
    query: Query,
    metrics: Metrics,
    qualification_ms: Sequence[int],
    segments: Sequence[Segment] = (),
) -> Reply | None:
    """The chart that follows the metrics card, as a second reply with the PNG (None, and
    the card alone, if drawing failed: the numbers matter more than the picture).

    Drawn in a worker thread (`asyncio.to_thread`): about 0.2 s of CPU (half a second more
    the first time, importing matplotlib) that must not hold up the event loop, where other
    conversations' acknowledgements are waiting. The PNG travels in the outbox payload
    (base64, under ~150 KB): a retry or a restart sends exactly the picture of the moment it
    was asked for, with no re-reading or re-drawing at send time."""
    try:
        image = await asyncio.to_thread(_draw_chart, metrics, qualification_ms, segments)
    except Exception:
        log.exception("the metrics chart could not be drawn; the card is sent without it")
        return None
    return Reply(audience=query.audience, text=CHART_TEXT, image=image)


def _draw_chart(
    metrics: Metrics, qualification_ms: Sequence[int], segments: Sequence[Segment]
) -> ReplyImage:
    """Runs in the worker thread: the chart's data (its bootstrap) and its drawing, with
    the row by persona and lead source (`bot.report_reads.projected_segments`)."""
    return charts.chart_image(metrics_chart(metrics, qualification_ms, segments))


async def load_metrics(store: Store, policy: Policy, installation: str = "") -> Metrics:
    """Metrics of one installation's conversations ("" the first), from the projections:
    what `compute_metrics` would say after reading their events, at the cost of reading the
    counters (the same at 1k events as at 1M)."""
    metrics, _ = await _metrics_and_counts(store, policy, installation)
    return metrics


async def _metrics_and_counts(
    store: Store, policy: Policy, installation: str = ""
) -> tuple[Metrics, dict[str, dict[str, int]]]:
    """The metrics of one installation's conversations and the counters they came from
    (the segments by persona and lead source are read from them too)."""
    projection = await store.metrics_projection(installation)
    metrics = metrics_from_projection(
        projection.counts,
        projection.time_to_qualify,
        states=policy.flow.states,
        start=policy.flow.start,
    )
    return metrics, projection.counts


def query_answerer(policy: Policy) -> Callable[[Query, Store], Awaitable[Sequence[Reply]]]:
    """The runtime's `answer_query`, bound to the policy whose flow names the funnel states."""

    async def answer(query: Query, store: Store) -> Sequence[Reply]:
        return await answer_query(query, store, policy)

    return answer
