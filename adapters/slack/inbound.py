"""Slack payload → `Inbound`: the inbound half of the Slack adapter.

Pure translation (the only I/O is the injected `is_guest` look-up): events, slash commands,
button clicks and the quote modal's submission each become exactly one `Inbound`, or an
`Ignored` with the reason, or (slash commands only) a `CommandUsage` answered on the spot.
Nothing here decides a business outcome; roles and rights are *stated* on the actor and
the domain decides by them.

Slack quirks this module absorbs (docs.slack.dev, "Events API", "message" event, "Slack Connect"):
- one @mention arrives twice, as `app_mention` and as `message.channels`, with different
  event ids: both map to `ids.message_delivery_id(channel, ts)`, so the runtime keeps one;
- messages from other organisations (Slack Connect) carry `user_team` / `source_team`;
- text arrives with `&`, `<`, `>` escaped as HTML entities;
- slash commands carry no `thread_ts` (Slack offers none inside threads);
- a channel named in a command arrives as `<#C123|deals>` (in messages always; in slash
  commands when the command escapes channels, `should_escape` in the manifest, which
  `/salesbot` and `/setup` do): `setup` reads the channel out of it (`ChannelRef`), and
  the other commands under `/salesbot` get the text back as typed (`#deals`, `@pat`, the
  link's text), as they did before `/salesbot` escaped;
- a message may be longer than the domain keeps (`MessagePosted.text`, 40,000 characters,
  which is also where Slack itself truncates): it is cut there with a visible marker,
  so it is answered and the record says it was cut, rather than refused or failing.

Clicks are bound to their card (`from_action`): a click is "ok" only when its value's
signature verifies for this installation and it was made where the card lives.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple, get_args

from adapters.ids import LEADS
from adapters.slack import ids
from adapters.slack.blocks import NOTE_ID
from adapters.slack.channels import installation_id
from domain.commands import COMMANDS, CommandSpec
from domain.inbound import (
    MAX_NAMED_USERS,
    NOTE_MAX_CHARS,
    ActionId,
    Actor,
    ButtonClicked,
    ChannelRef,
    ClickBinding,
    CommandInvoked,
    MessagePosted,
    Role,
    UserRef,
    fit_message,
)
from domain.model import Frozen

IsGuest = Callable[[str], Awaitable[bool]]
"""Whether a member of the installing team is a guest (users.info `is_restricted` /
`is_ultra_restricted`); the caller caches it."""


class SlackContext(Frozen):
    """What the translation needs to know about the installation and its configuration."""

    team_id: str
    bot_user_id: str
    bot_id: str | None = None
    installation: str = ""
    """The workspace as its actors' `Actor.installation`: "" for the first workspace (the
    configured `SLACK_BOT_TOKEN`'s), `slack:{team}` for one that added the app itself."""
    auditors: frozenset[str] = frozenset()
    approvers: frozenset[str] = frozenset()
    managers: frozenset[str] = frozenset()
    admins: frozenset[str] = frozenset()
    handoff_channel: str | None = None
    leads_channel: str | None = None
    card_channels: frozenset[str] = frozenset()
    """Further channels where this workspace's ticket and lead cards live: the configured
    ones, after an admin chose others (cards posted there before still work)."""


ThreadOwner = Callable[[str, str], Awaitable[str | None]]
"""(channel, thread_ts) → the conversation a thread is a view of (a lead's thread in the
leads channel), or None for an ordinary thread."""


class Ignored(Frozen):
    """A payload that produces nothing: logged with its reason and acknowledged with 200."""

    reason: str


class CommandUsage(Frozen):
    """An immediate ephemeral answer to a slash command when nothing should be stored."""

    text: str


SlackInbound = MessagePosted | CommandInvoked | ButtonClicked

# The quote modal (opened by the "Quote" button). Whoever builds the view uses these ids:
# `private_metadata` holds the conversation id; the args come either from one free-text block
# (`QUOTE_ARGS_BLOCK`, e.g. "10 pro 10%") or from one block per field in `QUOTE_FIELDS`
# (block_id = field name, any action_id), which become `qty=10 sku=PRO discount=10%`.
QUOTE_VIEW_CALLBACK_ID = "quote_form"
QUOTE_ARGS_BLOCK = "args"
QUOTE_FIELDS = ("qty", "sku", "unit", "discount", "tax")
_PERCENT_FIELDS = frozenset({"discount", "tax"})

