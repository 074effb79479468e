"""Teams activity → `Inbound`: the inbound half of the Teams adapter.

Pure translation: each Bot Framework activity becomes exactly one `Inbound`, an `Ignored`
with the reason, or a `Greeting` (the bot was added somewhere; the runtime greets or stores
the conversation reference). Nothing here decides a business outcome; roles and rights are
*stated* on the actor and the domain decides by them, exactly as for Slack.

Teams quirks this module absorbs (learn.microsoft.com/microsoftteams/platform, "Conversation
basics", "Channel and group conversations", "Get Teams context", "Universal Actions"):
- an @mention arrives inline as `<at>Name</at>` plus a `mention` entity naming the bot by id;
  in channels and group chats the bot only receives messages that @mention it (unless it
  holds the RSC permission to read all channel messages);
- text may carry HTML entities (`&amp;`, `&nbsp;`);
- Teams may redeliver after about 15 s with a *new* activity id: card actions are deduped on
  the nonce in their data, not on the activity id;
- `Action.Execute` arrives as an `invoke` named `adaptiveCard/action`, its `Action.Submit`
  fallback as a `message` with `value`: both become the same `ButtonClicked`;
- activities carry no guest flag. A guest has an Entra object id *in the host tenant* and
  the conversation's tenant is the host's, so tenant ids alone cannot tell a guest from a
  member. Only the roster look-up (`GET /v3/conversations/{id}/members/{user}`) says so, as
  `userRole` "user" / "guest" / "anonymous". This module reads `userRole` from `from` (where
  the runtime copies the looked-up value) or `channelData`, and treats a sender without an
  `aadObjectId` (an anonymous meeting participant) as a prospect.
"""

from __future__ import annotations

import copy
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast, get_args

from adapters.action_binding import ActionKey
from adapters.ids import LEADS
from adapters.teams import binding, ids
from adapters.teams.book import THREAD_MARK
from adapters.teams.cards import NOTE_ID
from domain.inbound import (
    NOTE_MAX_CHARS,
    ActionId,
    Actor,
    ButtonClicked,
    ClickBinding,
    CommandInvoked,
    MessagePosted,
    Role,
    fit_message,
)
from domain.model import Frozen

EXECUTE_INVOKE = "adaptiveCard/action"

_ACTIONS: frozenset[str] = frozenset(get_args(ActionId))
_NOT_MEMBERS = frozenset({"guest", "anonymous"})
_BOT_ID_PREFIX = "28:"  # Teams gives bots `28:` ids and people `29:` ids


MAX_ENTITIES = 64


@dataclass(frozen=True, kw_only=True)
class TeamsContext:
    """What the translation needs to know about the bot and its configuration.

    `tenant_id` is the tenant whose members (not guests) are reps: the home tenant, or,
    for an activity of a tenant with an installation, that tenant (the endpoint chooses
    per activity, `tenants.py`). None — no home tenant and no installation — leaves no one
    provably a member, so everyone is a prospect: the safe side for discount approval and
    audits.
    The user id sets hold ids as Teams gives them: `aadObjectId`, or `from.id`.
    `action_key` checks the signature on a clicked button's data (`binding.py`).
    """

    tenant_id: str | None
    bot_id: str
    action_key: ActionKey
    auditors: frozenset[str] = frozenset()
    approvers: frozenset[str] = frozenset()
    managers: frozenset[str] = frozenset()
    admins: frozenset[str] = frozenset()
    installation: str = ""
    """The tenant as its actors' `Actor.installation`: "" for the home tenant (the first
    installation), `teams:{tenant}` for another installed tenant (`ids.installation_id`)."""


class Ignored(Frozen):
    """An activity that produces nothing: logged with its reason and acknowledged."""

    reason: str


class Greeting(Frozen):
    """The bot was added to a conversation: in personal scope the runtime greets the user;
    in a team or group chat it stores the reference (the fallback destination for handoff
    and lead posts)."""

    conversation_reference: dict[str, Any]
    personal: bool
    welcome: CommandInvoked | None = None
    """In a personal chat: `help` for the person who added the bot, so they learn what it
    does through the runtime like any command (recorded, sent by the outbox)."""


TeamsInbound = MessagePosted | ButtonClicked


