"""The safeguards of the default policy, through `decide`: what a prospect sees, who may do
what, four eyes on discounts, the claims guard, the flood limit and refused clicks — and
that a policy written before the safeguards keeps deciding exactly as it did."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from domain.cards import Card
from domain.events import (
    ActionIgnored,
    BotReplied,
    ClaimRefused,
    CommandRefused,
    ConversationClosed,
    FloodLimited,
    LeadScored,
    QuoteAccepted,
    QuoteApproved,
    QuoteIssued,
    TicketOpened,
)
from domain.inbound import Actor, ButtonClicked, ClickBinding
from domain.permissions import (
    CAPACITIES,
    MATRIX,
    Capacity,
    Permission,
    allowed_for,
    allowed_while_fresh,
    matrix_markdown,
    permitted,
)
from domain.persona import Template
from domain.policy import Policy, Safeguards
from domain.policy_check import check_policy
from tests.unit.test_decide import (
    APPROVER,
    AUDITOR,
    PROSPECT,
    REP,
    Conversation,
    events_of,
    replies_to,
)

HOT = "We have a $5000 budget, I am the CTO, starting next month"
INTERNAL = re.compile(r"\bcap\b|maximum|approv", re.IGNORECASE)


@pytest.fixture
def convo(default_policy: Policy) -> Conversation:
    return Conversation(default_policy)


@pytest.fixture
def legacy_policy(default_policy: Policy) -> Policy:
    """The default policy as it was stored before safeguards existed."""
    return default_policy.model_copy(update={"safeguards": Safeguards()})


def card_text(card: Card) -> str:
    parts = [card.title, card.text, card.status, *card.lines]
    parts += [f"{field.label} {field.value}" for field in card.fields]
    parts += [button.label for button in card.buttons]
    return "\n".join(parts)


# -- what the prospect sees ------------------------------------------------------------


def test_a_prospects_quote_card_shows_the_offer_and_the_buyers_actions_only(
    convo: Conversation,
) -> None:
    convo.lead(HOT)
    decision = convo.command("quote", "10 pro 10%")
    (reply,) = replies_to(decision, "conversation")
    assert reply.card is not None
    text = card_text(reply.card)
    for fact in ("PRO", "10", "199.00 USD", "10%", "1,791.00 USD", "Valid until"):
        assert fact in text
    assert not INTERNAL.search(text), text
    assert [b.action for b in reply.card.buttons] == ["accept_quote", "escalate"]
    assert "Talk to a person" in text


def test_a_quote_awaiting_approval_is_not_shown_to_the_prospect_until_approved(
    convo: Conversation,
) -> None:
    convo.lead(HOT)
    decision = convo.command("quote", "10 pro 20%")
    (told,) = replies_to(decision, "conversation")
    assert told.card is None
    assert not re.search(r"\d|%|approv|discount", told.text), told.text
    (private,) = replies_to(decision, "requester")
    assert private.card is not None
    assert "rep cap of 15%" in private.text
    assert "maximum 30%" in private.text
    requested = convo.click("request_approval", events_of(decision, QuoteIssued)[0].quote.quote_id)
    assert replies_to(requested, "conversation") == []
    assert "Approval requested" in replies_to(requested, "requester")[0].text


def test_a_prospect_pressing_a_rep_button_anyway_is_refused_and_nothing_changes(
    convo: Conversation,
) -> None:
    convo.lead(HOT)
    quote = events_of(convo.command("quote", "10 pro 20%"), QuoteIssued)[0].quote
    for action in ("request_approval", "approve_quote", "reject_quote"):
        refused = convo.click(action, quote.quote_id, PROSPECT)
        assert [type(env.event) for env in refused.events] == [ActionIgnored]
    assert convo.state.quotes[quote.quote_id].status == "needs_approval"


def test_after_an_unchecked_policy_the_old_cards_are_kept_for_replay(
    legacy_policy: Policy,
) -> None:
    convo = Conversation(legacy_policy)
    convo.lead(HOT)
    decision = convo.command("quote", "10 pro 20%")
    card = replies_to(decision, "conversation")[0].card
    assert card is not None
    assert card.buttons[0].action == "request_approval"
    assert "rep cap" in card.status


# -- the roles × actions matrix ----------------------------------------------------------

MANAGER = Actor(id="U_MGR", name="Mo Manager", role="rep", manager=True)
ADMIN = Actor(id="U_ADM", name="Ada Admin", role="rep", admin=True)
ACTORS: dict[Capacity, Actor] = {
    "prospect": PROSPECT,
    "rep": REP,
    "manager": MANAGER,
    "approver": Actor(id="U_APPR", name="Avery Approver", role="rep", approver=True),
    "auditor": AUDITOR,
    "admin": ADMIN,
}
"""The owner is whoever the policy routed the conversation to (`actor_for`)."""


def actor_for(capacity: Capacity, convo: Conversation) -> Actor:
    if capacity == "owner":
        assert convo.state.owner is not None, "the default policy routes every conversation"
        return Actor(id=convo.state.owner, name="Olive Owner", role="rep")
    return ACTORS[capacity]


P, R, OW, M, A, U, AD = "prospect", "rep", "owner", "manager", "approver", "auditor", "admin"
TEAM = {R, OW, M, A, U, AD}
EXPECTED: dict[str, set[str]] = {
    "command:quote": TEAM,
    "command:lead": TEAM,
    "command:audit": {U},
    "command:metrics": TEAM,
    "command:correct": TEAM,
    "command:help": {P} | TEAM,
    "command:setup": {AD},
    "button:accept_quote": {P},
    "button:accept_quote_on_behalf": TEAM,
    "button:escalate": {P} | TEAM,
    "button:request_approval": TEAM,
    "button:approve_quote": {A},
    "button:reject_quote": {A},
    "button:claim_ticket": TEAM,
    "button:resolve_ticket": TEAM,
    "button:return_to_bot": TEAM,
    "button:mark_won": TEAM,
    "button:mark_lost": TEAM,
    "button:open_quote_form": TEAM,
}
"""The matrix, stated independently of `domain.permissions` (and of the README)."""

EXPECTED_WHILE_FRESH: dict[str, set[str]] = {"button:claim_ticket": {OW, M}}
"""Who may take an action on a routed ticket while it is fresh (`[routing]
owner_exclusive_ms`), where that differs from `EXPECTED`."""


def test_the_matrix_is_what_the_security_review_agreed() -> None:
    assert {rule.key for rule in MATRIX} == set(EXPECTED)
    for rule in MATRIX:
        held = {capacity for capacity in CAPACITIES if allowed_for(rule, capacity)}
        assert held == EXPECTED[rule.key], rule.key
        fresh = {capacity for capacity in CAPACITIES if allowed_while_fresh(rule, capacity)}
        assert fresh == EXPECTED_WHILE_FRESH.get(rule.key, EXPECTED[rule.key]), rule.key


def _rows() -> list[tuple[Permission, Capacity]]:
    return [(rule, capacity) for rule in MATRIX for capacity in CAPACITIES]


@pytest.mark.parametrize(("rule", "capacity"), _rows(), ids=[f"{r.key}-{c}" for r, c in _rows()])
def test_every_action_is_allowed_or_refused_as_the_matrix_says(
    default_policy: Policy, rule: Permission, capacity: Capacity
) -> None:
    kind, name = rule.key.split(":")
    policy = default_policy
    if name == "accept_quote_on_behalf":
        # A rep's *Accept quote*, where the policy allows it on the prospect's behalf (a
        # prospect's own click is the row above).
        if capacity == "prospect":
            assert not allowed_for(rule, capacity)
            return
        name = "accept_quote"
        quotes = policy.quotes.model_copy(update={"accept_on_behalf": True})
        policy = policy.model_copy(update={"quotes": quotes})
    convo = Conversation(policy)
    convo.lead(HOT)
    quote = events_of(convo.command("quote", "10 pro 20%"), QuoteIssued)[0].quote
    actor = actor_for(capacity, convo)
    if kind == "command":
        args = {
            "quote": "1 pro",
            "lead": "budget of 5k",
            "audit": "conv-1",
            "setup": "handoff",
        }.get(name, "")
        decision = convo.command(name, args, actor)
        refused = [e for e in events_of(decision, CommandRefused) if e.command == name]
    else:
        decision = convo.click(name, quote.quote_id, actor)
        refused = [e for e in events_of(decision, ActionIgnored) if e.reason == rule.reason]
    allowed = allowed_for(rule, capacity)
    assert permitted(actor, rule.key, strict=True, owner=convo.state.owner) is allowed
    assert bool(refused) is not allowed, decision
    if not allowed:
        assert replies_to(decision, "requester")[0].text == rule.message


def test_a_rep_without_rights_is_no_approver_or_auditor_and_system_is_nobody() -> None:
    assert not permitted(REP, "button:approve_quote", strict=True)
    assert not permitted(REP, "command:audit", strict=True)
    guest_listed = Actor(id="G", role="prospect", approver=True, auditor=True)
    assert not permitted(guest_listed, "button:approve_quote", strict=True)
    assert not permitted(Actor(id="s", role="system"), "command:help", strict=True)


def test_prospects_may_score_text_only_under_a_policy_from_before_the_matrix(
    default_policy: Policy, legacy_policy: Policy
) -> None:
    strict = Conversation(default_policy).command("lead", "budget 5k", PROSPECT)
    assert events_of(strict, CommandRefused)[0].reason == "reps_only"
    assert not events_of(strict, LeadScored)
    old = Conversation(legacy_policy).command("lead", "budget 5k", PROSPECT)
    assert events_of(old, LeadScored)


def test_the_matrix_as_documented_lists_every_command_and_button() -> None:
    table = matrix_markdown()
    assert table.count("\n") == len(MATRIX) + 3  # the header, its rule, a blank, the note
    assert "| `audit` | — | — | — | — | — | ✓ | — | — |" in table
    assert "| `setup` (handoff and leads channels) | — | — | — | — | — | — | ✓ | — |" in table
    assert "| *Accept quote* | ✓ | — | — | — | — | — | — | as a prospect |" in table
    assert (
        "| *Claim ticket* | — | ✓ after ¹ | ✓ | ✓ | ✓ after ¹ | ✓ after ¹ | ✓ after ¹ | — |"
        in table
    )
    assert table.endswith(
        "only its owner or a manager may claim it; anyone on the team after that."
    )


# -- four eyes ---------------------------------------------------------------------------

BOSS_A = Actor(id="U_A", name="Ada Approver", role="rep", approver=True)
BOSS_B = Actor(id="U_B", name="Ben Approver", role="rep", approver=True)


def _pending(convo: Conversation, issuer: Actor) -> str:
    convo.lead(HOT)
    quote: str = events_of(convo.command("quote", "10 pro 20%", issuer), QuoteIssued)[
        0
    ].quote.quote_id
    return quote


def test_the_requester_cannot_approve_their_own_discount_but_another_approver_can(
    convo: Conversation,
) -> None:
    quote = _pending(convo, REP)
    convo.click("request_approval", quote, BOSS_A)
    own = convo.click("approve_quote", quote, BOSS_A)
    assert events_of(own, ActionIgnored)[0].reason == "four_eyes"
    assert "four eyes" in replies_to(own, "requester")[0].text
    assert not events_of(own, QuoteApproved)
    other = convo.click("approve_quote", quote, BOSS_B)
    assert events_of(other, QuoteApproved)[0].by == "U_B"


def test_whoever_issued_a_discount_cannot_approve_it_directly(convo: Conversation) -> None:
    quote = _pending(convo, BOSS_A)
    assert events_of(convo.click("approve_quote", quote, BOSS_A), ActionIgnored)[0].reason == (
        "four_eyes"
    )
    assert events_of(convo.click("approve_quote", quote, BOSS_B), QuoteApproved)


def test_the_requester_may_still_withdraw_by_rejecting(convo: Conversation) -> None:
    quote = _pending(convo, BOSS_A)
    convo.click("request_approval", quote, BOSS_A)
    rejected = convo.click("reject_quote", quote, BOSS_A)
    assert convo.state.quotes[quote].status == "rejected"
    assert not events_of(rejected, ActionIgnored)


def test_the_only_approvers_own_request_goes_to_the_handoff_channel_for_a_manager(
    convo: Conversation,
) -> None:
    only = Actor(id="U_ONLY", name="Olly Only", role="rep", approver=True, sole_approver=True)
    quote = _pending(convo, REP)
    requested = convo.click("request_approval", quote, only)
    assert not replies_to(requested, "approvers")
    (handoff,) = replies_to(requested, "handoff")
    assert handoff.card is not None
    assert "manager" in handoff.card.status
    assert "four eyes" in handoff.card.status


def test_without_four_eyes_an_old_policy_lets_the_requester_approve(
    legacy_policy: Policy,
) -> None:
    convo = Conversation(legacy_policy)
    quote = _pending(convo, REP)
    convo.click("request_approval", quote, APPROVER)
    assert events_of(convo.click("approve_quote", quote, APPROVER), QuoteApproved)


# -- the claims guard --------------------------------------------------------------------

BOAST = Template(text="40% off today, just $99 per seat, guaranteed!")


def _boasting(policy: Policy, guard: bool) -> Policy:
    persona = policy.active_persona
    templates = {**persona.templates, "greet": BOAST}
    personas = {policy.persona: persona.model_copy(update={"templates": templates})}
    safeguards = policy.safeguards.model_copy(update={"claims_guard": guard})
    return policy.model_copy(update={"personas": personas, "safeguards": safeguards})


def test_check_rejects_the_boast(default_policy: Policy) -> None:
    problems = check_policy(_boasting(default_policy, guard=True))
    assert any("'greet'" in line and "without evidence" in line for line in problems)


def test_the_claims_guard_says_the_fallback_records_the_refusal_and_alerts(
    default_policy: Policy,
) -> None:
    convo = Conversation(_boasting(default_policy, guard=True))
    decision = convo.say("Hello there")
    said = [e.text for e in events_of(decision, BotReplied)]
    assert said
    assert not any("40%" in text or "$99" in text for text in said)
    assert all("40%" not in r.text for r in replies_to(decision, "conversation"))
    refusal = events_of(decision, ClaimRefused)[0]
    assert refusal.template == "greet"
    assert any("without evidence" in problem for problem in refusal.problems)
    (alert,) = replies_to(decision, "handoff")
    assert alert.card is not None
    assert "claims guard" in alert.card.title


def test_without_the_guard_an_unchecked_policy_says_what_it_says(
    default_policy: Policy,
) -> None:
    decision = Conversation(_boasting(default_policy, guard=False)).say("Hello there")
    assert any("40% off" in e.text for e in events_of(decision, BotReplied))
    assert not events_of(decision, ClaimRefused)


# -- the flood limit ---------------------------------------------------------------------


def _limited(policy: Policy, limit: int) -> Policy:
    safeguards = policy.safeguards.model_copy(update={"flood_limit_per_minute": limit})
    return policy.model_copy(update={"safeguards": safeguards})


def test_a_flood_is_answered_once_then_recorded_without_replies_until_it_calms(
    lexicon_policy: Policy,
) -> None:
    # The flood limit does not depend on how messages are read: the lexicon reading keeps
    # these placeholder messages ("message 4") with the bot whatever a retrained model says.
    convo = Conversation(_limited(lexicon_policy, 3))
    answered = [convo.say(f"message {n}") for n in range(3)]
    assert all(replies_to(d, "conversation") for d in answered)
    notice = convo.say("message 4")
    flood = events_of(notice, FloodLimited)[0]
    assert (flood.messages, flood.limit) == (4, 3)
    assert len(replies_to(notice, "conversation")) == 1
    for n in range(5, 12):
        quiet = convo.say(f"message {n}")
        assert quiet.replies == ()
        assert [type(e.event).__name__ for e in quiet.events] == ["ProspectMessageReceived"]
    convo.now += 61_000
    after = convo.say("are you there?")
    assert replies_to(after, "conversation")
    assert len(convo.state.prospect_texts) == 12


def test_the_default_policy_limits_floods_and_old_policies_do_not(
    default_policy: Policy, legacy_policy: Policy
) -> None:
    assert default_policy.safeguards.flood_limit_per_minute == 20
    convo = Conversation(legacy_policy)
    for n in range(30):
        assert not events_of(convo.say(f"m{n}"), FloodLimited)


# -- clicks the card's signature does not vouch for --------------------------------------


def _click(convo: Conversation, target: str, actor: Actor, binding: ClickBinding) -> object:
    return convo.send(
        ButtonClicked(
            delivery_id=f"click-{binding}-{convo.now}",
            conversation_id=convo.state.conversation_id,
            actor=actor,
            action="accept_quote",
            target=target,
            binding=binding,
        )
    )


@pytest.mark.parametrize(
    "binding", ["bad_signature", "wrong_conversation", "wrong_workspace", "wrong_tenant"]
)
def test_a_forged_or_misplaced_click_is_recorded_and_changes_nothing(
    convo: Conversation, binding: ClickBinding
) -> None:
    convo.lead(HOT)
    quote = events_of(convo.command("quote", "10 pro"), QuoteIssued)[0].quote.quote_id
    decision = convo.send(
        ButtonClicked(
            delivery_id="forged",
            conversation_id=convo.state.conversation_id,
            actor=PROSPECT,
            action="accept_quote",
            target=quote,
            binding=binding,
        )
    )
    assert [type(e.event) for e in decision.events] == [ActionIgnored]
    assert events_of(decision, ActionIgnored)[0].reason == binding
    assert not events_of(decision, QuoteAccepted)
    assert not events_of(decision, ConversationClosed)
    assert convo.state.quotes[quote].status == "issued"


def test_a_click_on_a_card_from_before_signing_posts_the_current_card_again(
    convo: Conversation,
) -> None:
    convo.lead(HOT)
    quote = events_of(convo.command("quote", "10 pro"), QuoteIssued)[0].quote.quote_id
    decision = convo.send(
        ButtonClicked(
            delivery_id="old-card",
            conversation_id=convo.state.conversation_id,
            actor=PROSPECT,
            action="accept_quote",
            target=quote,
            binding="unsigned",
        )
    )
    assert events_of(decision, ActionIgnored)[0].reason == "unsigned"
    assert convo.state.quotes[quote].status == "issued"
    (again,) = replies_to(decision, "conversation")
    assert again.card is not None
    assert again.replaces == again.card.ref == quote
    assert [b.action for b in again.card.buttons] == ["accept_quote", "escalate"]
    assert not INTERNAL.search(card_text(again.card))
    assert "out of date" in replies_to(decision, "requester")[0].text


def test_an_old_copy_of_a_quote_awaiting_approval_goes_again_only_to_the_rep(
    convo: Conversation,
) -> None:
    convo.lead(HOT)
    quote = events_of(convo.command("quote", "10 pro 20%"), QuoteIssued)[0].quote.quote_id
    for actor, expected in ((REP, ["request_approval", "escalate"]), (PROSPECT, None)):
        decision = convo.send(
            ButtonClicked(
                delivery_id=f"old-{actor.id}",
                conversation_id=convo.state.conversation_id,
                actor=actor,
                action="request_approval",
                target=quote,
                binding="unsigned",
            )
        )
        assert not replies_to(decision, "conversation")
        (private,) = replies_to(decision, "requester")
        if expected is None:
            assert private.card is None
            assert "being prepared" in private.text
        else:
            assert private.card is not None
            assert [b.action for b in private.card.buttons] == expected
    assert convo.state.quotes[quote].status == "needs_approval"


def test_an_old_ticket_card_is_posted_again_in_its_channel(convo: Conversation) -> None:
    convo.lead(HOT)
    convo.say("I need our lawyer to review the contract terms")
    ticket = next(iter(convo.state.tickets))
    decision = convo.send(
        ButtonClicked(
            delivery_id="old-ticket",
            conversation_id=convo.state.conversation_id,
            actor=REP,
            action="claim_ticket",
            target=ticket,
            binding="unsigned",
        )
    )
    assert convo.state.tickets[ticket].status == "open"
    (card,) = replies_to(decision, "handoff")
    assert card.replaces == ticket
    assert not events_of(decision, TicketOpened)


# -- compatibility -----------------------------------------------------------------------


def test_a_policy_without_safeguards_keeps_the_version_it_was_stored_under(
    legacy_policy: Policy,
) -> None:
    assert "safeguards" not in legacy_policy.canonical_json()
    stored = Policy.model_validate_json(legacy_policy.canonical_json())
    assert stored.version == legacy_policy.version
    assert stored.safeguards == Safeguards()


def test_the_flood_limit_must_fit_the_window_kept_in_state() -> None:
    with pytest.raises(ValueError, match="flood_limit_per_minute"):
        Safeguards.model_validate({"flood_limit_per_minute": 500})
    assert Safeguards(flood_limit_per_minute=199).flood_limit_per_minute == 199


def test_the_readme_shows_the_matrix_the_code_enforces() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- roles matrix: generated by domain.permissions.matrix_markdown() -->")
    end = readme.index("<!-- end of roles matrix -->")
    shown = readme[start:end].split("\n", 1)[1].strip()
    assert shown == matrix_markdown(), "regenerate the README's table from matrix_markdown()"