_ACTIONS: frozenset[str] = frozenset(get_args(ActionId))
# Subtypes that are still a person saying something; every other subtype (edits,
# deletions, joins, topic changes, bot messages, …) is not input.
_SPOKEN_SUBTYPES = frozenset({"thread_broadcast", "file_share"})
_BY_NAME: dict[str, CommandSpec] = {
    key: spec for spec in COMMANDS for key in (spec.name, *spec.aliases)
}
_UMBRELLA = "salesbot"  # `/salesbot help`: Slack's home for the list's `help`
_SETUP = "setup"
_CHANNEL_MENTION = re.compile(r"<#([CG][A-Z0-9]{2,30})(?:\|([^>]*))?>")
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{8,30}$")
_PERSON_MENTION = re.compile(r"<(@[UW]|!subteam\^S)([A-Z0-9]{2,30})(?:\|([^>]*))?>")
_PERSON_ID = re.compile(r"^[UWS][A-Z0-9]{8,30}$")
_ESCAPED = re.compile(r"<([#@!]?)([^<>|]*)(?:\|([^<>]*))?>")


async def from_event(
    body: Mapping[str, Any],
    ctx: SlackContext,
    is_guest: IsGuest,
    thread_owner: ThreadOwner | None = None,
) -> SlackInbound | Ignored:
    """An `event_callback` body (`message.*` or `app_mention`) as a `MessagePosted`."""
    if body.get("type") != "event_callback":
        return Ignored(reason=f"not an event callback: {body.get('type')!r}")
    event = body.get("event")
    if not isinstance(event, Mapping):
        return Ignored(reason="event callback without an event")
    kind = event.get("type")
    if kind not in ("message", "app_mention"):
        return Ignored(reason=f"event type {kind!r} is not handled")
    skip = _not_a_person_speaking(event, ctx)
    if skip is not None:
        return skip
    user, channel, ts = _str(event, "user"), _str(event, "channel"), _str(event, "ts")
    if not (user and channel and ts):
        return Ignored(reason="message without a user, channel or ts")
    raw = _str(event, "text")
    mentioned = kind == "app_mention" or _mentions(raw, ctx.bot_user_id)
    if channel == ctx.handoff_channel and kind != "app_mention":
        # Chatter among the people working tickets is not input; an @mention is, and it
        # also arrives as `app_mention` (same delivery id), so the message copy can go.
        return Ignored(reason="handoff channel: only buttons and @mentions count")
    text = fit_message(unescape(strip_mention(raw, ctx.bot_user_id)))
    if not text:
        return Ignored(reason="empty text after the mention")
    direct = event.get("channel_type") == "im"
    team = _user_team(event)
    actor = await _actor(
        user,
        _event_name(event),
        foreign=team is not None and team != ctx.team_id,
        ctx=ctx,
        is_guest=is_guest,
    )
    addressed = direct or mentioned or actor.role != "rep"
    if not addressed and not _str(event, "thread_ts"):
        # Reps talk to each other in channels; only a DM or an @mention is addressed to the
        # bot. In a thread, a rep's words may be an answer to a prospect the bot serves:
        # they go to the domain unaddressed, to be recorded there (and nothing else).
        return Ignored(reason="a rep's channel message that does not mention the bot")
    thread = _str(event, "thread_ts") or (None if direct else ts)
    conversation = ids.conversation_id(ctx.team_id, channel, thread)
    if thread_owner is not None and channel == ctx.leads_channel and _str(event, "thread_ts"):
        # A lead's thread in the leads channel is a view of the lead's own conversation.
        conversation = await thread_owner(channel, _str(event, "thread_ts")) or conversation
    head, _, rest = text.partition(" ")
    if addressed and actor.role == "rep" and head.lstrip("/").lower() == _SETUP:
        # `@salesbot setup handoff #deals`: the channel is read here, where Slack's syntax
        # is known; the domain decides it as the slash command.
        args, named = named_channel(rest.strip())
        args, people = named_people(args)
        return CommandInvoked(
            delivery_id=ids.message_delivery_id(channel, ts),
            conversation_id=conversation,
            actor=actor,
            command=_SETUP,
            args=args,
            installation=installation_id(ctx.team_id),
            channel=named,
            users=people,
        )
    return MessagePosted(
        delivery_id=ids.message_delivery_id(channel, ts),
        conversation_id=conversation,
        actor=actor,
        text=text,
        addressed=addressed,
    )


