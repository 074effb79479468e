"""The action-signing secret: from `SALESBOT_ACTION_SECRET`, else generated once and kept in
the store, so every process on one store binds and checks card buttons with the same key.

Rotation: set `SALESBOT_ACTION_SECRET=new,old` on every process at once. The first secret
signs; the ones after it are retired: a click on a card they signed is refused once and
recorded, and the card is posted again signed with the new one. Drop the old secret once
no card that matters is older than the rotation (a click on a card signed by a secret no
longer listed is refused as a bad signature). A secret generated in the store is rotated
the same way: list a new one first, then the stored one (`salesbot:action-secret`).
"""

from __future__ import annotations

import secrets

from pydantic import SecretStr

from bot.settings import SettingsError
from storage.ports import AdapterStateStore

STATE_KEY = "salesbot:action-secret"


def parse_secrets(configured: SecretStr) -> tuple[bytes, tuple[bytes, ...]]:
    """`new[,retired…]` as (the signing secret, the retired ones)."""
    secrets_ = [part.strip() for part in configured.get_secret_value().split(",")]
    if not all(secrets_):
        raise SettingsError(
            "invalid configuration: SALESBOT_ACTION_SECRET: an empty secret in the list"
        )
    first, *retired = (secret.encode("utf-8") for secret in secrets_)
    return first, tuple(retired)


async def load_action_secret(
    configured: SecretStr | None, store: AdapterStateStore, now_ms: int
) -> tuple[bytes, tuple[bytes, ...]]:
    """(the signing secret, the retired ones)."""
    if configured is not None:
        return parse_secrets(configured)
    # The first process to start on this store creates it; every later one reads it.
    kept = await store.put_state_if_absent(
        STATE_KEY, {"secret": secrets.token_hex(32)}, at_ms=now_ms
    )
    value = kept.get("secret")
    if not isinstance(value, str) or not value:
        raise ValueError(f"the store's {STATE_KEY} entry is not a secret")
    return value.encode("utf-8"), ()
