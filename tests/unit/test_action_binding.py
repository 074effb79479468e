"""Card buttons are bound to their card by an HMAC only this store's processes can make."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from adapters.action_binding import ActionKey, ActionKeyNotLoadedError
from bot.action_secret import STATE_KEY, load_action_secret
from bot.settings import SettingsError
from storage.memory import MemoryStore

PARTS = ("T123", "slack:T123:C1:1.0", "accept_quote", "Q-1", "Q-1", "nonce-1")


def test_a_signature_verifies_for_exactly_the_parts_it_was_made_for() -> None:
    key = ActionKey(b"s3cret")
    signature = key.sign(*PARTS)
    assert signature.startswith("v1.")
    assert key.verify(signature, *PARTS)
    for index in range(len(PARTS)):
        changed = list(PARTS)
        changed[index] += "x"
        assert not key.verify(signature, *changed), f"part {index} is not bound"


def test_another_key_or_a_malformed_signature_does_not_verify() -> None:
    signature = ActionKey(b"s3cret").sign(*PARTS)
    assert not ActionKey(b"other").verify(signature, *PARTS)
    for forged in ("", "v1.", "v2." + signature[3:], signature.upper(), None, 7, "v1.é"):
        assert not ActionKey(b"s3cret").verify(forged, *PARTS)


def test_parts_cannot_be_shifted_across_the_separator() -> None:
    key = ActionKey(b"k")
    assert key.sign("ab", "c") != key.sign("a", "bc")
    with pytest.raises(ValueError, match="separator"):
        key.sign("a\x1fb")


def test_nothing_is_signed_before_the_key_is_loaded() -> None:
    key = ActionKey()
    assert not key.loaded
    with pytest.raises(ActionKeyNotLoadedError):
        key.sign("a")
    key.load(b"k")
    assert key.loaded
    assert key.verify(key.sign("a"), "a")


async def test_the_configured_secret_wins_and_nothing_is_stored() -> None:
    store = MemoryStore()
    assert await load_action_secret(SecretStr("from-env"), store, 1) == (b"from-env", ())
    assert await store.get_state(STATE_KEY) is None


async def test_without_configuration_one_secret_is_generated_and_kept_for_every_process() -> None:
    store = MemoryStore()
    first, retired = await load_action_secret(None, store, 1)
    second, _ = await load_action_secret(None, store, 2)  # another process on the same store
    assert retired == ()
    assert first == second
    assert len(first) == 64
    assert (await load_action_secret(None, MemoryStore(), 1))[0] != first


async def test_a_rotation_lists_the_new_secret_first_and_keeps_the_old_ones_retired() -> None:
    secret, retired = await load_action_secret(SecretStr("new, old ,older"), MemoryStore(), 1)
    assert (secret, retired) == (b"new", (b"old", b"older"))
    with pytest.raises(SettingsError, match="SALESBOT_ACTION_SECRET"):
        await load_action_secret(SecretStr("new,,old"), MemoryStore(), 1)


def test_a_card_signed_before_a_rotation_is_recognised_as_ours_but_out_of_date() -> None:
    old = ActionKey(b"old").sign(*PARTS)
    rotated = ActionKey(b"new", [b"old"])
    assert rotated.verdict(old, *PARTS) == "retired"
    assert rotated.verdict(rotated.sign(*PARTS), *PARTS) == "ok"
    assert not rotated.verify(old, *PARTS)  # never accepted as current
    assert rotated.verdict(old, *PARTS[:-1], "other nonce") == "bad"
    assert ActionKey(b"new").verdict(old, *PARTS) == "bad"  # once the old one is dropped
    assert rotated.verdict(None, *PARTS) == "bad"
