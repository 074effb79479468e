"""Signed action links (`adapters.leadfeed.links`): only a prospect's buttons become links,
each signed for exactly its lead, action, target and reply."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from adapters.action_binding import ActionKey
from adapters.leadfeed.links import SCOPE, action_links, link_id
from domain.cards import Button, Card

KEY = ActionKey(b"action-secret")
CARD = Card(
    kind="quote",
    title="Quote Q-7",
    buttons=(
        Button(action="accept_quote", label="Accept quote", target="Q-7"),
        Button(action="request_approval", label="Request approval", target="Q-7"),
        Button(action="escalate", label="Talk to a person", target="Q-7"),
    ),
)


def test_only_the_prospects_buttons_become_links_signed_for_that_lead_and_reply() -> None:
    links = action_links(KEY, "https://bot.example.org/", "lead-0123456789abcdef", "k-1", CARD)
    assert [(a.label, a.action, a.method) for a in links] == [
        ("Accept quote", "accept_quote", "POST"),
        ("Talk to a person", "escalate", "POST"),
    ]
    url = urlsplit(links[0].url)
    assert (url.scheme, url.netloc, url.path) == (
        "https",
        "bot.example.org",
        "/leads/lead-0123456789abcdef/actions",
    )
    fields = {name: values[0] for name, values in parse_qs(url.query).items()}
    assert fields["link"] == link_id("k-1")
    parts = ("lead-0123456789abcdef", "accept_quote", "Q-7", fields["link"])
    assert KEY.verdict(fields["sig"], SCOPE, *parts) == "ok"
    assert KEY.verdict(fields["sig"], SCOPE, "lead-ffffffffffffffff", *parts[1:]) == "bad"
    assert KEY.verdict(fields["sig"], SCOPE, parts[0], "accept_quote", "Q-8", parts[3]) == "bad"
    again = action_links(KEY, "https://bot.example.org", "lead-0123456789abcdef", "k-2", CARD)
    assert again[0].url != links[0].url, "each reply's link is its own delivery"
    assert action_links(KEY, "https://x", "lead-0123456789abcdef", "k-1", None) == ()