def from_activity(
    activity: Mapping[str, Any], ctx: TeamsContext
) -> TeamsInbound | Ignored | Greeting:
    """One Bot Framework activity as what it means to the bot."""
    kind = activity.get("type")
    if kind == "message":
        return _from_message(activity, ctx)
    if kind == "invoke":
        return _from_invoke(activity, ctx)
    if kind == "conversationUpdate":
        return _from_conversation_update(activity, ctx)
    return Ignored(reason=f"activity type {kind!r} is not handled")


def conversation_reference(activity: Mapping[str, Any]) -> dict[str, Any]:
    """The Bot Framework ConversationReference of an activity, as raw protocol JSON.

    Stored as JSON (not an SDK object) so proactive posts survive an SDK swap. Absent fields
    are left out, and so are fields of the accounts and the conversation that a reference
    does not use (`REFERENCE_FIELDS`): a reference stays small whatever an activity carries.
    The tenant is copied into `conversation.tenantId` when only `channelData` has it (as in
    personal chats), because proactive sends need it there.

    The activity's own id (the SDK's `activityId`) is left out: it names one message, not
    the conversation, nothing reads it back (posts go to the conversation, not as replies
    to an activity), and kept, it made the reference differ at every message, so every
    message wrote it again (one more write transaction per message, issue 18).
    """
    reference: dict[str, Any] = {}
    for key, source in (
        ("user", "from"),
        ("bot", "recipient"),
        ("conversation", "conversation"),
        ("channelId", "channelId"),
        ("serviceUrl", "serviceUrl"),
        ("locale", "locale"),
    ):
        value = activity.get(source)
        if isinstance(value, Mapping):
            kept = REFERENCE_FIELDS[key]
            reference[key] = {k: copy.deepcopy(v) for k, v in value.items() if k in kept}
        elif value is not None:
            reference[key] = copy.deepcopy(value)
    tenant = _str(_map(_map(activity, "channelData"), "tenant"), "id")
    conversation = reference.get("conversation")
    if tenant and isinstance(conversation, dict) and not conversation.get("tenantId"):
        conversation["tenantId"] = tenant
    return reference


_ACCOUNT_FIELDS = frozenset({"id", "name", "aadObjectId", "role"})
REFERENCE_FIELDS: dict[str, frozenset[str]] = {
    "user": _ACCOUNT_FIELDS,
    "bot": _ACCOUNT_FIELDS,
    "conversation": frozenset(
        {"id", "name", "conversationType", "tenantId", "isGroup", "aadObjectId", "role"}
    ),
}
"""The ChannelAccount and ConversationAccount fields of the Bot Framework schema."""


def strip_bot_mention(activity: Mapping[str, Any], bot_ids: frozenset[str]) -> tuple[str, bool]:
    """The text without the bot's `<at>…</at>` (and a `:`/`,` after a leading one), other
    people's mentions reduced to their names, entities unescaped; and whether the bot was
    mentioned. Mentions are removed before unescaping, so typed `&lt;at&gt;` stays text."""
    text = _str(activity, "text")
    mentioned = False
    # Only the first entities: each mention is a pass over the text, and Teams sends a few.
    for entity in _list(activity, "entities")[:MAX_ENTITIES]:
        if not isinstance(entity, Mapping) or entity.get("type") != "mention":
            continue
        who = _map(entity, "mentioned")
        if _str(who, "id") not in bot_ids:
            continue
        mentioned = True
        tag = _str(entity, "text") or f"<at>{_str(who, 'name')}</at>"
        text = text.replace(tag, "")
    text = re.sub(r"</?at>", "", text)
    text = html.unescape(text).replace("\xa0", " ")
    return re.sub(r"^[\s:,]+", "", text).strip(), mentioned


def is_thread_reply(activity: Mapping[str, Any]) -> bool:
    """A reply inside a channel thread: the conversation names a thread root other than the
    message itself (a new channel post's conversation id names the post as its own root)."""
    conversation = _str(_map(activity, "conversation"), "id")
    _, mark, root = conversation.partition(THREAD_MARK)
    return bool(mark) and root != _str(activity, "id")


