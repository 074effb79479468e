"""The Slack app manifest: generated from the command list, checked in, valid for Slack."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator  # type: ignore[import-untyped]  # no stubs installed
from jsonschema.validators import validator_for  # type: ignore[import-untyped]

from adapters.slack.manifest import BOT_SCOPES, build_manifest, manifest_json
from domain.commands import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests" / "fixtures" / "slack" / "manifest.schema.json"


def test_the_checked_in_manifest_is_exactly_what_the_command_list_generates() -> None:
    checked_in = (ROOT / "manifest.json").read_text(encoding="utf-8")
    assert checked_in == manifest_json(), (
        "manifest.json is stale: regenerate it from adapters.slack.manifest.manifest_json() "
        "(`salesbot manifest slack > manifest.json`)"
    )


def test_the_manifest_validates_against_slacks_manifest_schema() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator_class: Any = validator_for(schema)
    assert validator_class is Draft7Validator  # the schema declares draft-07
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(build_manifest())
    ]
    assert errors == []


def test_the_background_colour_is_a_hex_colour_slack_accepts() -> None:
    # The schema spells this constraint `regex`, which JSON Schema ignores: check it here.
    colour = build_manifest()["display_information"]["background_color"]
    assert re.fullmatch(r"#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?", colour)


def test_every_command_becomes_a_slash_command_and_help_lives_under_salesbot() -> None:
    commands = build_manifest()["features"]["slash_commands"]
    assert [c["command"] for c in commands] == [
        "/quote",
        "/lead",
        "/audit",
        "/metrics",
        "/correct",
        "/resume",
        "/won",
        "/lost",
        "/setup",
        "/salesbot",
    ]
    assert [c["description"] for c in commands] == [spec.summary for spec in COMMANDS]
    salesbot = commands[-1]
    assert salesbot["usage_hint"] == "help"


def test_only_the_commands_that_name_a_channel_have_slack_escape_it() -> None:
    # With "escape channels, users, and links" on, `#deals` in the command's text arrives
    # as `<#C123|deals>`: `setup` needs the id; `/salesbot` carries `setup` too.
    commands = build_manifest()["features"]["slash_commands"]
    escaping = [c["command"] for c in commands if c["should_escape"]]
    assert escaping == ["/setup", "/salesbot"]


def test_usage_hints_show_what_follows_the_command_without_repeating_it() -> None:
    hints = {
        c["command"]: c.get("usage_hint") for c in build_manifest()["features"]["slash_commands"]
    }
    assert hints["/quote"].startswith("<qty> <sku> [discount%]")
    assert "quote " not in hints["/quote"]
    assert hints["/lead"] == "<text of the lead>"
    assert hints["/metrics"] is None  # `/metrics` takes no arguments: no empty hint


def test_events_commands_and_buttons_share_the_one_request_url_from_the_public_url() -> None:
    manifest = build_manifest("https://sales.acme.test/")
    url = "https://sales.acme.test/slack/events"
    assert manifest["settings"]["event_subscriptions"]["request_url"] == url
    assert manifest["settings"]["interactivity"] == {"is_enabled": True, "request_url": url}
    assert {c["url"] for c in manifest["features"]["slash_commands"]} == {url}
    assert url in manifest_json("https://sales.acme.test")


def test_add_to_slack_returns_to_the_redirect_url_under_the_public_url() -> None:
    manifest = build_manifest("https://sales.acme.test/")
    assert manifest["oauth_config"]["redirect_urls"] == [
        "https://sales.acme.test/slack/oauth_redirect"
    ]


def test_people_can_dm_the_bot_from_its_messages_tab() -> None:
    app_home = build_manifest()["features"]["app_home"]
    assert app_home["messages_tab_enabled"] is True
    assert app_home["messages_tab_read_only_enabled"] is False


def test_every_message_event_has_the_history_scope_it_needs_and_nothing_more_is_asked() -> None:
    manifest = build_manifest()
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    needs = {
        "app_mention": "app_mentions:read",
        "message.im": "im:history",
        "message.channels": "channels:history",
        "message.groups": "groups:history",
        "message.mpim": "mpim:history",
    }
    assert {needs[e] for e in events if e in needs} <= set(BOT_SCOPES)
    assert {"app_uninstalled", "tokens_revoked"} <= set(events)
    assert manifest["oauth_config"]["scopes"]["bot"] == list(BOT_SCOPES)
    assert not {"chat:write.public", "im:write", "users:read.email", "channels:read"} & set(
        BOT_SCOPES
    )


def test_the_manifest_text_is_stable_and_ends_with_a_newline() -> None:
    text = manifest_json()
    assert text == manifest_json()
    assert text.endswith("}\n")
    assert text.startswith('{\n  "_metadata"')
