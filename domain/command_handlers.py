"""Commands: quote, lead (score pasted text), audit, metrics, help, correct (a reading),
setup (an installation's handoff and leads channels).

Usage mistakes are answered privately with the usage line and change nothing. Refusals
of sensitive commands are recorded, because who tried to see what is part of the audit.
"""

from __future__ import annotations

from datetime import UTC, datetime

from domain import outcomes
from domain.cards import Reply
from domain.commands import CommandSpec, help_lines
from domain.conversation import persona_values, start_if_new
from domain.corrections import describe, parse_correction
from domain.decision import Query, Recorder
from domain.errors import CommandError, QuoteError
from domain.events import (
    AuditRequested,
    ChannelPurpose,
    ChannelSet,
    CommandRefused,
    LeadScored,
    QuoteIssued,
    ReadingCorrected,
    RoleList,
    RolesSet,
)
from domain.flow import GuardContext
from domain.handoff import hand_back
from domain.inbound import Actor, ChannelRef, UserRef
from domain.permissions import permission, permitted
from domain.presenters import approval_status, band_text, help_card, quote_card, score_card
from domain.quote_args import parse_quote_args
from domain.quote_offer import supersede_open_quotes
from domain.quotes import Quote, compute_quote
from domain.scoring import score_lead
from domain.understanding.scores import score_text


def on_command(
    rec: Recorder,
    actor: Actor,
    spec: CommandSpec,
    args: str,
    *,
    installation: str = "",
    channel: ChannelRef | None = None,
    users: tuple[UserRef, ...] = (),
) -> None:
    """`installation`, `channel` and `users`: where the command was run, the channel and
    the people its text names, as the platform's adapter read them (`CommandInvoked`);
    only `setup` uses them."""
    key = spec.permission_key
    if not permitted(actor, key, strict=rec.policy.safeguards.strict_roles):
        # Who tried to run what is part of the audit.
        rule = permission(key)
        rec.record(CommandRefused(command=spec.name, by=actor.id, reason=rule.reason))
        rec.tell(actor, rule.message)
        return
    if spec.name == "setup":
        if _ROLE_LISTS.get(args.split(" ", 1)[0].strip().lower()) is not None:
            _setup_roles(rec, actor, spec, args, installation, users)
        else:
            _setup(rec, actor, spec, args, installation, channel)
        return
    handler = _HANDLERS[spec.name]
    handler(rec, actor, spec, args)


def _quote(rec: Recorder, actor: Actor, spec: CommandSpec, args: str) -> None:
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
    supersede_open_quotes(rec, actor, quote)
    flow = rec.policy.flow
    if rec.state.flow_state not in flow.terminal:
        rec.advance("quote_issued", GuardContext(qualified=rec.state.qualified))
    if rec.policy.safeguards.prospect_view:
        _present_quote(rec, actor, quote)
        return
    action = "quote_pending_approval" if quote.needs_approval else "quote_ready"
    rec.say(
        action,
        persona_values(rec, actor),
        evidence=quote.figures(),
        card=quote_card(quote, catalog),
    )


def _present_quote(rec: Recorder, actor: Actor, quote: Quote) -> None:
    """The prospect sees an offer they can accept, or hears that one is being prepared;
    the rules behind it (the cap, the maximum, who must approve) reach only the rep."""
    catalog = rec.policy.catalog
    values = persona_values(rec, actor)
    if not quote.needs_approval:
        rec.say(
            "quote_ready",
            values,
            evidence=quote.figures(),
            card=quote_card(quote, catalog, view="prospect"),
        )
        return
    rec.say("quote_in_preparation", values)
    rec.reply(
        Reply(
            audience="requester",
            text=f"Quote {quote.quote_id} is not shown to the prospect until it is approved. "
            f"{approval_status(quote, catalog)}.",
            card=quote_card(quote, catalog, approval_status(quote, catalog)),
        )
    )


def _lead(rec: Recorder, actor: Actor, spec: CommandSpec, args: str) -> None:
    if not args.strip():
        rec.tell(actor, f"Usage: {spec.usage}")
        return
    understanding = rec.policy.understanding
    if understanding is not None:
        today = datetime.fromtimestamp(rec.now_ms / 1000, tz=UTC).date()
        score = score_text(understanding.reader, args, today=today)
    else:
        score = score_lead(args, rec.policy.scoring)
    qualified = score.band in rec.policy.conversation.qualified_bands
    rec.record(LeadScored(subject="pasted_text", score=score, qualified=qualified))
    rec.tell(actor, f"Band: {band_text(score)}", card=score_card(score, args))


def _audit(rec: Recorder, actor: Actor, spec: CommandSpec, args: str) -> None:
    target = args.strip() or rec.state.conversation_id
    rec.record(AuditRequested(target=target, by=actor.id))
    rec.query(
        Query(kind="audit", requested_by=actor.id, target=target, installation=actor.installation)
    )


def _metrics(rec: Recorder, actor: Actor, spec: CommandSpec, args: str) -> None:
    rec.query(Query(kind="metrics", requested_by=actor.id, installation=actor.installation))


def _help(rec: Recorder, actor: Actor, spec: CommandSpec, args: str) -> None:
    if actor.role == "prospect":
        rec.say("help_prospect", persona_values(rec, actor), audience="requester")
        return
    rec.reply(Reply(audience="requester", text="\n".join(help_lines()), card=help_card()))


