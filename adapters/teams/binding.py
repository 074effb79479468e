"""Card buttons bound to the place their card is posted, and clicks checked against it.

A click's data is input like any other: Teams hands the bot whatever `data` the client
submits, so a user can send data copied from another card, edited, or made up. Every button
the Teams adapter renders therefore carries a signature (the shared `ActionKey`, see
`adapters/action_binding.py`) over

    (tenant, where, conversation, action, target, ref, nonce)

(as one JSON array, so no part can contain the key's separator)

- `tenant`: the tenant of the conversation the card is posted in, as its stored conversation
  reference states it (`conversation.tenantId`, which `inbound.conversation_reference` fills
  from `channelData.tenant.id`); for a conversation the bot has not heard from yet (a
  configured handoff channel), `TEAMS_APP_TENANT_ID`; "" when neither is known. A private
  notice's card is posted for the tenant of the person's account. An invoke's refreshed card
  is signed for the tenant the click came from (which matched the signed one).
- `where`: the Bot Framework conversation the card is posted in (a channel, a thread of it,
  a group chat, the person's personal chat with the bot) — which may differ from
- `conversation`: the conversation the button acts on (a ticket card in the handoff channel
  acts on the prospect's conversation);
- `action`, `target`, `ref` (the card's own ref), `nonce` (one per button and post).

A click (an `adaptiveCard/action` invoke, or its `Action.Submit` fallback as a message with
`value`) is checked in this order, and the first failure names its `binding`:
1. our marker but no signature: "unsigned" (a card posted before signing existed);
2. the signature does not verify: "bad_signature" (edited or made-up data); one made
   with a retired key (before a rotation) is checked on, and ends "unsigned";
3. a tenant was signed and the activity's tenants (`conversation.tenantId`,
   `channelData.tenant.id`) are not exactly that one: "wrong_tenant";
4. the click was made in a conversation other than `where` or a thread of it (or, for a
   card in a thread, the thread's channel): "wrong_conversation".
Otherwise "ok". Anything but "ok" is recorded in the conversation the click was made in,
never in the one the data claims; the domain refuses it there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.action_binding import ActionKey
from adapters.teams import ids
from adapters.teams.book import base_conversation
from domain.inbound import ClickBinding


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a card is posted: every button on it is signed for this tenant and conversation."""

    key: ActionKey
    tenant: str
    where: str

    def action_data(
        self, conversation: str, action: str, target: str, nonce: str, ref: str | None
    ) -> dict[str, Any]:
        """A button's data (`ids.action_data`), signed for this placement."""
        data = ids.action_data(conversation, action, target, nonce, ref)
        data["tn"], data["w"] = self.tenant, self.where
        data["s"] = self.key.sign(
            _signed(self.tenant, self.where, conversation, action, target, ref or "", nonce)
        )
        return data


def activity_tenants(activity: Mapping[str, Any]) -> frozenset[str]:
    """The tenants an activity states for where it happened, lower-cased."""
    conversation = _str(_map(activity, "conversation"), "tenantId")
    channel_data = _str(_map(_map(activity, "channelData"), "tenant"), "id")
    return frozenset({conversation.lower(), channel_data.lower()} - {""})


def click_placement(key: ActionKey, activity: Mapping[str, Any]) -> Placement:
    """Where a click was made: a card rendered in answer to it lives there."""
    tenants = activity_tenants(activity)
    tenant = next(iter(tenants)) if len(tenants) == 1 else ""
    return Placement(key, tenant, _str(_map(activity, "conversation"), "id"))


def check(key: ActionKey, data: ids.ActionData, activity: Mapping[str, Any]) -> ClickBinding:
    """How a click relates to the card its data came from (module docstring)."""
    if data.signature is None:
        return "unsigned"
    verdict = key.verdict(
        data.signature,
        _signed(
            data.tenant,
            data.where,
            data.conversation,
            data.action,
            data.target,
            data.ref,
            data.nonce,
        ),
    )
    if verdict == "bad":
        return "bad_signature"
    if data.tenant and activity_tenants(activity) != {data.tenant.lower()}:
        return "wrong_tenant"
    if not same_place(_str(_map(activity, "conversation"), "id"), data.where):
        return "wrong_conversation"
    # Signed before a rotation: ours, in its place, but out of date (as an unsigned card).
    return "unsigned" if verdict == "retired" else "ok"


def same_place(clicked_in: str, where: str) -> bool:
    """The click came from the conversation the card was posted in: the conversation itself,
    a thread under it (a card posted to a channel starts its own thread), or, for a card in a
    thread, that thread's channel."""
    if not clicked_in or not where:
        return False
    return (
        clicked_in == where
        or base_conversation(clicked_in) == where
        or (clicked_in == base_conversation(where))
    )


def _signed(*parts: str) -> str:
    """The signed parts as one ASCII JSON array: unambiguous whatever they hold (control
    characters, lone surrogates), so any text a card carries can be signed."""
    return json.dumps(parts, ensure_ascii=True, separators=(",", ":"))


def _map(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""
