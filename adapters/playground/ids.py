"""The playground's ids: conversations and deliveries `playground:…` (random), and one
outbox channel per conversation, `playground:{conversation id}` (its replies keep their
order; the restored history reads them back by this prefix)."""

from __future__ import annotations

from typing import Final

from adapters.ids import IdScheme

SCHEME: Final = IdScheme(
    adapter="playground",
    channel_prefix="playground:",
    delivery_prefixes=("playground:",),
    conversation_prefix="playground:",
)