def _correct(rec: Recorder, actor: Actor, spec: CommandSpec, args: str) -> None:
    """Mark the reader wrong about the latest prospect message (reps teach the model)."""
    del spec
    if rec.state.last_read_seq is None:
        rec.tell(
            actor, "There is no reading to correct here yet: the reader has not read a message."
        )
        return
    try:
        field, name, value = parse_correction(args)
    except CommandError as exc:
        rec.tell(actor, str(exc))
        return
    correction = ReadingCorrected(
        message_seq=rec.state.last_read_seq, field=field, name=name, value=value, by=actor.id
    )
    rec.record(correction)
    rec.tell(
        actor,
        f"Noted: {describe(correction)}. The next training run can learn from it "
        "(salesbot train --corrections).",
    )


def _won(rec: Recorder, actor: Actor, spec: CommandSpec, args: str) -> None:
    """`won [ID] [note]`: the deal is won (`domain.outcomes`)."""
    del spec
    outcomes.on_command(rec, actor, "won", args)


def _lost(rec: Recorder, actor: Actor, spec: CommandSpec, args: str) -> None:
    """`lost [ID] REASON [note]`: the deal is lost, for one of the policy's reasons."""
    del spec
    outcomes.on_command(rec, actor, "lost", args)


def _resume(rec: Recorder, actor: Actor, spec: CommandSpec, args: str) -> None:
    """`resume`: the rep hands the conversation back to the bot (as *Return to bot*)."""
    del spec, args
    hand_back(rec, actor, "")


_PURPOSES: dict[str, ChannelPurpose] = {"handoff": "handoff", "leads": "leads"}
_PURPOSE_WORDS = {
    "handoff": "Handoff tickets and approval requests",
    "leads": "New leads and team notices",
}


def _setup(
    rec: Recorder,
    actor: Actor,
    spec: CommandSpec,
    args: str,
    installation: str,
    channel: ChannelRef | None,
) -> None:
    """`setup handoff|leads #channel`: an admin chooses where this installation's handoff
    or leads cards go. The choice is recorded (who, which installation, which channel), so
    the audit shows it and the adapter keeps it; it changes nothing in this conversation.

    `setup handoff|leads here`: the channel is the one the command was said in, as its
    adapter resolved `here` into `channel` (on a platform where the command is said in the
    channel that should receive the cards); the answer says so rather than naming it."""
    words = args.split()
    word = words[0].lower() if words else ""
    purpose = _PURPOSES.get(word)
    if purpose is None:
        rec.tell(actor, f"Usage: {spec.usage}")
        return
    if not installation:
        rec.tell(
            actor,
            "Channels are chosen per workspace, in the chat where salesbot is installed "
            f"(`setup {purpose} #channel`); here they come from the configuration.",
        )
        return
    if channel is None:
        rec.tell(
            actor,
            f"Which channel? Name it as you type it in a message, picking it from the list "
            f"that opens at `#`: `setup {purpose} #channel`.",
        )
        return
    name = channel.name or channel.id
    rec.record(
        ChannelSet(
            installation=installation,
            purpose=purpose,
            channel=channel.id,
            name=channel.name,
            by=actor.id,
        )
    )
    if [w.lower() for w in words[1:]] == ["here"]:
        rec.tell(actor, f"Done: {_PURPOSE_WORDS[purpose].lower()} now come to this channel.")
        return
    rec.tell(
        actor,
        f"{_PURPOSE_WORDS[purpose]} of this workspace now go to #{name}. "
        "Invite me there if I am not in it yet.",
    )


_ROLE_LISTS: dict[str, RoleList] = {
    "approvers": "approvers",
    "auditors": "auditors",
    "managers": "managers",
    "admins": "admins",
}
_ROLE_WORDS: dict[RoleList, str] = {
    "approvers": "approve discounts above the caps",
    "auditors": "read audits",
    "managers": "claim a routed ticket while it is still its owner's",
    "admins": "set up this installation (channels and role lists)",
}


def _setup_roles(
    rec: Recorder,
    actor: Actor,
    spec: CommandSpec,
    args: str,
    installation: str,
    users: tuple[UserRef, ...],
) -> None:
    """`setup approvers|auditors|managers|admins @ann @ben …`: an admin sets who holds one
    of this installation's role lists — the whole list, replacing the one before (the
    environment's, until first set). Recorded (who, which installation, which list, whom),
    so the audit shows it and the adapter keeps the list its directory reads. An admin
    cannot leave the installation without admins: the list of admins must name someone."""
    del spec
    role = _ROLE_LISTS[args.split(" ", 1)[0].strip().lower()]
    usage = f"`setup {role} @person @person …` (the whole list: it replaces the one before)"
    if not installation:
        rec.tell(
            actor,
            "Role lists are set per workspace, in the chat where salesbot is installed "
            f"({usage}); here they come from the configuration.",
        )
        return
    if not users:
        rec.tell(actor, f"Who? Name them with @mentions: {usage}.")
        return
    rec.record(RolesSet(installation=installation, role=role, users=users, by=actor.id))
    named = ", ".join(user.name or user.id for user in users)
    rec.tell(
        actor,
        f"Done: the {role} of this workspace are now {named}. They may "
        f"{_ROLE_WORDS[role]} here (as reps of this workspace).",
    )


_HANDLERS = {
    "quote": _quote,
    "lead": _lead,
    "audit": _audit,
    "metrics": _metrics,
    "help": _help,
    "correct": _correct,
    "resume": _resume,
    "won": _won,
    "lost": _lost,
}