def _from_message(activity: Mapping[str, Any], ctx: TeamsContext) -> TeamsInbound | Ignored:
    sender = _map(activity, "from")
    sender_id = _str(sender, "id")
    if sender_id in _bot_ids(activity, ctx):
        return Ignored(reason="the bot's own message")
    if sender_id.startswith(_BOT_ID_PREFIX):
        return Ignored(reason="another bot's message")
    if activity.get("value") is not None:
        # Action.Submit: the card's data (plus its inputs) as the message's value.
        return _click(activity, activity.get("value"), ctx)
    conversation, activity_id = _str(_map(activity, "conversation"), "id"), _str(activity, "id")
    if not (sender_id and conversation and activity_id):
        return Ignored(reason="message without a sender, conversation or id")
    text, mentioned = strip_bot_mention(activity, _bot_ids(activity, ctx))
    if not text:
        return Ignored(reason="empty text after the mention")
    text = fit_message(text)
    actor = _actor(activity, ctx)
    kind = _map(activity, "conversation").get("conversationType")
    personal = kind == "personal"
    addressed = personal or mentioned or actor.role != "rep"
    if not addressed and not is_thread_reply(activity) and kind != "groupChat":
        # Reps talk to each other in channels; only a personal chat or an @mention is
        # addressed to the bot. In a thread or a group chat (one a guest may share), a rep's
        # words may answer a prospect the bot serves: they go to the domain unaddressed, to
        # be recorded (and, under the policy's `[handoff]`, to take the conversation over).
        return Ignored(reason="a rep's message that does not mention the bot")
    return MessagePosted(
        delivery_id=ids.activity_delivery_id(activity_id),
        conversation_id=ids.conversation_id(conversation),
        actor=actor,
        text=text,
        addressed=addressed,
    )


def _from_invoke(activity: Mapping[str, Any], ctx: TeamsContext) -> TeamsInbound | Ignored:
    name = activity.get("name")
    if name != EXECUTE_INVOKE:
        return Ignored(reason=f"invoke {name!r} is not handled")
    action = _map(_map(activity, "value"), "action")
    verb = _str(action, "verb")
    if verb not in _ACTIONS:
        return Ignored(reason=f"unknown verb {verb!r}")
    click = _click(activity, action.get("data"), ctx)
    if isinstance(click, ButtonClicked) and click.action != verb:
        return Ignored(reason=f"verb {verb!r} does not match the card data's action")
    return click


def _click(activity: Mapping[str, Any], data: Any, ctx: TeamsContext) -> ButtonClicked | Ignored:
    """A card action. Its conversation, action and target come from the data we wrote, once
    its signature shows we wrote it for the place it was clicked in (`binding.py`); any
    other click is recorded, refused, in the conversation it was made in."""
    parsed = ids.parse_action_data(data)
    if parsed is None:
        return Ignored(reason="foreign card data")
    if parsed.action not in _ACTIONS:
        return Ignored(reason=f"unknown action {parsed.action!r}")
    if not _ours(parsed.conversation):
        return Ignored(reason="card data naming another platform's conversation")
    if not _str(_map(activity, "from"), "id"):
        return Ignored(reason="card action without a sender")
    clicked_in = _str(_map(activity, "conversation"), "id")
    if not clicked_in:
        return Ignored(reason="card action without a conversation")
    actor = _actor(activity, ctx)
    bound: ClickBinding = binding.check(ctx.action_key, parsed, activity)
    # The nonce, not the activity id: Teams' redelivery of a click has a new activity id.
    # Keyed by who clicked too, as on Slack: a refused click (a rep pressing Approve)
    # must not use up the button for the approver who clicks it next; and by the binding,
    # so a forged click naming a real button's nonce never takes that button's place.
    delivery = ids.SCHEME.delivery_id(f"action:{parsed.nonce}:{actor.id}")
    return ButtonClicked(
        delivery_id=delivery if bound == "ok" else f"{delivery}:{bound}",
        conversation_id=(
            parsed.conversation
            if bound == "ok" or _legacy_in_place(bound, parsed, clicked_in, actor)
            else ids.conversation_id(clicked_in)
        ),
        actor=actor,
        action=cast(ActionId, parsed.action),  # checked against ActionId above
        target=parsed.target,
        binding=bound,
        note=_typed_note(data),
    )


