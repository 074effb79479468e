"""The action-signing secret: from `SALESBOT_ACTION_SECRET`, else generated once and kept in
the store, so every process on one store binds and checks card buttons with the same key.

Rotation: set a new `SALESBOT_ACTION_SECRET` on every process at once. Buttons on cards
posted before then no longer verify: a click on one is refused and recorded, and the
card is posted again, signed with the new key.
"""

from __future__ import annotations

import secrets

from pydantic import SecretStr

from storage.ports import AdapterStateStore

STATE_KEY = "salesbot:action-secret"


async def load_action_secret(
    configured: SecretStr | None, store: AdapterStateStore, now_ms: int
) -> bytes:
    if configured is not None:
        return configured.get_secret_value().encode("utf-8")
    # The first process to start on this store creates it; every later one reads it.
    kept = await store.put_state_if_absent(
        STATE_KEY, {"secret": secrets.token_hex(32)}, at_ms=now_ms
    )
    value = kept.get("secret")
    if not isinstance(value, str) or not value:
        raise ValueError(f"the store's {STATE_KEY} entry is not a secret")
    return value.encode("utf-8")
