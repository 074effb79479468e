"""Card buttons bound to their card: an HMAC over what a click will claim.

A click's payload is input like any other: whoever can post to an endpoint can claim any
conversation, action and target. So every button an adapter renders carries a signature
over the fields it will act on — the installation (Slack workspace, Teams tenant), the
conversation, the action, the target, the card's ref and the nonce — made with a server
secret. A click is acted on only when that signature verifies; otherwise the adapter turns
it into a refused click (`ButtonClicked.binding`), which the domain records and answers.

The key is loaded once the store is open (`SALESBOT_ACTION_SECRET`, else a secret kept in
the store), so every process on one store signs and verifies alike. Signatures are
versioned (`v1.`), so a future scheme can tell its own from these. Rotation keeps the old
secrets as *retired* keys: a card they signed is recognised as ours but out of date, so
its click is refused once and the card posted again under the current key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Literal

SIGNATURE_VERSION = "v1"
_HEX_CHARS = 32  # 128 bits: enough against forgery, short enough for Slack's 2,000-char values
_SEPARATOR = "\x1f"

Verdict = Literal["ok", "retired", "bad"]


class ActionKeyNotLoadedError(RuntimeError):
    """A card was rendered or a click checked before the service loaded its key."""


class ActionKey:
    """The HMAC key for card actions, shared by every adapter of one service."""

    def __init__(self, secret: bytes | None = None, retired: Sequence[bytes] = ()) -> None:
        self._secret = secret
        self._retired = tuple(retired)

    def load(self, secret: bytes, retired: Sequence[bytes] = ()) -> None:
        """`secret` signs; `retired` secrets (from before a rotation) only recognise cards."""
        if not secret or not all(retired):
            raise ValueError("the action secret must not be empty")
        self._secret = secret
        self._retired = tuple(retired)

    @property
    def loaded(self) -> bool:
        return self._secret is not None

    def sign(self, *parts: str) -> str:
        """`v1.<hex>` over `parts` in order; a part may contain anything but U+001F."""
        if self._secret is None:
            raise ActionKeyNotLoadedError("the action key is not loaded yet")
        return _signature(self._secret, parts)

    def verify(self, signature: object, *parts: str) -> bool:
        """Whether `signature` is ours for exactly these parts (constant-time compare)."""
        if not isinstance(signature, str) or not signature.startswith(f"{SIGNATURE_VERSION}."):
            return False
        try:
            expected = self.sign(*parts)
        except ValueError:
            return False
        return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))

    def verdict(self, signature: object, *parts: str) -> Verdict:
        """ "ok" for the current key, "retired" for a key from before a rotation (a card of
        ours, out of date), "bad" for anything else."""
        if self.verify(signature, *parts):
            return "ok"
        if not isinstance(signature, str):
            return "bad"
        for secret in self._retired:
            try:
                expected = _signature(secret, parts)
            except ValueError:
                return "bad"
            if hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
                return "retired"
        return "bad"


def _signature(secret: bytes, parts: Sequence[str]) -> str:
    if any(_SEPARATOR in part for part in parts):
        raise ValueError("a signed part contains the separator U+001F")
    message = _SEPARATOR.join((SIGNATURE_VERSION, *parts)).encode("utf-8", "surrogatepass")
    digest = hmac.new(secret, message, hashlib.sha256).hexdigest()[:_HEX_CHARS]
    return f"{SIGNATURE_VERSION}.{digest}"