def _typed_note(data: Any) -> str:
    """What the clicker typed in the card's text box: Teams merges an input's value into the
    pressed action's data under the input's id (`cards.NOTE_ID`); "" when there is none."""
    typed = data.get(NOTE_ID) if isinstance(data, Mapping) else None
    return typed.strip()[:NOTE_MAX_CHARS] if isinstance(typed, str) else ""


def _legacy_in_place(
    bound: ClickBinding, data: ids.ActionData, clicked_in: str, actor: Actor
) -> bool:
    """A card from before signing, clicked where its own conversation lives or by one of our
    reps (a ticket card in the handoff channel): refused in the conversation it names, so
    the domain can post that card again as it stands now. Anyone else's unsigned click is
    recorded where it was made."""
    if bound != "unsigned":
        return False
    own = ids.bf_conversation(data.conversation)
    return actor.role == "rep" or (own is not None and binding.same_place(clicked_in, own))


def _from_conversation_update(activity: Mapping[str, Any], ctx: TeamsContext) -> Greeting | Ignored:
    bots = _bot_ids(activity, ctx)
    added = _list(activity, "membersAdded")
    if not any(isinstance(m, Mapping) and _str(m, "id") in bots for m in added):
        return Ignored(reason="conversation update that does not add the bot")
    if not _str(_map(activity, "conversation"), "id") or not _str(activity, "serviceUrl"):
        return Ignored(reason="bot added, but the activity has no conversation or serviceUrl")
    personal = _map(activity, "conversation").get("conversationType") == "personal"
    activity_id = _str(activity, "id")
    welcome = None
    if personal and activity_id and _str(_map(activity, "from"), "id"):
        welcome = CommandInvoked(
            delivery_id=ids.activity_delivery_id(activity_id),
            conversation_id=ids.conversation_id(_str(_map(activity, "conversation"), "id")),
            actor=_actor(activity, ctx),
            command="help",
        )
    return Greeting(
        conversation_reference=conversation_reference(activity),
        personal=personal,
        welcome=welcome,
    )


def _actor(activity: Mapping[str, Any], ctx: TeamsContext) -> Actor:
    sender = _map(activity, "from")
    aad, teams_id = _str(sender, "aadObjectId"), _str(sender, "id")
    known = {aad, teams_id} - {""}
    role: Role = "rep" if _is_member(activity, ctx) else "prospect"
    user = aad or teams_id
    return Actor(
        id=user,
        name=_str(sender, "name") or user,
        role=role,
        approver=bool(known & ctx.approvers),
        auditor=bool(known & ctx.auditors),
        # Every configured approver names this person (their object id, their Teams id or
        # both): nobody else can approve their requests.
        sole_approver=bool(ctx.approvers) and ctx.approvers <= known,
        manager=bool(known & ctx.managers),
        admin=bool(known & ctx.admins),
        installation=ctx.installation,
    )


def _is_member(activity: Mapping[str, Any], ctx: TeamsContext) -> bool:
    """A member of the bot's tenant who is not a guest. Every tenant id the activity states
    (the sender's own when present, the conversation's, channelData's) must be the bot's."""
    sender = _map(activity, "from")
    if ctx.tenant_id is None or not _str(sender, "aadObjectId"):
        return False
    channel_data = _map(activity, "channelData")
    roles = {_str(sender, "userRole").lower(), _str(channel_data, "userRole").lower()}
    if roles & _NOT_MEMBERS:
        return False
    tenants = {
        _str(sender, "tenantId").lower(),
        _str(_map(activity, "conversation"), "tenantId").lower(),
        _str(_map(channel_data, "tenant"), "id").lower(),
    } - {""}
    return tenants == {ctx.tenant_id.lower()}


def _bot_ids(activity: Mapping[str, Any], ctx: TeamsContext) -> frozenset[str]:
    """The bot as configured, and as this activity's recipient (which is always the bot)."""
    return frozenset({ctx.bot_id, _str(_map(activity, "recipient"), "id")} - {""})


def _ours(conversation: str) -> bool:
    # Lead conversations (the lead feed's) are ours too: their cards are posted here.
    return LEADS.owns_conversation(conversation) or bool(ids.bf_conversation(conversation))


def _map(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    return value if isinstance(value, list) else []


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""
