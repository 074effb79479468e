"""Signed action links: a web-form prospect's way to press a card's buttons.

A chat prospect clicks a card's button; a lead's prospect reads the bot's replies wherever
the lead's `reply_url` shows them (a web-chat widget, an email), with no card to click. So
each button of a reply's card that a prospect may press — *Accept quote*, *Talk to a
person* — is sent along as a link (`LeadReply.actions`):

    POST <SALESBOT_PUBLIC_URL>/leads/<lead id>/actions?action=…&target=…&link=…&sig=…

`sig` is an HMAC with the action secret (`adapters.action_binding.ActionKey`, the key that
binds card buttons) over the lead, the action, the target and the link id (a digest of the
reply's outbox key), so a link works for exactly that lead, action and target: a changed
field or another lead's link is refused (403), never acted on. The link id makes each
reply's link its own delivery: posting a link again is a no-op (200, "existing"), while the
same action offered by a later reply is a new one. A link is a capability (whoever holds it
may press that one button, as whoever sees a card may click it): the route needs no bearer
token, and the domain still decides what the press does (a quote already accepted, a
person already on it).
"""

from __future__ import annotations

import hashlib
from typing import Final
from urllib.parse import quote, urlencode

from adapters.action_binding import ActionKey
from adapters.ids import LEAD_ACTION_DELIVERY, LEADS
from adapters.leadfeed.models import LeadAction
from domain.cards import Card
from domain.inbound import ActionId

SCOPE: Final = "leadfeed"
"""The first signed part: a lead link's signature never matches a card button's."""
PROSPECT_ACTIONS: Final[frozenset[ActionId]] = frozenset({"accept_quote", "escalate"})
"""The buttons a prospect may press; the others are for reps and never become links."""
METHOD: Final = "POST"


def link_id(reply_key: str) -> str:
    """A reply's own id in its links (its outbox key is long and not the receiver's)."""
    return hashlib.sha256(reply_key.encode("utf-8")).hexdigest()[:16]


def sign_link(key: ActionKey, lead_id: str, action: str, target: str, link: str) -> str:
    return key.sign(SCOPE, lead_id, action, target, link)


def delivery_id(lead_id: str, action: str, target: str, link: str) -> str:
    """One press per link: the same link posted again is the same delivery."""
    digest = hashlib.sha256("\x1f".join((lead_id, action, target, link)).encode()).hexdigest()
    return LEADS.delivery_id(digest, kind=LEAD_ACTION_DELIVERY)


def action_links(
    key: ActionKey, base_url: str, lead_id: str, reply_key: str, card: Card | None
) -> tuple[LeadAction, ...]:
    """The links for the buttons of `card` a prospect may press, in the card's order."""
    if card is None:
        return ()
    link = link_id(reply_key)
    base = base_url.rstrip("/")
    links = []
    for button in card.buttons:
        if button.action not in PROSPECT_ACTIONS:
            continue
        query = urlencode(
            {
                "action": button.action,
                "target": button.target,
                "link": link,
                "sig": sign_link(key, lead_id, button.action, button.target, link),
            }
        )
        links.append(
            LeadAction(
                label=button.label,
                url=f"{base}/leads/{quote(lead_id, safe='')}/actions?{query}",
                method=METHOD,
                action=button.action,
                target=button.target,
            )
        )
    return tuple(links)
