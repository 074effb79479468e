"""Commands: quote, lead (score pasted text), audit, metrics, help.

Usage mistakes are answered privately with the usage line and change nothing. Refusals
of sensitive commands are recorded, because who tried to see what is part of the audit.
"""

from __future__ import annotations

from domain.cards import Reply
from domain.commands import CommandSpec, help_lines
from domain.conversation import persona_values, start_if_new
from domain.decision import Query, Recorder
from domain.errors import CommandError, QuoteError
from domain.events import AuditRequested, CommandRefused, LeadScored, QuoteIssued
from domain.flow import GuardContext
from domain.inbound import Actor
from domain.presenters import help_card, quote_card, score_card
from domain.quote_args import parse_quote_args
from domain.quotes import compute_quote
from domain.scoring import score_lead


def on_command(rec: Recorder, actor: Actor, spec: CommandSpec, args: str) -> None:
    handler = _HANDLERS[spec.name]
    handler(rec, actor, spec, args)


def _quote(rec: Recorder, actor: Actor, spec: CommandSpec, args: str) -> None:
    if actor.role == "prospect":
        rec.record(CommandRefused(command=spec.name, by=actor.id, reason="reps_only"))
        rec.tell(
            actor,
            "Quotes come from your account team. Tell me what you need and I will pass it on.",
        )
        return
    catalog = rec.policy.catalog
    try:
        request = parse_quote_args(args, catalog)
        context = f"{rec.state.conversation_id}#{rec.state.version}"
        quote = compute_quote(request, catalog, now_ms=rec.now_ms, context_key=context)
    except (CommandError, QuoteError) as exc:
        rec.tell(actor, str(exc))
        return
    start_if_new(rec, "command", actor)
    rec.record(QuoteIssued(quote=quote, requested_by=actor.id))
    flow = rec.policy.flow
    if rec.state.flow_state not in flow.terminal:
        rec.advance("quote_issued", GuardContext(qualified=rec.state.qualified))
    action = "quote_pending_approval" if quote.needs_approval else "quote_ready"
    rec.say(
        action,
        persona_values(rec, actor),
        evidence=quote.figures(),
        card=quote_card(quote, catalog),
    )


def _lead(rec: Recorder, actor: Actor, spec: CommandSpec, args: str) -> None:
    if not args.strip():
        rec.tell(actor, f"Usage: {spec.usage}")
        return
    score = score_lead(args, rec.policy.scoring)
    qualified = score.band in rec.policy.conversation.qualified_bands
    rec.record(LeadScored(subject="pasted_text", score=score, qualified=qualified))
    rec.tell(actor, f"Score {score.score} ({score.band})", card=score_card(score, args))


def _audit(rec: Recorder, actor: Actor, spec: CommandSpec, args: str) -> None:
    target = args.strip() or rec.state.conversation_id
    if not actor.may_audit:
        rec.record(CommandRefused(command=spec.name, by=actor.id, reason="not_auditor"))
        rec.tell(
            actor,
            "Sorry, audits are limited to auditors. Ask your sales-ops admin if you need access.",
        )
        return
    rec.record(AuditRequested(target=target, by=actor.id))
    rec.query(Query(kind="audit", requested_by=actor.id, target=target))


def _metrics(rec: Recorder, actor: Actor, spec: CommandSpec, args: str) -> None:
    if actor.role == "prospect":
        rec.record(CommandRefused(command=spec.name, by=actor.id, reason="reps_only"))
        rec.tell(actor, "Sorry, that command is for the sales team.")
        return
    rec.query(Query(kind="metrics", requested_by=actor.id))


def _help(rec: Recorder, actor: Actor, spec: CommandSpec, args: str) -> None:
    if actor.role == "prospect":
        rec.say("help_prospect", persona_values(rec, actor), audience="requester")
        return
    rec.reply(Reply(audience="requester", text="\n".join(help_lines()), card=help_card()))


_HANDLERS = {
    "quote": _quote,
    "lead": _lead,
    "audit": _audit,
    "metrics": _metrics,
    "help": _help,
}
