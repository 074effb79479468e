"""Re-deriving recorded decisions from the recorded features: how an erased conversation's
decisions still verify (issue 15, item 6).

Replay re-decides a conversation from what its prospect said. Once the conversation is
erased (`domain.personal`) the words are gone, but every decision that mattered recorded the
numbers it was taken from: the reader's features on `message_read`, every `w × x` on
`lead_scored`, the narrative's features and whether the credit score was below `c0` on
`narrative_assessed`, the urgency on `pursuit_decided`, every quote input on `quote_issued`.
This module takes those recorded numbers through the policy recorded with each event and
checks that the recorded decision follows from them:

* a `message_read`: the reader's heads over its recorded features give the same band, score,
  signals, objection, reasons and intents (when the policy's reader has the fingerprint the
  features were extracted with), and the conversation's aggregate gives the recorded
  conversation signals;
* a `lead_scored` (the conversation's): the trained reader's score over the aggregate, or the
  lexicon score `Σ wᵢ·xᵢ` of the recorded features with the policy's weights, its band and
  whether it qualifies;
* a `narrative_assessed`: resonance and raw urgency `Σ wᵢ·xᵢ` over its recorded features,
  and the penalised urgency from the recorded outcome of the credit check (the penalty
  `max(0, U − λ·U)` depends on whether the credit was below `c0`, not on its value);
* a `pursuit_decided`: the rule over the recorded qualification and penalised urgency;
* a first `quote_issued` (`/quote`): the quote recomputed from its recorded inputs, to the
  cent and to its id.

With a candidate policy instead of the recorded ones it answers the what-if for erased
conversations too: what the new weights make of the same features. Differences use replay's
shape (`domain.replay.Difference`, `position` being the event's sequence number).
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal

from domain.errors import DomainError
from domain.events import (
    EventEnvelope,
    LeadScored,
    MessageRead,
    NarrativeAssessed,
    PursuitDecided,
    QuoteIssued,
)
from domain.model import Frozen
from domain.narrative import NarrativeAudit, penalized_urgency
from domain.policy import Policy
from domain.presenters import number
from domain.pursuit import pursued_now
from domain.quotes import QuoteRequest, compute_quote
from domain.replay import SHOWN_LIMIT, Aspect, Difference
from domain.scoring import INTERCEPT, LeadScore, band_for, exact_product, exact_sum, logistic
from domain.state import ConversationState, apply, initial_state
from domain.understanding.features import fingerprint
from domain.understanding.reading import (
    aggregate,
    decide_reading,
    head_sums,
    read_conversation,
    retracted,
)
from domain.understanding.scores import reader_score

_DERIVED = (MessageRead, LeadScored, NarrativeAssessed, PursuitDecided, QuoteIssued)
"""The decisions re-derived; the others (an erasure, a timer's re-ping) need no policy."""


class RecordedCheck(Frozen):
    """What re-deriving one conversation's recorded decisions found."""

    conversation_id: str
    checked: int
    """How many recorded decisions were re-derived from their recorded numbers."""
    differences: tuple[Difference, ...]


def check_recorded_decisions(
    conversation_id: str,
    events: Sequence[EventEnvelope],
    policy_for: Callable[[str], Policy],
) -> RecordedCheck:
    """Re-derive each recorded decision of the conversation's `events` (in sequence order)
    from its recorded numbers under `policy_for(event's policy version)`; see the module."""
    envelopes = sorted(
        (env for env in events if env.conversation_id == conversation_id), key=lambda e: e.seq
    )
    checked = 0
    differences: list[Difference] = []
    # The flow's start state plays no part in what is re-derived: no policy is needed yet.
    state = initial_state(conversation_id, start_state="")
    expected_scores: dict[str, LeadScore] = {}
    delivery, version_before = "", 0
    for env in envelopes:
        if env.delivery_id != delivery:
            # A command decides against the conversation as its delivery found it.
            delivery, version_before = env.delivery_id, state.version
        if not isinstance(env.event, _DERIVED):
            state = apply(state, env)
            continue
        policy = policy_for(env.policy_version)
        for aspect, recorded, derived in _derive(
            env, state, version_before, policy, expected_scores
        ):
            checked += 1
            if recorded != derived:
                differences.append(
                    Difference(
                        conversation_id=conversation_id,
                        position=env.seq,
                        delivery_id=env.delivery_id,
                        aspect=aspect,
                        recorded=_shown(recorded),
                        replayed=_shown(derived),
                    )
                )
        state = apply(state, env)
    return RecordedCheck(
        conversation_id=conversation_id, checked=checked, differences=tuple(differences)
    )


def _derive(
    env: EventEnvelope,
    state: ConversationState,
    version_before: int,
    policy: Policy,
    expected_scores: dict[str, LeadScore],
) -> Iterator[tuple[Aspect, str, str]]:
    """(aspect, recorded, re-derived) for each decision `env` records; `state` is the
    conversation before it, `version_before` its version when the delivery arrived. A reading leaves the lead score it implies in
    `expected_scores` (by delivery) for the `lead_scored` that follows it."""
    event = env.event
    if isinstance(event, MessageRead):
        yield from _reading(env.delivery_id, event, state, policy, expected_scores)
    elif isinstance(event, LeadScored) and event.subject == "conversation":
        expected = expected_scores.pop(env.delivery_id, None)
        if expected is None and policy.understanding is None:
            expected = _lexicon_score(event.score, policy)
        if expected is not None:
            qualified = expected.band in policy.conversation.qualified_bands
            yield (
                "score",
                _score_fact(event.score, event.qualified),
                _score_fact(expected, qualified),
            )
    elif isinstance(event, NarrativeAssessed):
        yield (
            "score",
            _narrative_fact(event.audit),
            _narrative_fact(_narrative(event.audit, policy)),
        )
    elif isinstance(event, PursuitDecided) and policy.pursuit is not None:
        urgency = state.narrative.penalized_urgency if state.narrative is not None else None
        if urgency is not None:
            now = pursued_now(policy.pursuit, state.qualified, urgency)
            yield (
                "team",
                _pursuit_fact(event.pursue_now, event.urgency),
                _pursuit_fact(now, urgency),
            )
    elif isinstance(event, QuoteIssued) and event.replaces_quote_id is None:
        yield (
            "quote",
            _quote_fact(event),
            _requoted(event, state.conversation_id, version_before, policy),
        )


def _reading(
    delivery_id: str,
    event: MessageRead,
    state: ConversationState,
    policy: Policy,
    expected_scores: dict[str, LeadScore],
) -> Iterator[tuple[Aspect, str, str]]:
    if policy.understanding is None:
        return
    model = policy.understanding.reader
    if fingerprint(model) != event.reader:
        # Features extracted with another vocabulary mean other things to this model.
        return
    features = dict(event.features)
    reading = decide_reading(model, event.language, features, head_sums(model, features))
    taken_back = retracted(model, reading)
    held = {
        name: (state.signals.get(name, False) or on) and name not in taken_back
        for name, on in reading.signals.items()
    }
    merged = aggregate(state.read_features, features, taken_back)
    conversation = read_conversation(model, reading, merged, held, taken_back)
    recorded = _reading_fact(
        event.band,
        event.score,
        event.signals,
        event.objection,
        event.reasons,
        event.intents,
        event.conversation_signals,
    )
    derived = _reading_fact(
        reading.band,
        reading.score,
        reading.signals,
        reading.objection,
        reading.reasons,
        reading.intents,
        conversation.signals,
    )
    yield "score", recorded, derived
    expected_scores[delivery_id] = reader_score(model, conversation, {})


def _lexicon_score(recorded: LeadScore, policy: Policy) -> LeadScore:
    """The lexicon score of the recorded feature values under the policy's weights (a
    feature the record lacks counts 0: it was not part of the policy that recorded it)."""
    config = policy.scoring
    weights = {f.name: f.weight for f in config.features} | {
        m.name: m.weight for m in config.metadata
    }
    features = {name: recorded.features.get(name, 0) for name in weights}
    contributions = {name: exact_product(w, features[name]) for name, w in weights.items()}
    if config.intercept != 0:
        contributions[INTERCEPT] = config.intercept
    score = exact_sum(contributions.values())
    probability = logistic(score) if config.link == "logistic" else None
    return LeadScore(
        score=score,
        probability=probability,
        band=band_for(probability if probability is not None else score, config.bands),
        features=features,
        weights=weights,
        contributions=contributions,
        evidence={},
        negated={},
    )


def _narrative(recorded: NarrativeAudit, policy: Policy) -> NarrativeAudit:
    """Resonance and urgency of the recorded features under the policy's weights, penalised
    as the recorded credit check found (the credit score itself may be erased)."""
    narrative, fairness = policy.narrative, policy.fairness
    zero = Decimal(0)
    contrib_res = {
        name: exact_product(narrative.resonance_weights.get(name, zero), value)
        for name, value in recorded.features.items()
    }
    contrib_urg = {
        name: exact_product(narrative.urgency_weights.get(name, zero), value)
        for name, value in recorded.features.items()
    }
    raw = exact_sum(contrib_urg.values())
    below = recorded.reason_code == "credit_below_threshold"
    # Any credit below c0 gives the same penalty: the value is not part of the formula.
    penalized = penalized_urgency(raw, fairness.c0 - 1 if below else None, fairness)
    return recorded.model_copy(
        update={
            "resonance": exact_sum(contrib_res.values()),
            "raw_urgency": raw,
            "penalized_urgency": penalized,
            "contrib_res": contrib_res,
            "contrib_urg": contrib_urg,
        }
    )


def _requoted(event: QuoteIssued, conversation_id: str, version: int, policy: Policy) -> str:
    quote = event.quote
    catalog = policy.catalog
    request = QuoteRequest(
        qty=quote.qty,
        sku=quote.sku,
        unit_cents=None if quote.sku is not None else quote.unit_cents,
        discount=quote.discount,
        tax_rate=None if quote.tax_rate == catalog.default_tax_rate else quote.tax_rate,
    )
    context = f"{conversation_id}#{version}"
    try:
        again = compute_quote(request, catalog, now_ms=quote.issued_at_ms, context_key=context)
    except DomainError as exc:
        return f"refused: {exc}"
    return _quote_fact(event.model_copy(update={"quote": again}))


def _reading_fact(
    band: str,
    score: Decimal,
    signals: dict[str, bool],
    objection: str | None,
    reasons: tuple[str, ...],
    intents: tuple[str, ...],
    held: dict[str, bool],
) -> str:
    def names(values: Sequence[str]) -> str:
        return ", ".join(values) or "none"

    return (
        f"read {number(score)} {band}; signals {names([n for n, on in signals.items() if on])}"
        f"; objection {objection or 'none'}; needs a human: {names(reasons)}"
        f"; intents {names(intents)}; conversation holds "
        f"{names([n for n, on in held.items() if on])}"
    )


def _score_fact(score: LeadScore, qualified: bool) -> str:
    terms = ", ".join(
        f"{name} {number(value)}" for name, value in sorted(score.contributions.items()) if value
    )
    outcome = "qualified" if qualified else "not qualified"
    return f"{number(score.score)} {score.band}, {outcome} ({terms or 'no contributions'})"


def _narrative_fact(audit: NarrativeAudit) -> str:
    return (
        f"resonance {number(audit.resonance)}, urgency {number(audit.raw_urgency)}"
        f" → {number(audit.penalized_urgency)} after the fairness penalty"
    )


def _pursuit_fact(pursue_now: bool, urgency: Decimal) -> str:
    return f"{'pursue now' if pursue_now else 'not pursued now'} (urgency {number(urgency)})"


def _quote_fact(event: QuoteIssued) -> str:
    quote = event.quote
    approval = "needs approval" if quote.needs_approval else "no approval needed"
    return f"{quote.quote_id} total {quote.figures()['total']}, {approval}"


def _shown(text: str) -> str:
    return text if len(text) <= SHOWN_LIMIT else text[: SHOWN_LIMIT - 1] + "…"