async def from_command(
    form: Mapping[str, str], ctx: SlackContext, is_guest: IsGuest
) -> SlackInbound | Ignored | CommandUsage:
    """A slash command's form fields as a `CommandInvoked` in the channel (no thread).

    `/salesbot` is the umbrella: `/salesbot` and `/salesbot help` are `help`, and
    `/salesbot quote 10 pro` works like `/quote 10 pro`.
    """
    name = _str(form, "command").strip().lstrip("/").lower()
    raw = _str(form, "text").strip()
    text = unescape(raw).strip()
    if name == _UMBRELLA:
        head, _, rest = text.partition(" ")
        name, text = (head.lower() or "help"), rest.strip()
        spec = _BY_NAME.get(name.lstrip("/"))
        if spec is None:
            return CommandUsage(text=f"I don't know “{plain(head)}”.\n{command_list()}")
        if not spec.names_channel:
            # `/salesbot` escapes for `setup`; the others read the text as it was typed.
            text = unescape(plain(raw)).strip().partition(" ")[2].strip()
    else:
        spec = _BY_NAME.get(name)
        if spec is None or spec.name == "help":
            return CommandUsage(text=f"I don't know “/{name}”.\n{command_list()}")
    user, channel, trigger = (
        _str(form, "user_id"),
        _str(form, "channel_id"),
        _str(form, "trigger_id"),
    )
    if not (user and channel and trigger):
        return Ignored(reason="slash command without a user, channel or trigger_id")
    team = _str(form, "team_id") or None
    actor = await _actor(
        user,
        _str(form, "user_name"),
        foreign=team is not None and team != ctx.team_id,
        ctx=ctx,
        is_guest=is_guest,
    )
    if spec.names_channel:
        args, named = named_channel(text)
        args, people = named_people(args)
        return CommandInvoked(
            delivery_id=ids.command_delivery_id(trigger),
            conversation_id=ids.conversation_id(ctx.team_id, channel),
            actor=actor,
            command=spec.name,
            args=args,
            installation=installation_id(ctx.team_id),
            channel=named,
            users=people,
        )
    return CommandInvoked(
        delivery_id=ids.command_delivery_id(trigger),
        conversation_id=ids.conversation_id(ctx.team_id, channel),
        actor=actor,
        command=spec.name,
        args=text,
    )


