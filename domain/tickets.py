"""Idempotency keys for tickets.

A ticket's key is a hash of the conversation, the reason and the sequence number of the
event that triggered it: delivering the same trigger again (a platform retry, a replay)
yields the same key, and the store's UNIQUE constraint turns it into one ticket.
"""

from __future__ import annotations

import hashlib


def ticket_key(conversation_id: str, reason: str, trigger_seq: int) -> str:
    digest = hashlib.sha256(f"{conversation_id}\x1f{reason}\x1f{trigger_seq}".encode()).hexdigest()
    return f"T-{digest[:16]}"
