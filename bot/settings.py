"""Configuration: the only reader of the environment.

Every variable is documented in `.env.example`. Secrets are `SecretStr`, so they print
as `**********` in logs, reprs and error messages. Settings are read once, by the
composition root, and passed down; nothing reads the environment at import time.

`.env` in the working directory is read too when it exists (the README says to copy
`.env.example` there); a variable set in the environment wins over the file. The file's
name comes from `SALESBOT_ENV_FILE` (only from the environment itself): the test suite
sets it to `/dev/null`, so a developer's `.env` never changes what a test sees.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as _SourceError


class SettingsError(Exception):
    """A configuration value with the wrong type or shape; the message names the variable."""


def _split_ids(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


ENV_FILE_VARIABLE = "SALESBOT_ENV_FILE"
DEFAULT_ENV_FILE = ".env"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["text", "json"]


class LogSettings(BaseSettings):
    """What logging needs, read before anything else (and alone, so that a bad value of an
    unrelated variable does not stop `salesbot score` from logging)."""

    # `.env.example` lists every variable with an empty value: empty means "not set".
    model_config = SettingsConfigDict(extra="ignore", frozen=True, env_ignore_empty=True)

    salesbot_log_level: LogLevel = "INFO"
    # Unset: text when stderr is a terminal, JSON lines otherwise (a collector reads it).
    salesbot_log_format: LogFormat | None = None

    @field_validator("salesbot_log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("salesbot_log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


class CrmSettings(BaseModel):
    """How to reach a CRM: read from the environment for the first installation
    (`Settings`), and from an installation's own table for the others
    (`bot.surfaces.crm_installations`), by the same names and defaults."""

    hubspot_access_token: SecretStr | None = None
    hubspot_api_url: str = "https://api.hubapi.com"
    salesforce_login_url: str = "https://login.salesforce.com"
    salesforce_client_id: str | None = None
    salesforce_client_secret: SecretStr | None = None
    salesforce_username: str | None = None
    salesforce_password: SecretStr | None = None
    salesforce_security_token: SecretStr | None = None
    salesforce_api_version: str = "62.0"
    # What a deal is in Salesforce: a Lead, or a Contact with an Opportunity.
    salesforce_records: Literal["lead", "contact_opportunity"] = "lead"
    # Leads that start in the CRM (docs/crm.md, "Leads from the CRM"): HubSpot's app client
    # secret, which signs its webhooks (signature v3); Salesforce's organization id, which
    # its outbound messages carry, and the secret in their endpoint URL's path.
    hubspot_client_secret: SecretStr | None = None
    salesforce_org_id: str | None = None
    salesforce_webhook_secret: SecretStr | None = None


class Settings(LogSettings, CrmSettings):
    salesbot_policy: str | None = None
    salesbot_db: str = "./salesbot.db"
    salesbot_host: str = "127.0.0.1"
    salesbot_port: int = Field(3000, ge=0, le=65535)
    salesbot_public_url: str = "https://salesbot.example.com"
    salesbot_leads_token: SecretStr | None = None
    # Other installations' own lead feed tokens: `installation=token`, comma-separated (e.g.
    # `slack:T0123=…,teams:<tenant id>=…`); a lead posted with one is that installation's.
    salesbot_installation_leads_tokens: SecretStr | None = None
    salesbot_lead_reply_url: str | None = None
    salesbot_lead_reply_secret: SecretStr | None = None
    # Comma-separated user ids or group names (Slack or Teams).
    salesbot_auditors: Annotated[tuple[str, ...], NoDecode] = ()
    salesbot_approvers: Annotated[tuple[str, ...], NoDecode] = ()
    salesbot_managers: Annotated[tuple[str, ...], NoDecode] = ()
    # Admins choose each Slack workspace's handoff and leads channels
    # (`/salesbot setup handoff #channel`); Slack user ids or user groups.
    salesbot_admins: Annotated[tuple[str, ...], NoDecode] = ()
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
    # The conversation states kept in memory, by their serialised size (MiB; 0 keeps none).
    salesbot_state_cache_mb: int = Field(256, ge=0, le=1_048_576)
    # How long the outbox items a process claimed stay its own after its last heartbeat:
    # a killed replica's replies are taken over by another within this (`bot.service`).
    salesbot_outbox_lease_ms: int = Field(20_000, ge=2_000, le=3_600_000)
    # Where `serve` runs SQLite's writer (`storage.sqlite_process`): `process`, a process of
    # its own beside the server's, or `thread`, a thread of the server's process (one
    # process to run; the CLI's other commands always use a thread).
    salesbot_sqlite_writer: Literal["process", "thread"] = "process"

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_handoff_channel: str | None = None
    slack_leads_channel: str | None = None
    # "Add to Slack" for other workspaces (docs/slack-install.md): both set, the OAuth
    # routes are served. The secret may list older secrets after the current one
    # ("new,old"): tokens stored under an older one still open, and are sealed again.
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None

    teams_app_id: str | None = None
    teams_app_password: SecretStr | None = None
    teams_app_tenant_id: str | None = None
    teams_handoff_conversation: str | None = None
    teams_leads_conversation: str | None = None
    teams_openid_metadata_url: str = (
        "https://login.botframework.com/v1/.well-known/openidconfiguration"
    )
    teams_allow_unauthenticated: bool = False
    # Tenants besides TEAMS_APP_TENANT_ID that may install the app (comma-separated tenant
    # ids; `*`: any). Each installed one's members are its own reps (docs/teams-install.md).
    teams_tenants: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("teams_tenants", mode="before")
    @classmethod
    def _teams_tenants(cls, value: object) -> object:
        return _split_ids(value)

    # The CRM the policy's `[crm]` writes go to (README, "CRM"); `none` parks them.
    salesbot_crm: Literal["hubspot", "salesforce", "none"] = "none"
    # Other installations' own CRMs: a TOML file, one table per installation
    # (`bot.surfaces.crm_installations`; docs/crm.md).
    salesbot_crm_installations_file: str | None = None

    @field_validator(
        "salesbot_auditors",
        "salesbot_approvers",
        "salesbot_managers",
        "salesbot_admins",
        "salesbot_outbound_allow",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_ids(value)

    def secret_values(self) -> list[str]:
        """Every secret's value, and each part of a comma-separated one (a rotated action
        secret): what the log masks."""
        values: list[str] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                raw = value.get_secret_value()
                parts = [part.strip() for part in raw.split(",") if part.strip()]
                # A keyed part (`installation=token`): its token alone is masked too.
                values += [raw, *parts, *(p.partition("=")[2] for p in parts if "=" in p)]
        return values


def env_file() -> Path:
    """The dotenv file to read: `$SALESBOT_ENV_FILE`, else `.env` in the working directory
    (read only when it exists)."""
    return Path(os.environ.get(ENV_FILE_VARIABLE) or DEFAULT_ENV_FILE)


def load_settings() -> Settings:
    """Read the environment (and `.env`) once; a bad value raises SettingsError naming the
    variable."""
    return _load(Settings)


def load_log_settings() -> LogSettings:
    """Only the logging variables: read first, before any command can log."""
    return _load(LogSettings)


_S = TypeVar("_S", bound=LogSettings)


def _load(kind: type[_S]) -> _S:
    path = env_file()
    if path.is_file() and not os.access(path, os.R_OK):
        raise SettingsError(f"invalid configuration: {path} cannot be read")
    try:
        return kind(_env_file=path, _env_file_encoding="utf-8")
    except ValidationError as exc:
        lines = [
            f"{'.'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors(include_url=False)
        ]
        raise SettingsError("invalid configuration: " + "; ".join(lines)) from None
    except _SourceError as exc:
        raise SettingsError(f"invalid configuration: {exc}") from None
