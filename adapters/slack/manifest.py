"""The Slack app manifest, generated from the one command list.

A Slack admin creates the app from `manifest.json` (https://docs.slack.dev/app-manifests/): what
it declares is what the app may do, so the scopes are exactly those the code uses. The
checked-in file carries `DEFAULT_PUBLIC_URL`; `salesbot manifest slack` renders it for the
deployment's `SALESBOT_PUBLIC_URL`.

One request URL serves events, slash commands and interactivity (`POST /slack/events`);
the redirect URL (`GET /slack/oauth_redirect`) serves "Add to Slack" for more workspaces
(docs/slack-install.md). For
Socket Mode (`SLACK_APP_TOKEN`, no public URL), set `settings.socket_mode_enabled` to true
in the app's settings; Slack then ignores the request URLs.
"""

from __future__ import annotations

import json
from typing import Any

from domain.commands import COMMANDS, CommandSpec

DEFAULT_PUBLIC_URL = "https://salesbot.example.com"
EVENTS_PATH = "/slack/events"
REDIRECT_PATH = "/slack/oauth_redirect"
"""Where Slack sends an installer back with the code ("Add to Slack", `oauth.py`)."""

APP_NAME = "salesbot"
APP_DESCRIPTION = (
    "Qualifies leads, quotes with the arithmetic shown, and hands off to a human when it should."
)
BACKGROUND_COLOR = "#1f3a5f"

# On Slack, the list's `help` lives under `/salesbot` (a bare `/help` belongs to Slack).
SLASH_NAMES = {"help": APP_NAME}

# Slack's manifest schema limits (https://github.com/slackapi/manifest-schema).
MAX_COMMAND_DESCRIPTION = 2000
MAX_USAGE_HINT = 1000

BOT_SCOPES: tuple[str, ...] = (
    # chat.postMessage, chat.update (ticket and quote cards change status in place) and
    # chat.postEphemeral (usage errors, refusals, help). The bot is invited to the channels it
    # serves (handoff, leads), so chat:write.public is not needed.
    "chat:write",
    # The slash commands below.
    "commands",
    # `app_mention`: reps' @salesbot in channels and threads (slash commands have no threads).
    "app_mentions:read",
    # `message.im`, `message.channels`, `message.groups`, `message.mpim`: prospects' messages in
    # DMs, Slack Connect and private channels and group DMs. The same scopes let the outbox read
    # `conversations.history` / `conversations.replies` after a timeout, to find a post (by its
    # metadata) before resending it.
    "im:history",
    "channels:history",
    "groups:history",
    "mpim:history",
    # users.info: a rep is a full member, not a guest (`is_restricted`, `is_ultra_restricted`).
    "users:read",
    # usergroups.users.list: SALESBOT_AUDITORS / SALESBOT_APPROVERS may name user groups (S…).
    "usergroups:read",
    # files.getUploadURLExternal / files.completeUploadExternal (`files_upload_v2`): the
    # /metrics chart as an image. Added after the first releases: existing installs must
    # re-authorise (reinstall the app) for charts; until then the card still answers.
    # A chart for one person is shared with their user id (`channels`), which puts it in
    # their DM with the bot without im:write.
    "files:write",
)
# im:write (conversations.open) is absent: the bot only answers in DMs people open with it,
# approvers are reached in the handoff channel, and a private chart is shared by user id.

BOT_EVENTS: tuple[str, ...] = (
    "app_mention",
    "message.im",
    "message.channels",
    "message.groups",
    "message.mpim",
    # Stop sending and mark the installation inactive (no scope needed).
    "app_uninstalled",
    "tokens_revoked",
)


def build_manifest(public_url: str = DEFAULT_PUBLIC_URL) -> dict[str, Any]:
    request_url = public_url.rstrip("/") + EVENTS_PATH
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": APP_NAME,
            "description": APP_DESCRIPTION,
            "background_color": BACKGROUND_COLOR,
        },
        "features": {
            # The messages tab is how people DM the bot; read-only would stop them writing.
            "app_home": {
                "home_tab_enabled": False,
                "messages_tab_enabled": True,
                "messages_tab_read_only_enabled": False,
            },
            "bot_user": {"display_name": APP_NAME, "always_online": True},
            "slash_commands": [_slash_command(spec, request_url) for spec in COMMANDS],
        },
        "oauth_config": {
            # Used by "Add to Slack" (SLACK_CLIENT_ID); harmless for a single workspace.
            "redirect_urls": [public_url.rstrip("/") + REDIRECT_PATH],
            "scopes": {"bot": list(BOT_SCOPES)},
        },
        "settings": {
            "event_subscriptions": {"request_url": request_url, "bot_events": list(BOT_EVENTS)},
            "interactivity": {"is_enabled": True, "request_url": request_url},
            "org_deploy_enabled": False,
            # True for Socket Mode (SLACK_APP_TOKEN); the request URLs are then unused.
            "socket_mode_enabled": False,
            "token_rotation_enabled": False,
        },
    }


def manifest_json(public_url: str = DEFAULT_PUBLIC_URL) -> str:
    """The manifest as checked in: stable key order, 2-space indent, trailing newline."""
    return json.dumps(build_manifest(public_url), indent=2, ensure_ascii=False) + "\n"


def _slash_command(spec: CommandSpec, request_url: str) -> dict[str, Any]:
    name = SLASH_NAMES.get(spec.name, spec.name)
    command: dict[str, Any] = {
        "command": f"/{name}",
        "url": request_url,
        "description": spec.summary[:MAX_COMMAND_DESCRIPTION],
        # Channels named in `setup` arrive as `<#C123|name>` (the umbrella carries it too).
        "should_escape": spec.names_channel or name == APP_NAME,
    }
    hint = _usage_hint(spec, name)
    if hint:
        command["usage_hint"] = hint[:MAX_USAGE_HINT]
    return command


def _usage_hint(spec: CommandSpec, slash_name: str) -> str:
    """Slack shows the hint after the command, so each alternative drops the command word."""
    if slash_name != spec.name:
        return spec.usage  # `/salesbot help`: the command word is the argument
    stripped = []
    for alternative in spec.usage.split("  |  "):
        head, _, rest = alternative.strip().partition(" ")
        stripped.append(rest.strip() if head == spec.name else alternative.strip())
    return "  |  ".join(alt for alt in stripped if alt)
