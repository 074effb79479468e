"""The Teams app manifest (schema v1.30) and the app package, generated from the one command list.

A Teams admin uploads the package (`salesbot teams-package`): a zip with `manifest.json`,
`color.png` and `outline.png` at its root
(https://learn.microsoft.com/en-us/microsoftteams/platform/concepts/build-and-test/apps-package).
The app id and the bot id are both the Azure bot registration's Microsoft App ID
(`TEAMS_APP_ID`): one id keeps the manifest, the JWT audience and the registration in step.

Teams has no slash commands here, so `commandLists` is the command menu: picking an entry puts
its title in the compose box, and the adapter parses it as a text command (`quote 10 pro 10%`).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from adapters.teams.icons import ACCENT_COLOR, color_icon, outline_icon
from domain.commands import COMMANDS, CommandSpec

DEFAULT_PUBLIC_URL = "https://salesbot.example.com"
SCHEMA_URL = "https://developer.microsoft.com/json-schemas/teams/v1.30/MicrosoftTeams.schema.json"
MANIFEST_VERSION = "1.30"

# Teams needs a GUID even to render the manifest; the nil GUID marks one that cannot be uploaded.
PLACEHOLDER_APP_ID = "00000000-0000-0000-0000-000000000000"
PLACEHOLDER_NOTICE = (
    "TEAMS_APP_ID is not set, so the manifest uses the placeholder app id "
    f"{PLACEHOLDER_APP_ID}. Teams will not accept it: set TEAMS_APP_ID to the bot "
    "registration's Microsoft App ID and build the manifest again."
)

APP_NAME = "salesbot"
APP_FULL_NAME = "salesbot: auditable sales assistant"
SHORT_DESCRIPTION = "Qualifies leads and quotes deals with the arithmetic shown."
FULL_DESCRIPTION = (
    "salesbot qualifies leads, quotes with the arithmetic shown, and hands off to a human when "
    "it should. Every decision is recorded with its inputs, so an auditor can recompute it. "
    "Type a command or pick one from the menu: quote, lead, audit, metrics, help."
)

ICON_COLOR = "color.png"
ICON_OUTLINE = "outline.png"

# Where the bot can be talked to; a separate command list per scope, as Teams asks.
BOT_SCOPES: tuple[str, ...] = ("personal", "team", "groupChat")
# `identity`: who is writing (a rep or a guest decides the role). `messageTeamMembers`: proactive
# handoff, approval and lead posts in channels nobody has just written in.
PERMISSIONS: tuple[str, ...] = ("identity", "messageTeamMembers")
# Resource-specific consent to receive the messages that do not @mention the bot, in the teams
# and chats it is added to (https://learn.microsoft.com/en-us/microsoftteams/platform/bots/how-to/conversations/channel-messages-with-rsc):
# a rep answering a guest in a thread or a group chat takes the conversation over (the handoff
# desk), and the bot must see that to go quiet. Reps' other chatter is dropped by the adapter.
RESOURCE_SPECIFIC: tuple[str, ...] = ("ChannelMessage.Read.Group", "ChatMessage.Read.Chat")

# Teams' command menu limits (https://learn.microsoft.com/en-us/microsoftteams/platform/bots/how-to/create-a-bot-commands-menu);
# stricter than the v1.30 JSON schema (12 commands, 128-character titles, 4000-character text).
MAX_COMMANDS = 10
MAX_COMMAND_TITLE = 32
MAX_COMMAND_DESCRIPTION = 128

_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
# Zip entries carry a timestamp; a fixed one (the earliest zip can store) makes builds identical.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def resolve_app_id(configured: str | None) -> tuple[str, str | None]:
    """The app id to write, and the notice to show when it had to be the placeholder."""
    if configured and configured.strip():
        return configured.strip(), None
    return PLACEHOLDER_APP_ID, PLACEHOLDER_NOTICE


def build_manifest(
    *, app_id: str, public_url: str = DEFAULT_PUBLIC_URL, version: str = "0.1.0"
) -> dict[str, Any]:
    if not _GUID.fullmatch(app_id):
        raise ValueError(
            f"The Teams app id must be a GUID (the bot registration's Microsoft App ID), "
            f"not {app_id!r}."
        )
    base, host = _site(public_url)
    return {
        "$schema": SCHEMA_URL,
        "manifestVersion": MANIFEST_VERSION,
        "version": version,
        "id": app_id,
        "developer": {
            "name": APP_NAME,
            "websiteUrl": base,
            "privacyUrl": f"{base}/privacy",
            "termsOfUseUrl": f"{base}/terms",
        },
        "name": {"short": APP_NAME, "full": APP_FULL_NAME},
        "description": {"short": SHORT_DESCRIPTION, "full": FULL_DESCRIPTION},
        "icons": {"outline": ICON_OUTLINE, "color": ICON_COLOR},
        "accentColor": ACCENT_COLOR,
        "bots": [
            {
                "botId": app_id,
                "scopes": list(BOT_SCOPES),
                "supportsFiles": False,
                "isNotificationOnly": False,
                "commandLists": [command_list(COMMANDS, scope) for scope in BOT_SCOPES],
            }
        ],
        "permissions": list(PERMISSIONS),
        "authorization": {
            "permissions": {
                "resourceSpecific": [
                    {"name": name, "type": "Application"} for name in RESOURCE_SPECIFIC
                ]
            }
        },
        "validDomains": [host],
    }


def manifest_json(*, app_id: str, public_url: str = DEFAULT_PUBLIC_URL) -> str:
    """The manifest as written to disk: stable key order, 2-space indent, trailing newline."""
    manifest = build_manifest(app_id=app_id, public_url=public_url)
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def build_package(*, app_id: str, public_url: str = DEFAULT_PUBLIC_URL) -> bytes:
    """The app package zip; the same inputs give byte-identical zips, so builds can be compared."""
    files = (
        ("manifest.json", manifest_json(app_id=app_id, public_url=public_url).encode("utf-8")),
        (ICON_COLOR, color_icon()),
        (ICON_OUTLINE, outline_icon()),
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # ZipInfo guesses from the host OS; fix it to Unix
            info.external_attr = 0o644 << 16
            archive.writestr(info, data, compresslevel=9)
    return buffer.getvalue()


def command_list(specs: Sequence[CommandSpec], scope: str) -> dict[str, Any]:
    """One scope's command menu, held to Teams' limits.

    A title is what Teams types for the user, so a title that does not fit is an error rather
    than a truncated command nobody can run; so are more commands than the menu shows, since a
    command must exist everywhere or nowhere. A long description is only help text: it is cut.
    """
    if len(specs) > MAX_COMMANDS:
        raise ValueError(
            f"A Teams command menu holds at most {MAX_COMMANDS} commands; there are {len(specs)}."
        )
    commands = []
    for spec in specs:
        if len(spec.name) > MAX_COMMAND_TITLE:
            raise ValueError(
                f"The command {spec.name!r} is longer than the {MAX_COMMAND_TITLE} characters "
                "a Teams command title allows."
            )
        commands.append(
            {"title": spec.name, "description": _clip(spec.summary, MAX_COMMAND_DESCRIPTION)}
        )
    return {"scopes": [scope], "commands": commands}


def _site(public_url: str) -> tuple[str, str]:
    """The public URL without a trailing slash, and its host for `validDomains`."""
    parts = urlsplit(public_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"The public URL must be an http(s) URL with a host, not {public_url!r}.")
    return public_url.strip().rstrip("/"), parts.hostname


def _clip(text: str, limit: int) -> str:
    """Cut at a word boundary where there is one, so the menu never shows half a word."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if text[limit - 1] != " " and " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip() + "…"
