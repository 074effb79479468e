"""The one command list.

Every platform's slash commands and command menus, the terminal chat, the playground composer
and the app manifests are all generated from `COMMANDS`, so a command exists everywhere
or nowhere. Where a platform has no slash commands (some chats, threads) the same
commands are typed as text (`quote 10 pro 10%`), which `parse_text_command` recognises.
"""

from __future__ import annotations

from domain.errors import CommandError
from domain.model import Frozen
from domain.quote_args import QUOTE_USAGE


class CommandSpec(Frozen):
    name: str
    summary: str
    usage: str
    aliases: tuple[str, ...] = ()
    auditors_only: bool = False
    permission: str | None = None
    """The row of the roles × actions matrix (`domain.permissions`) the command shares with
    a button that does the same (`button:return_to_bot` for `resume`); None: its own row,
    `command:<name>`."""
    names_channel: bool = False
    """Its text names a channel (`setup handoff #deals`): a platform that can send channel
    mentions resolved to their ids does so for it."""

    @property
    def permission_key(self) -> str:
        return self.permission or f"command:{self.name}"


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        name="quote",
        summary="Price a deal with its arithmetic; discounts above your cap go to approval",
        usage=QUOTE_USAGE,
    ),
    CommandSpec(
        name="lead",
        summary="Score pasted lead text and show what each signal contributed",
        usage="lead <text of the lead>",
        aliases=("score",),
    ),
    CommandSpec(
        name="audit",
        summary="Every decision on a conversation, lead or quote, with its inputs (auditors)",
        usage="audit <conversation id | lead id | quote id>",
        auditors_only=True,
    ),
    CommandSpec(
        name="metrics",
        summary="Conversion with confidence intervals, time to qualify, abandonment, funnel",
        usage="metrics",
    ),
    CommandSpec(
        name="correct",
        summary="Mark the bot's reading of the latest prospect message wrong; it teaches the next training run",
        usage="correct band warm | objection none | signal budget no | human yes legal | intent meeting_request yes",
    ),
    CommandSpec(
        name="resume",
        summary="Hand the conversation back to the bot after you took it over (Return to bot)",
        usage="resume",
        permission="button:return_to_bot",
    ),
    CommandSpec(
        name="won",
        summary="Record the deal as won (this conversation, or the conversation or ticket ID)",
        usage="won [ID]",
        permission="button:mark_won",
    ),
    CommandSpec(
        name="lost",
        summary="Record the deal as lost, with one of the policy's lost reasons and a note",
        usage="lost [ID] REASON [note]",
        permission="button:mark_lost",
    ),
    CommandSpec(
        name="setup",
        summary="Choose this workspace's handoff or leads channel (admins)",
        usage="setup handoff #channel  |  setup leads #channel",
        names_channel=True,
    ),
    CommandSpec(
        name="help",
        summary="What salesbot can do",
        usage="help",
    ),
)

_BY_NAME: dict[str, CommandSpec] = {
    key: spec for spec in COMMANDS for key in (spec.name, *spec.aliases)
}


def command_spec(name: str) -> CommandSpec:
    """The spec for a command name or alias (case-insensitive, leading `/` ignored)."""
    key = name.strip().lstrip("/").lower()
    spec = _BY_NAME.get(key)
    if spec is None:
        known = ", ".join(spec.name for spec in COMMANDS)
        raise CommandError(f"Unknown command {name.strip()!r}. Commands: {known}.")
    return spec


def parse_text_command(text: str) -> tuple[CommandSpec, str] | None:
    """Recognise `quote 10 pro 10%` or `/quote …` typed as a message.

    Returns None when the first word is not a command (it is then ordinary text). A
    leading `/` with an unknown word is an error, since the user clearly meant a command.
    """
    stripped = text.strip()
    if not stripped:
        return None
    head, _, rest = stripped.partition(" ")
    if head.lower().lstrip("/") in _BY_NAME:
        return command_spec(head), rest.strip()
    if head.startswith("/"):
        command_spec(head)  # raises with the list of known commands
    return None


def help_lines() -> tuple[str, ...]:
    return tuple(f"{spec.usage} — {spec.summary}" for spec in COMMANDS)
