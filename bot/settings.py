"""Configuration: the only reader of the environment.

Every variable is documented in `.env.example`. Secrets are `SecretStr`, so they print
as `**********` in logs, reprs and error messages. Settings are read once, by the
composition root, and passed down; nothing reads the environment at import time.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as _SourceError


class SettingsError(Exception):
    """A configuration value with the wrong type or shape; the message names the variable."""


def _split_ids(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class Settings(BaseSettings):
    # `.env.example` lists every variable with an empty value: empty means "not set".
    model_config = SettingsConfigDict(extra="ignore", frozen=True, env_ignore_empty=True)

    salesbot_policy: str | None = None
    salesbot_db: str = "./salesbot.db"
    salesbot_host: str = "127.0.0.1"
    salesbot_port: int = Field(3000, ge=0, le=65535)
    salesbot_public_url: str = "https://salesbot.example.com"
    salesbot_leads_token: SecretStr | None = None
    salesbot_lead_reply_url: str | None = None
    salesbot_lead_reply_secret: SecretStr | None = None
    # Comma-separated user ids or group names (Slack or Teams).
    salesbot_auditors: Annotated[tuple[str, ...], NoDecode] = ()
    salesbot_approvers: Annotated[tuple[str, ...], NoDecode] = ()
    salesbot_playground: bool = False
    # Required to serve the playground off loopback or beside a platform; then every
    # playground request must present it.
    salesbot_playground_token: SecretStr | None = None
    # The HMAC key that binds card buttons to their card; unset, one is generated at first
    # start and kept in the store (shared by every process on that store).
    salesbot_action_secret: SecretStr | None = None
    # Hosts or addresses (comma-separated; CIDR allowed) that outbound requests such as a
    # lead's reply_url may reach although they are loopback, private or link-local.
    salesbot_outbound_allow: Annotated[tuple[str, ...], NoDecode] = ()

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_handoff_channel: str | None = None
    slack_leads_channel: str | None = None

    teams_app_id: str | None = None
    teams_app_password: SecretStr | None = None
    teams_app_tenant_id: str | None = None
    teams_handoff_conversation: str | None = None
    teams_leads_conversation: str | None = None
    teams_openid_metadata_url: str = (
        "https://login.botframework.com/v1/.well-known/openidconfiguration"
    )
    teams_allow_unauthenticated: bool = False

    @field_validator(
        "salesbot_auditors", "salesbot_approvers", "salesbot_outbound_allow", mode="before"
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_ids(value)


def load_settings() -> Settings:
    """Read the environment once; a bad value raises SettingsError naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = [
            f"{'.'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors(include_url=False)
        ]
        raise SettingsError("invalid configuration: " + "; ".join(lines)) from None
    except _SourceError as exc:
        raise SettingsError(f"invalid configuration: {exc}") from None
