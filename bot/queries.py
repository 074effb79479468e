"""Answers to queries a decision asked for (audits, metrics): the reads `decide` cannot do.

The domain has already authorised the query (auditors only for audits) and recorded the
access; this module reads the store, builds the report with the pure domain functions and
returns replies for the requester. The runtime commits them with the decision.
"""

from __future__ import annotations

from collections.abc import Sequence

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


async def answer_query(query: Query, store: Store) -> Sequence[Reply]:
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
    return [Reply(audience=query.audience, text="Metrics are not available yet.")]