async def from_action(
    payload: Mapping[str, Any], ctx: SlackContext, is_guest: IsGuest, signer: ids.ButtonSigner
) -> SlackInbound | Ignored:
    """A `block_actions` payload's first action as a `ButtonClicked`, bound to its card.

    The conversation and target come from the button's value, not from where the card sits,
    so a ticket card in the handoff channel acts on the prospect's conversation. The value
    is only believed when (in this order; the first that fails names the refusal):
    - the click happened in the installing workspace (`payload.team.id`; a Slack Connect
      user of another organisation clicking in our channel still has our team there, and
      their own in `user.team_id`) — else "wrong_workspace";
    - a signed value verifies for (team, conversation, action, target, card ref, nonce) —
      else "bad_signature";
    - the message holding the button is where that conversation's cards live: its channel
      (and thread, when the container names one), or the handoff or leads channel, where
      ticket, approval and lead cards are posted — else "wrong_conversation";
    - the value is signed at all — else "unsigned" (a card posted before signing existed).
    A refused click is recorded in the conversation where it was made: the claimed one
    when the click came from where that conversation's cards live, else the container's.
    """
    if payload.get("type") != "block_actions":
        return Ignored(reason=f"not a block_actions payload: {payload.get('type')!r}")
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], Mapping):
        return Ignored(reason="block_actions without an action")
    action = actions[0]
    # The renderer may suffix action ids to keep them unique in a block (`approve_quote:2`).
    action_id = _str(action, "action_id").split(":", 1)[0]
    if action_id not in _ACTIONS:
        return Ignored(reason=f"unknown action {action_id!r}")
    value = ids.parse_button_value(_str(action, "value"))
    if value is None or not value.nonce or not _ours(value.conversation, ctx):
        return Ignored(reason="foreign button")
    user = payload.get("user")
    if not isinstance(user, Mapping) or not _str(user, "id"):
        return Ignored(reason="block_actions without a user")
    place = _click_place(payload)
    if place is None:
        return Ignored(reason="block_actions without the channel the click was made in")
    team = payload.get("team")
    at_home = _place_holds(value.conversation, place, ctx)
    verdict = (
        signer.verdict(
            value.signature, value.conversation, action_id, value.target, value.ref, value.nonce
        )
        if value.signature
        else "retired"  # a card from before signing is as out of date as a retired key's
    )
    binding: ClickBinding = "ok"
    if not (isinstance(team, Mapping) and _str(team, "id") == ctx.team_id):
        binding = "wrong_workspace"
    elif verdict == "bad":
        binding = "bad_signature"
    elif not at_home:
        binding = "wrong_conversation"
    elif verdict == "retired":
        binding = "unsigned"
    conversation = (
        value.conversation
        if at_home
        else ids.conversation_id(ctx.team_id, place.channel, place.thread_ts)
    )
    actor = await _interactive_actor(user, ctx, is_guest)
    # Keyed by who clicked too: a refused click (a rep pressing Approve) must not use up
    # the button for the approver who clicks it next; a redelivery is still one delivery.
    # A click refused for its binding is keyed apart, so it cannot use up the real one.
    delivery = ids.SCHEME.delivery_id(f"action:{value.nonce}:{actor.id}")
    if binding != "ok":
        delivery += f":{binding}"
    return ButtonClicked(
        delivery_id=delivery,
        conversation_id=conversation,
        actor=actor,
        action=action_id,  # type: ignore[arg-type]  # checked against ActionId above
        target=value.target,
        binding=binding,
        note=_typed_note(payload),
    )


def _typed_note(payload: Mapping[str, Any]) -> str:
    """What the clicker typed in the card's text box (`blocks.NOTE_ID`), sent by Slack in the
    payload's `state.values`; "" when the card has none or it was left empty."""
    state = payload.get("state")
    values = state.get("values") if isinstance(state, Mapping) else None
    block = values.get(NOTE_ID) if isinstance(values, Mapping) else None
    element = block.get(NOTE_ID) if isinstance(block, Mapping) else None
    typed = _str(element, "value") if isinstance(element, Mapping) else ""
    return typed.strip()[:NOTE_MAX_CHARS]  # a text box's value arrives as typed, unescaped


class _Place(NamedTuple):
    """Where a click was made: the channel of the message holding the button, and its
    thread when the message is a reply in one."""

    channel: str
    thread_ts: str | None


def _click_place(payload: Mapping[str, Any]) -> _Place | None:
    container = payload.get("container")
    container = container if isinstance(container, Mapping) else {}
    channel = _str(container, "channel_id")
    if not channel:
        outer = payload.get("channel")
        channel = _str(outer, "id") if isinstance(outer, Mapping) else ""
    if not channel:
        return None
    thread = _str(container, "thread_ts")
    if thread and thread == _str(container, "message_ts"):
        thread = ""  # the parent of a thread is a top-level message
    return _Place(channel, thread or None)


def _place_holds(conversation: str, place: _Place, ctx: SlackContext) -> bool:
    """Whether cards of `conversation` live where the click was made."""
    if place.channel in (ctx.handoff_channel, ctx.leads_channel) or (
        place.channel in ctx.card_channels
    ):
        return True  # tickets, approvals and lead cards (and lead threads) live there
    where = ids.location(conversation)
    if where is None or where.channel != place.channel:
        return False
    if place.thread_ts is None:
        # A container without a thread: a top-level card, or one that does not say (an
        # ephemeral message); the channel is all there is to compare.
        return True
    return place.thread_ts == where.thread_ts


