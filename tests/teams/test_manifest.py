"""The Teams app manifest: valid for schema v1.30, its command menu generated from the command list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator  # type: ignore[import-untyped]  # no stubs installed
from jsonschema.validators import validator_for  # type: ignore[import-untyped]

from adapters.teams.manifest import (
    MAX_COMMAND_DESCRIPTION,
    PLACEHOLDER_APP_ID,
    build_manifest,
    command_list,
    manifest_json,
    resolve_app_id,
)
from domain.commands import COMMANDS, CommandSpec

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests" / "fixtures" / "teams" / "manifest.schema.v1.30.json"
APP_ID = "8f2c6f9e-3b1a-4d5e-9c7b-2a1f0e6d4c3b"


def schema_errors(manifest: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator_class: Any = validator_for(schema)
    assert validator_class is Draft4Validator  # the schema declares draft-04
    # Structure only: the schema's `\p{L}` patterns (unused by bots) are not Python regexes.
    validator_class(validator_class.META_SCHEMA).validate(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(manifest)]


@pytest.mark.parametrize(
    ("app_id", "public_url"),
    [
        (APP_ID, "https://salesbot.example.com"),
        (PLACEHOLDER_APP_ID, "https://sales.acme.test:8443/bot/"),
    ],
)
def test_the_manifest_validates_against_the_teams_v1_30_schema(
    app_id: str, public_url: str
) -> None:
    assert schema_errors(build_manifest(app_id=app_id, public_url=public_url)) == []


def test_the_schema_rejects_what_teams_would_reject_so_the_validation_above_means_something() -> (
    None
):
    manifest = build_manifest(app_id=APP_ID)
    manifest["bots"][0]["scopes"].append("meeting")
    manifest["accentColor"] = "navy"
    assert len(schema_errors(manifest)) == 2


def test_the_manifest_declares_schema_1_30_and_is_the_bot_registration_itself() -> None:
    manifest = build_manifest(app_id=APP_ID, version="1.2.3")
    assert manifest["$schema"] == (
        "https://developer.microsoft.com/json-schemas/teams/v1.30/MicrosoftTeams.schema.json"
    )
    assert manifest["manifestVersion"] == "1.30"
    assert manifest["version"] == "1.2.3"
    assert manifest["id"] == APP_ID
    [bot] = manifest["bots"]
    assert bot["botId"] == APP_ID
    assert bot["scopes"] == ["personal", "team", "groupChat"]
    assert bot["supportsFiles"] is False
    assert bot["isNotificationOnly"] is False  # people talk to it, not just read it
    assert manifest["permissions"] == ["identity", "messageTeamMembers"]
    assert "webApplicationInfo" not in manifest  # no SSO: nothing to declare


def test_every_scope_gets_its_own_menu_with_every_command_and_its_summary() -> None:
    lists = build_manifest(app_id=APP_ID)["bots"][0]["commandLists"]
    assert [cl["scopes"] for cl in lists] == [["personal"], ["team"], ["groupChat"]]
    expected = [{"title": spec.name, "description": spec.summary} for spec in COMMANDS]
    for cl in lists:
        assert cl["commands"] == expected
    assert [c["title"] for c in lists[0]["commands"]] == [
        "quote",
        "lead",
        "audit",
        "metrics",
        "correct",
        "resume",
        "won",
        "lost",
        "setup",
        "help",
    ]


def test_a_description_longer_than_teams_shows_is_cut_with_an_ellipsis() -> None:
    spec = CommandSpec(name="quote", summary="word " * 40, usage="quote")
    [command] = command_list([spec], "personal")["commands"]
    assert len(command["description"]) <= MAX_COMMAND_DESCRIPTION
    assert command["description"].endswith("word…")
    assert command["title"] == "quote"


def test_a_title_longer_than_32_characters_is_refused_rather_than_cut_into_a_command_that_does_not_exist() -> (
    None
):
    spec = CommandSpec(name="q" * 33, summary="Too long to type.", usage="q")
    with pytest.raises(ValueError, match="32 characters"):
        command_list([spec], "team")
    assert command_list([spec.model_copy(update={"name": "q" * 32})], "team")["commands"]


def test_more_commands_than_the_teams_menu_holds_is_refused_rather_than_dropping_some() -> None:
    specs = [CommandSpec(name=f"c{i}", summary="A command.", usage=f"c{i}") for i in range(11)]
    with pytest.raises(ValueError, match="at most 10 commands"):
        command_list(specs, "personal")
    assert len(command_list(specs[:10], "personal")["commands"]) == 10


def test_developer_pages_and_the_valid_domain_come_from_the_public_url() -> None:
    manifest = build_manifest(app_id=APP_ID, public_url="https://Sales.Acme.test:8443/")
    assert manifest["developer"] == {
        "name": "salesbot",
        "websiteUrl": "https://Sales.Acme.test:8443",
        "privacyUrl": "https://Sales.Acme.test:8443/privacy",
        "termsOfUseUrl": "https://Sales.Acme.test:8443/terms",
    }
    assert manifest["validDomains"] == ["sales.acme.test"]


@pytest.mark.parametrize("public_url", ["salesbot.example.com", "ftp://salesbot.example.com", ""])
def test_a_public_url_teams_cannot_link_to_is_refused(public_url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        build_manifest(app_id=APP_ID, public_url=public_url)


@pytest.mark.parametrize("app_id", ["", "salesbot", "8f2c6f9e3b1a4d5e9c7b2a1f0e6d4c3b"])
def test_an_app_id_that_is_not_a_guid_is_refused(app_id: str) -> None:
    with pytest.raises(ValueError, match="GUID"):
        build_manifest(app_id=app_id)


@pytest.mark.parametrize("configured", [None, "", "   "])
def test_without_teams_app_id_the_placeholder_is_used_and_the_user_is_told(
    configured: str | None,
) -> None:
    app_id, notice = resolve_app_id(configured)
    assert app_id == PLACEHOLDER_APP_ID == "00000000-0000-0000-0000-000000000000"
    assert notice is not None
    assert "TEAMS_APP_ID" in notice
    assert PLACEHOLDER_APP_ID in notice


def test_a_configured_app_id_is_used_without_a_notice() -> None:
    assert resolve_app_id(f" {APP_ID}\n") == (APP_ID, None)


def test_the_manifest_text_is_stable_two_space_json_ending_with_a_newline() -> None:
    text = manifest_json(app_id=APP_ID)
    assert text == manifest_json(app_id=APP_ID)
    assert text.startswith('{\n  "$schema": ')
    assert text.endswith("}\n")
    assert json.loads(text) == build_manifest(app_id=APP_ID)
    assert "https://sales.acme.test/terms" in manifest_json(
        app_id=APP_ID, public_url="https://sales.acme.test"
    )


def test_the_app_asks_to_read_the_messages_that_do_not_mention_it() -> None:
    """The handoff desk: a rep answering a guest in a thread or a group chat takes the
    conversation over, so the bot must receive that message (resource-specific consent)."""
    manifest = build_manifest(app_id=APP_ID)
    granted = manifest["authorization"]["permissions"]["resourceSpecific"]
    assert granted == [
        {"name": "ChannelMessage.Read.Group", "type": "Application"},
        {"name": "ChatMessage.Read.Chat", "type": "Application"},
    ]
    assert schema_errors(manifest) == []
