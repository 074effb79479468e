"""A lead's thread is the team's room (`[handoff] lead_room`, issue 14 item 6), decided by
`decide`: what the lead's prospect reads (at the reply URL) and what the team reads (the
lead's thread, the handoff channel).

- the prospect's later messages are posted to the lead's thread, quoted as their words;
- a rep's words there stay with the team unless marked for the prospect — the lead card's
  *Reply to prospect*, `say …` addressed to the bot, a leading `>` — and marked words reach
  the prospect as the rep's, and take the conversation over (the bot falls silent);
- every step is an event the audit explains and replay reproduces;
- a policy without the key decides, draws the lead card and hashes exactly as before.
"""

from __future__ import annotations

from typing import Any

import pytest

from domain.audit import audit_conversation
from domain.cards import Reply
from domain.decision import Decision
from domain.events import (
    ActionIgnored,
    BotReplied,
    ProspectMessageShown,
    RepMessageRecorded,
    RepRepliedToProspect,
    TicketClaimed,
    TicketOpened,
)
from domain.handoff_config import HandoffConfig
from domain.inbound import Actor, ButtonClicked, Inbound, MessagePosted
from domain.policy import Policy
from domain.replay import replay_conversation
from tests.support.conversation import Recording

LEAD = Actor(id="lead:lead-1", name="Pat Prospect", role="prospect")
REP = Actor(id="U_RAE", name="Rae Rep", role="rep")


class LeadThread(Recording):
    def __init__(self, policy: Policy, conversation_id: str, **kwargs: Any) -> None:
        super().__init__(policy, conversation_id, **kwargs)
        self.decisions: list[Decision] = []

    def send(self, inbound: Inbound, policy: Policy | None = None) -> Decision:
        decision = super().send(inbound, policy)
        self.decisions.append(decision)
        return decision

    def click_with(self, action: Any, target: str, actor: Actor, note: str) -> Decision:
        """A click with `note` typed in the card's text box."""
        return self.send(
            ButtonClicked(action=action, target=target, actor=actor, note=note, **self.ids())
        )

    def rep_writes(self, text: str, *, addressed: bool = False) -> Decision:
        return self.send(MessagePosted(text=text, actor=REP, addressed=addressed, **self.ids()))


def events_of(decision: Decision, kind: type) -> list[Any]:
    return [env.event for env in decision.events if isinstance(env.event, kind)]


def to(decision: Decision, audience: str) -> list[Reply]:
    return [r for r in decision.replies if r.audience == audience]


def without_lead_room(policy: Policy) -> Policy:
    assert policy.handoff is not None
    return policy.model_copy(
        update={"handoff": policy.handoff.model_copy(update={"lead_room": False})}
    )


@pytest.fixture
def lead(default_policy: Policy) -> LeadThread:
    thread = LeadThread(default_policy, "lead-1", lead_actor=LEAD)
    thread.lead("Hello, tell me more about your CRM")
    return thread


def test_the_prospects_later_messages_are_posted_to_the_leads_thread_as_their_words(
    lead: LeadThread,
) -> None:
    first = lead.decisions[0]
    assert all("wrote:" not in r.text for r in to(first, "team")), "the card shows the first"
    said = lead.say("We are 40 people <@U123> *urgent* <https://evil.example|click>", LEAD)
    (shown,) = [r for r in to(said, "team") if "wrote:" in r.text]
    assert shown.text == (
        "Pat Prospect wrote: “We are 40 people <@U123> *urgent* <https://evil.example|click>”"
    )
    assert shown.card is None
    assert len(events_of(said, ProspectMessageShown)) == 1
    assert to(said, "conversation"), "the bot still answers the prospect"
    # The post comes before the bot's answer, as in the thread.
    assert said.replies.index(shown) < said.replies.index(to(said, "conversation")[0])


def test_a_reps_words_in_the_leads_thread_stay_with_the_team(lead: LeadThread) -> None:
    for text, addressed in (("Looks like a good one, I'll call them.", False), ("say", False)):
        said = lead.rep_writes(text, addressed=addressed)
        assert to(said, "conversation") == []
        assert len(events_of(said, RepMessageRecorded)) == 1
        assert events_of(said, RepRepliedToProspect) == []
    assert lead.state.open_handoff_ticket() is None