async def from_view_submission(
    payload: Mapping[str, Any], ctx: SlackContext, is_guest: IsGuest
) -> SlackInbound | Ignored:
    """The quote modal's submission as `CommandInvoked("quote", args)` in the conversation
    named by the view's `private_metadata`."""
    if payload.get("type") != "view_submission":
        return Ignored(reason=f"not a view_submission payload: {payload.get('type')!r}")
    view = payload.get("view")
    if not isinstance(view, Mapping) or view.get("callback_id") != QUOTE_VIEW_CALLBACK_ID:
        return Ignored(reason="not the quote form")
    conversation = _str(view, "private_metadata")
    if not _ours(conversation, ctx):
        return Ignored(reason="quote form without a conversation of this workspace")
    view_id, view_hash = _str(view, "id"), _str(view, "hash")
    user = payload.get("user")
    if not (view_id and isinstance(user, Mapping) and _str(user, "id")):
        return Ignored(reason="view_submission without a view id or user")
    return CommandInvoked(
        delivery_id=ids.SCHEME.delivery_id(f"view:{view_id}:{view_hash}"),
        conversation_id=conversation,
        actor=await _interactive_actor(user, ctx, is_guest),
        command="quote",
        args=_quote_args(_view_values(view)),
    )


def unescape(text: str) -> str:
    """Undo Slack's escaping of `&`, `<`, `>` so the domain sees what the user typed.

    `&amp;` goes last, so a typed `&lt;` (sent as `&amp;lt;`) stays `&lt;`.
    """
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def named_channel(text: str) -> tuple[str, ChannelRef | None]:
    """The first channel `text` names — a mention (`<#C123|deals>`, `<#C123>`) or a bare
    channel id — and the text with it written as people read it (`#deals`)."""
    found = _CHANNEL_MENTION.search(text)
    if found is not None:
        channel, name = found.group(1), (found.group(2) or "").strip()
        readable = f"#{name or channel}"
        return text[: found.start()] + readable + text[found.end() :], ChannelRef(
            id=channel, name=name
        )
    for word in text.split():
        if _CHANNEL_ID.match(word):
            return text, ChannelRef(id=word)
    return text, None


def named_people(text: str) -> tuple[str, tuple[UserRef, ...]]:
    """The people and user groups `text` names (`setup approvers @ann @sales-leads`) — user
    mentions (`<@U123|ann>`, `<@U123>`), user-group mentions (`<!subteam^S123|@sales>`) or
    bare ids — each once, in order, at most `MAX_NAMED_USERS`; and the text with them
    written as people read them (`@ann`)."""
    people: dict[str, UserRef] = {}

    def readable(found: re.Match[str]) -> str:
        kind, rest, label = found.group(1), found.group(2), (found.group(3) or "").strip()
        person = ("S" if kind.startswith("!") else kind[1]) + rest
        name = label.lstrip("@")
        people.setdefault(person, UserRef(id=person, name=name[:200]))
        return f"@{name or person}"

    text = _PERSON_MENTION.sub(readable, text)
    for word in text.split():
        if _PERSON_ID.match(word):
            people.setdefault(word, UserRef(id=word))
    return text, tuple(people.values())[:MAX_NAMED_USERS]


def plain(text: str) -> str:
    """Slack's escaped references as the person typed them: `<#C1|deals>` → `#deals`,
    `<@U1|pat>` → `@pat`, `<https://x|x>` → `x`, `<!here>` → `@here`."""

    def readable(found: re.Match[str]) -> str:
        sigil, target, label = found.group(1), found.group(2), found.group(3)
        if sigil == "!":
            return f"@{label or target.split('^')[0]}"
        if sigil:
            return f"{sigil}{label or target}"
        return label or target.removeprefix("mailto:")

    return _ESCAPED.sub(readable, text)


def strip_mention(text: str, bot_user_id: str) -> str:
    """The text without a leading `<@BOT>` (or `<@BOT|name>`) and the `:`/`,` after it."""
    return re.sub(rf"^\s*<@{re.escape(bot_user_id)}(?:\|[^>]*)?>[\s:,]*", "", text).strip()


def command_list() -> str:
    """The slash commands as Slack users type them: help lives under `/salesbot`."""
    lines = [
        f"• `/{_UMBRELLA} help` — {spec.summary}"
        if spec.name == "help"
        else f"• `/{spec.usage}` — {spec.summary}"
        for spec in COMMANDS
    ]
    return "Commands:\n" + "\n".join(lines)


