"""Answers to queries a decision asked for (audits, metrics): the reads `decide` cannot do.

The domain has already authorised the query (auditors only for audits) and recorded the
access; this module reads the store, builds the report with the pure domain functions and
returns replies for the requester. The runtime commits them with the decision.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from domain.analytics import Metrics, compute_metrics, render_metrics
from domain.audit import (
    AuditReport,
    audit_conversation,
    audit_quote,
    find_quote_conversation,
    render_audit,
)
from domain.cards import Card, Reply
from domain.decision import Query
from domain.errors import DomainError
from domain.policy import Policy
from storage.ports import Store


async def load_audit(store: Store, target: str) -> AuditReport:
    """A conversation (or lead) by id, else a quote by id; DomainError when neither exists."""
    events = await store.load(target)
    if events:
        return audit_conversation(target, events)
    conversation_id = find_quote_conversation(target, [env async for env in store.iterate_all()])
    if conversation_id is None:
        raise DomainError(f"No conversation, lead or quote with id {target!r}.")
    return audit_quote(target, await store.load(conversation_id))


async def answer_query(query: Query, store: Store, policy: Policy) -> Sequence[Reply]:
    if query.kind == "audit":
        try:
            report = await load_audit(store, query.target)
        except DomainError as exc:
            return [Reply(audience=query.audience, text=str(exc))]
        lines = render_audit(report)
        title = f"Audit of {report.kind} {report.target}"
        card = Card(kind="notice", title=title, lines=lines, ref=f"audit:{report.target}")
        return [
            Reply(
                audience=query.audience, text=f"{title}: {len(report.entries)} decisions", card=card
            )
        ]
    metrics = await load_metrics(store, policy)
    lines = render_metrics(metrics)
    card = Card(kind="notice", title="Sales metrics", lines=lines, ref="metrics")
    return [Reply(audience=query.audience, text=lines[0] if lines else "No data yet.", card=card)]


async def load_metrics(store: Store, policy: Policy) -> Metrics:
    """Metrics over the whole event log, in one streaming pass."""
    return compute_metrics(
        [env async for env in store.iterate_all()],
        states=policy.flow.states,
        start=policy.flow.start,
    )


def query_answerer(policy: Policy) -> Callable[[Query, Store], Awaitable[Sequence[Reply]]]:
    """The runtime's `answer_query`, bound to the policy whose flow names the funnel states."""

    async def answer(query: Query, store: Store) -> Sequence[Reply]:
        return await answer_query(query, store, policy)

    return answer