@pytest.mark.parametrize(
    ("text", "addressed", "via"),
    [
        ("> Hi Pat, Rae here. I'll send the contract today.", False, "quote_mark"),
        ("say Hi Pat, Rae here. I'll send the contract today.", True, "say"),
    ],
)
def test_words_marked_for_the_prospect_reach_them_and_take_the_conversation_over(
    lead: LeadThread, text: str, addressed: bool, via: str
) -> None:
    sent = lead.rep_writes(text, addressed=addressed)
    (reply,) = to(sent, "conversation")
    assert reply.text == "Hi Pat, Rae here. I'll send the contract today."
    assert reply.card is not None
    assert reply.card.title == "Rae Rep, from the sales team"  # the prospect hears the human
    (event,) = events_of(sent, RepRepliedToProspect)
    assert (event.actor_id, event.name, event.via) == ("U_RAE", "Rae Rep", via)
    (opened,) = events_of(sent, TicketOpened)
    (claimed,) = events_of(sent, TicketClaimed)
    assert (opened.reason, claimed.by, claimed.via) == ("rep_took_over", "U_RAE", "reply")
    assert lead.state.flow_state == "handoff"
    (card,) = [r for r in to(sent, "handoff") if r.card is not None]
    assert card.card is not None
    assert card.card.status == "Taken over by Rae Rep"

    answered = lead.say("Great, thanks Rae!", LEAD)
    assert to(answered, "conversation") == [], "the bot does not talk over the rep"
    assert events_of(answered, BotReplied) == []
    assert [r.text for r in to(answered, "team")] == ["Pat Prospect wrote: “Great, thanks Rae!”"]
    (refreshed,) = to(answered, "handoff")
    assert refreshed.card is not None
    assert refreshed.card.text.endswith("prospect: Great, thanks Rae!")

    again = lead.rep_writes("> The contract is on its way.")
    assert [r.text for r in to(again, "conversation")] == ["The contract is on its way."]
    assert events_of(again, TicketClaimed) == [], "the rep holds it already"


def test_the_lead_cards_reply_box_sends_what_was_typed(lead: LeadThread) -> None:
    (card,) = [r.card for r in to(lead.decisions[0], "team") if r.card is not None]
    assert card is not None
    assert card.input is not None
    (button,) = [b for b in card.buttons if b.action == "reply_to_prospect"]
    assert button.label == "Reply to prospect"

    empty = lead.click("reply_to_prospect", "lead-1", REP)
    assert to(empty, "conversation") == []
    assert "Nothing was sent" in to(empty, "requester")[0].text

    refused = lead.click("reply_to_prospect", "lead-1", LEAD)
    assert to(refused, "conversation") == []
    assert events_of(refused, ActionIgnored)[0].reason == "reps_only"

    sent = lead.click_with("reply_to_prospect", "lead-1", REP, "Hi Pat, call at 3?")
    assert [r.text for r in to(sent, "conversation")] == ["Hi Pat, call at 3?"]
    assert events_of(sent, RepRepliedToProspect)[0].via == "button"
    assert events_of(sent, TicketClaimed)[0].via == "reply"


def test_every_step_is_in_the_audit_in_plain_words_and_replays_identically(
    lead: LeadThread, default_policy: Policy
) -> None:
    lead.say("We have a budget of 5k", LEAD)
    lead.rep_writes("Internal: call her tomorrow")
    lead.rep_writes("> Hi Pat, Rae here.")
    lead.say("Hi Rae!", LEAD)
    text = "\n".join(entry.summary for entry in audit_conversation("lead-1", lead.events).entries)
    assert "The prospect's message was posted to the lead's thread" in text
    assert (
        "Rep Rae Rep (U_RAE) wrote to the prospect (a line starting with >); "
        "sent to the lead's reply URL: “Hi Pat, Rae here.”"
    ) in text
    assert "taken over by Rae Rep (U_RAE), who wrote to the lead's prospect" in text
    replayed = replay_conversation("lead-1", lead.inbounds, lead.events, lambda _: default_policy)
    assert replayed.differences == ()


def test_a_policy_without_lead_room_decides_and_hashes_as_before(default_policy: Policy) -> None:
    old = without_lead_room(default_policy)
    assert "lead_room" not in old.canonical_json()
    assert HandoffConfig().model_dump() == HandoffConfig(lead_room=False).model_dump()
    assert "lead_room" not in HandoffConfig().model_dump()
    thread = LeadThread(old, "lead-1", lead_actor=LEAD)
    first = thread.lead("Hello, tell me more about your CRM")
    (card,) = [r.card for r in to(first, "team") if r.card is not None]
    assert card is not None
    assert card.input is None
    assert "reply_to_prospect" not in [b.action for b in card.buttons]
    said = thread.say("We are 40 people", LEAD)
    assert to(said, "team") == [] or all("wrote:" not in r.text for r in to(said, "team"))
    assert events_of(said, ProspectMessageShown) == []
    marked = thread.rep_writes("> Hi Pat")
    assert to(marked, "conversation") == []
    assert len(events_of(marked, RepMessageRecorded)) == 1
    assert thread.state.open_handoff_ticket() is None