def _not_a_person_speaking(event: Mapping[str, Any], ctx: SlackContext) -> Ignored | None:
    subtype = event.get("subtype")
    if subtype in ("message_changed", "message_deleted"):
        return Ignored(reason=subtype)
    bot_id = event.get("bot_id")
    if event.get("user") == ctx.bot_user_id or (bot_id and bot_id == ctx.bot_id):
        return Ignored(reason="the bot's own message")
    # Other apps' posts can carry `bot_id` with no subtype at all (and sometimes a user).
    if bot_id or subtype == "bot_message":
        return Ignored(reason="another bot's message")
    if subtype is not None and not isinstance(subtype, str):
        return Ignored(reason="a message subtype that is not a string")  # never a 500
    if subtype is not None and subtype not in _SPOKEN_SUBTYPES:
        return Ignored(reason=f"message subtype {subtype!r}")
    return None


def _mentions(text: str, bot_user_id: str) -> bool:
    return re.search(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", text) is not None


def _user_team(event: Mapping[str, Any]) -> str | None:
    """The team the speaker belongs to. `user_team` / `source_team` mark Slack Connect
    messages; `team` is the only one some payloads (e.g. `app_mention`) carry."""
    for key in ("user_team", "source_team", "team"):
        value = _str(event, key)
        if value:
            return value
    return None


def _event_name(event: Mapping[str, Any]) -> str:
    profile = event.get("user_profile")
    if isinstance(profile, Mapping):
        for key in ("display_name", "real_name", "name"):
            if _str(profile, key):
                return _str(profile, key)
    return _str(event, "username")


async def _interactive_actor(
    user: Mapping[str, Any], ctx: SlackContext, is_guest: IsGuest
) -> Actor:
    team = _str(user, "team_id") or None
    name = _str(user, "username") or _str(user, "name")
    return await _actor(
        _str(user, "id"),
        name,
        foreign=team is not None and team != ctx.team_id,
        ctx=ctx,
        is_guest=is_guest,
    )


async def _actor(
    user: str, name: str, *, foreign: bool, ctx: SlackContext, is_guest: IsGuest
) -> Actor:
    """Role by membership: another organisation's user, or a guest of ours, is a prospect.
    `sole_approver` when the configured approvers (groups expanded) are exactly this user."""
    role: Role = "prospect" if foreign or await is_guest(user) else "rep"
    return Actor(
        id=user,
        name=name or user,
        role=role,
        approver=user in ctx.approvers,
        auditor=user in ctx.auditors,
        sole_approver=ctx.approvers == frozenset({user}),
        manager=user in ctx.managers,
        admin=user in ctx.admins,
        installation=ctx.installation,
    )


def _ours(conversation: str, ctx: SlackContext) -> bool:
    if LEADS.owns_conversation(conversation):
        return True  # a lead's card or form, posted in its thread by this app
    where = ids.location(conversation)
    return where is not None and where.team == ctx.team_id and bool(where.channel)


def _view_values(view: Mapping[str, Any]) -> dict[str, str]:
    """block_id → the value of the block's (first) input, whatever its element type."""
    state = view.get("state")
    blocks = state.get("values") if isinstance(state, Mapping) else None
    values: dict[str, str] = {}
    if not isinstance(blocks, Mapping):
        return values
    for block_id, block in blocks.items():
        if not isinstance(block, Mapping):
            continue
        for element in block.values():
            if isinstance(element, Mapping):
                values[str(block_id)] = _element_value(element).strip()
                break
    return values


def _element_value(element: Mapping[str, Any]) -> str:
    option = element.get("selected_option")
    if isinstance(option, Mapping):
        return _str(option, "value")
    return _str(element, "value")


def _quote_args(values: Mapping[str, str]) -> str:
    if values.get(QUOTE_ARGS_BLOCK):
        return values[QUOTE_ARGS_BLOCK]
    parts = []
    for field in QUOTE_FIELDS:
        value = "".join(values.get(field, "").split())
        if not value:
            continue
        # The form's labels say "%", so a bare 10 means 10% (typed as text it would be
        # refused as ambiguous).
        if field in _PERCENT_FIELDS and not value.endswith("%"):
            value += "%"
        parts.append(f"{field}={value}")
    return " ".join(parts)


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""
