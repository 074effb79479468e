"""Names shared by the Teams translations in both directions.

Conversation ids are `teams:{conversation.id}`, the Bot Framework conversation id verbatim:
it already encodes the chat, the channel and, for a channel thread, the thread's root
(`19:…@thread.tacv2;messageid=1677621221150`). The id is the address: the router reads the
Bot Framework id back out of it.

Card actions carry their own routing in their data, so a click is routed to the right
conversation whatever message the card sits in (a ticket card in the handoff channel acts
on the prospect's conversation). The same data serves `Action.Execute` (the `verb` is the
action id, the data arrives as an `adaptiveCard/action` invoke's `value.action.data`) and
its `Action.Submit` fallback (the data arrives as a message's `value`). In both, Teams
merges the card's input values into the data, so extra keys are expected and ignored.

Each button's data is also signed for the place its card is posted (`binding.py`): the
tenant (`tn`), the Bot Framework conversation holding the card (`w`) and the signature
(`s`). Data with our marker but no `s` comes from a card posted before buttons were signed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from adapters.ids import IdScheme

PREFIX = "teams"
SCHEME = IdScheme(
    adapter=PREFIX,
    channel_prefix=f"{PREFIX}:",
    delivery_prefixes=(f"{PREFIX}:",),
    conversation_prefix=f"{PREFIX}:",
)
"""Teams' ids: channels `teams:{conversation or destination}`, deliveries `teams:act:…`,
conversations `teams:{Bot Framework conversation id}`."""
_MARKER = "salesbot"  # tells our card data from other apps' (and hand-made) submissions
_SIGNATURE = "s"
MAX_SHORT_FIELD = 64
"""The longest action, nonce or signature in data we wrote (ours are under 40 characters)."""
MAX_FIELD = 1024
"""The longest conversation, target, ref, tenant or place in data we wrote."""


INSTALLATION_PREFIX = f"{PREFIX}:"


def installation_id(tenant: str) -> str:
    """How a tenant's installation is named to the domain (`CommandInvoked.installation`;
    `Actor.installation` for a tenant other than the home one): Entra tenant ids are GUIDs,
    compared lower-case."""
    return f"{INSTALLATION_PREFIX}{tenant.lower()}"


def tenant_of(installation: str) -> str | None:
    """The tenant an installation id names; None for another platform's."""
    if not installation.startswith(INSTALLATION_PREFIX):
        return None
    tenant = installation.removeprefix(INSTALLATION_PREFIX)
    return tenant if tenant and ":" not in tenant else None


def conversation_id(bf_conversation_id: str) -> str:
    return SCHEME.conversation_id(bf_conversation_id)


def bf_conversation(conversation: str) -> str | None:
    """The Bot Framework conversation id of a Teams conversation id; None for other
    platforms' ids (Bot Framework ids contain colons, so only the prefix is split off)."""
    if not SCHEME.owns_conversation(conversation):
        return None
    return conversation.removeprefix(f"{PREFIX}:") or None


def activity_delivery_id(activity_id: str) -> str:
    return SCHEME.delivery_id(f"act:{activity_id}")


def action_data(
    conversation: str, action: str, target: str, nonce: str, ref: str | None = None
) -> dict[str, Any]:
    """The data of a card button, for `Action.Execute` and its `Action.Submit` fallback.
    `ref` is the card's own ref: an invoke is answered with *that* card refreshed."""
    data: dict[str, Any] = {_MARKER: 1, "c": conversation, "a": action, "t": target, "n": nonce}
    if ref:
        data["r"] = ref
    return data


class ActionData(NamedTuple):
    conversation: str
    action: str
    target: str
    nonce: str
    ref: str = ""
    tenant: str = ""
    """The tenant the card was posted for ("" when unknown then)."""
    where: str = ""
    """The Bot Framework conversation the card was posted in."""
    signature: str | None = None
    """None: unsigned (a card from before signing). A present but non-string `s` is kept
    as "", which verifies against nothing."""


def parse_action_data(data: Any) -> ActionData | None:
    """None for data this app did not write (another app's card, a forged submission)."""
    if not isinstance(data, Mapping):
        return None
    marker = data.get(_MARKER)
    if type(marker) is not int or marker != 1:  # `True == 1`, but True is not our marker
        return None
    c, a, t, n = data.get("c"), data.get("a"), data.get("t"), data.get("n")
    if not (isinstance(c, str) and isinstance(a, str) and isinstance(t, str)):
        return None
    if not (isinstance(n, str) and c and a and n):
        return None
    parsed = ActionData(
        c,
        a,
        t,
        n,
        _text(data.get("r")),
        _text(data.get("tn")),
        _text(data.get("w")),
        _text(data.get(_SIGNATURE)) if _SIGNATURE in data else None,
    )
    if max(len(a), len(n), len(parsed.signature or "")) > MAX_SHORT_FIELD:
        return None  # longer than any we write: not ours
    if max(len(c), len(t), len(parsed.ref), len(parsed.tenant), len(parsed.where)) > MAX_FIELD:
        return None
    return parsed


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
