"""Sealing personal data with a key per conversation, so deleting the key erases it.

What is personal is the domain's rule (`domain.personal`); this module does the
cryptography. Every store seals the same way (the memory store too, so the contract suite
checks both):

* an event with personal values is stored as its envelope with those values masked and
  `sealed` = "k<key id>:" + base64(nonce ‖ AES-256-GCM(key, nonce, JSON of the values,
  aad)); an event without any is stored exactly as before (no `sealed`);
* a stored inbound likewise, with `sealed` beside its fields.

The associated data binds each ciphertext to where it is stored (the conversation and the
event's seq, or the inbound's delivery id): a sealed value moved to another event does not
open. A conversation's key has an id (the stream version it was created at): after an
erasure, what the prospect sends next is sealed with a new key, and the old values stay
unreadable. The hash chain (`domain.chain`) links the stored JSON, ciphertext included, so an
erasure (the key deleted) changes no stored byte and no link.

Why AES-GCM from `cryptography` (pinned in pyproject.toml and constraints.txt): it is the
Python Cryptographic Authority's maintained binding to OpenSSL, already installed here (PyJWT
and MSAL use it), and AES-GCM is an authenticated cipher: a changed ciphertext fails to
open instead of reading as other text. A random 96-bit nonce per value, a fresh 256-bit key
per conversation; nothing here is hand-rolled.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic_core import from_json, to_json

from domain.events import EventEnvelope
from domain.model import replaced
from domain.personal import ERASED, event_paths, join, paths_of_inbound, split, split_model
from storage._rules import dumps
from storage.errors import StorageError

KEY_BYTES = 32
NONCE_BYTES = 12
SEALED_FIELD = "sealed"
NONCES_PER_DRAW = 8
"""Nonces drawn from the operating system at once (`Sealer`): a commit seals about six
values."""


def new_key() -> bytes:
    """A fresh AES-256 key for one conversation."""
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def event_aad(conversation_id: str, seq: int) -> bytes:
    return f"salesbot/event/{conversation_id}/{seq}".encode()


def inbound_aad(conversation_id: str, delivery_id: str) -> bytes:
    return f"salesbot/inbound/{conversation_id}/{delivery_id}".encode()


def has_personal_event(envelope: EventEnvelope) -> bool:
    return bool(event_paths(envelope.event.type))


def has_personal_inbound(inbound: Mapping[str, Any]) -> bool:
    return bool(paths_of_inbound(inbound))


Keys = Mapping[int, bytes]
"""A conversation's live keys by id (empty once erased)."""


@dataclass(frozen=True, slots=True)
class Masked:
    """An event (or a stored inbound) as it will be stored, before its seal: its JSON with
    its personal values masked (an object without `sealed` yet), and those values as the
    compact JSON that is encrypted (`plain`: the values by path key).

    Made where the record is serialised (the committing task: `stored_form`,
    `inbound_form`), without the key; the writer, which holds the key, only encrypts
    (`Sealer.event`). The values go to the writer as their JSON, made here: a writer in a
    process of its own then neither unpickles them nor serialises them again."""

    text: str
    plain: bytes
    aad: bytes

    def __reduce__(self) -> tuple[type[Masked], tuple[str, bytes, bytes]]:
        # Pickled with every commit to a writer process: as a tuple, not through the
        # dataclass's `__getstate__` (a third of the rows' pickling time).
        return (Masked, (self.text, self.plain, self.aad))


def stored_form(envelope: EventEnvelope) -> str | Masked:
    """What the store writes for `envelope`: its JSON when it holds no personal value (as
    before sealing existed), else its `Masked` form, waiting for the conversation's key.

    One serialisation per event: the masked copy of the event is made from the model
    (`domain.personal.split_model`) and dumped once. Sealing used to dump the event, parse
    that JSON back, mask it and serialise it again (a read message's hundred features three
    times). The bytes are the same (`tests/storage/test_sealing_bytes.py`: every event type
    against the masked JSON validated and dumped); an event with values `split_model` does
    not handle is masked through its JSON, as before."""
    paths = event_paths(envelope.event.type)
    if not paths:
        return envelope.model_dump_json()
    split_event = split_model(envelope.event, paths)
    if split_event is not None:
        event, taken = split_event
        if not taken:
            return envelope.model_dump_json()
        text = replaced(envelope, {"event": event}).model_dump_json()
    else:
        dumped = envelope.model_dump_json()
        data = from_json(dumped)
        masked, taken = split(data["event"], paths)
        if not taken:
            return dumped
        data["event"] = masked
        text = to_json(data).decode("utf-8")
    return Masked(
        text=text,
        plain=to_json(taken),
        aad=event_aad(envelope.conversation_id, envelope.seq),
    )


def inbound_form(inbound: Mapping[str, Any], conversation_id: str) -> str | Masked:
    """What the store writes for an inbound: its JSON when it holds no personal value, else
    its `Masked` form. `Sealer.event` of that form is the JSON of `Sealer.inbound`'s object
    (`sealed` is its last member), byte for byte (tests/storage/test_sealing_bytes.py)."""
    paths = paths_of_inbound(inbound)
    if not paths:
        return dumps(inbound)
    masked, taken = split(inbound, paths)
    if not taken:
        return dumps(inbound)
    delivery_id = str(inbound.get("delivery_id", ""))
    return Masked(
        text=dumps(masked),
        plain=to_json(taken),
        aad=inbound_aad(conversation_id, delivery_id),
    )


class Sealer:
    """One conversation's key, for the values of one commit: its cipher set up once, and
    the random nonces drawn from the operating system `NONCES_PER_DRAW` at a time (one
    system call each had cost more than the encryption). Made inside the transaction that
    read the key, and dropped with it: a key never outlives an erasure committed by another
    process."""

    __slots__ = ("_cipher", "_key_id", "_nonces")

    def __init__(self, key_id: int, key: bytes) -> None:
        self._key_id = key_id
        self._cipher = AESGCM(key)
        self._nonces = b""

    def seal(self, values: Mapping[str, Any], aad: bytes) -> str:
        """`sealed`'s value for `values`: "k<key id>:" + base64(nonce ‖ ciphertext)."""
        return self._sealed(to_json(values), aad)  # compact UTF-8, as `_decrypt` reads it

    def _sealed(self, plain: bytes, aad: bytes) -> str:
        if not self._nonces:
            self._nonces = os.urandom(NONCE_BYTES * NONCES_PER_DRAW)
        nonce, self._nonces = self._nonces[:NONCE_BYTES], self._nonces[NONCE_BYTES:]
        body = base64.b64encode(nonce + self._cipher.encrypt(nonce, plain, aad)).decode("ascii")
        return f"k{self._key_id}:{body}"

    def event(self, masked: Masked) -> str:
        """The stored JSON of a masked record: `sealed` added as its last member (base64
        and the key id need no escaping in JSON)."""
        if not masked.text.endswith("}") or masked.text == "{}":
            raise StorageError("A masked record is not a JSON object with members.")
        return f'{masked.text[:-1]},"{SEALED_FIELD}":"{self._sealed(masked.plain, masked.aad)}"}}'

    def inbound(self, inbound: Mapping[str, Any], conversation_id: str) -> dict[str, Any]:
        """A stored inbound's JSON object with its personal values sealed (unchanged when it
        holds none)."""
        masked, taken = split(inbound, paths_of_inbound(inbound))
        if not taken:
            return dict(inbound)
        delivery_id = str(inbound.get("delivery_id", ""))
        masked[SEALED_FIELD] = self.seal(taken, inbound_aad(conversation_id, delivery_id))
        return masked


def seal_event(envelope: EventEnvelope, key_id: int, key: bytes) -> str | None:
    """The JSON to store for `envelope`, its personal values sealed with `key`; None when
    it holds none (store `envelope.model_dump_json()`, as before sealing existed)."""
    form = stored_form(envelope)
    return None if isinstance(form, str) else Sealer(key_id, key).event(form)


def open_event(stored: str, keys: Keys) -> EventEnvelope:
    """An event as the domain reads it from its stored JSON: sealed values put back, or
    `[erased]` where they were when the key is gone."""
    return open_events((stored,), keys)[0]


def open_events(stored: Iterable[str], keys: Keys) -> list[EventEnvelope]:
    """`open_event` of each of one conversation's stored events (`keys` are its keys), in
    order: what reading a conversation back costs, per event, is this.

    Every envelope is validated as it is read, whoever wrote it (a trusted decode without
    validation, `model_construct` field by field, measured no faster than pydantic-core's
    validator: docs/benchmarks.md, "Replay and fold"). What is cheaper than before: the
    sealed JSON is parsed by pydantic-core's parser (`from_json`, 1.7× the standard
    library's on these envelopes) into the same values, and each key's cipher is set up
    once per call rather than once per event. Nothing outlives the call: a key deleted by
    an erasure is not kept anywhere.
    """
    ciphers: dict[int, AESGCM] = {}
    opened: list[EventEnvelope] = []
    for text in stored:
        if f'"{SEALED_FIELD}":' not in text:
            # Nothing sealed at the top level (the key cannot appear unescaped inside a
            # string): pydantic parses and validates the JSON in one pass.
            opened.append(EventEnvelope.model_validate_json(text))
            continue
        data = from_json(text)
        sealed = data.pop(SEALED_FIELD, None) if isinstance(data, dict) else None
        if sealed is not None:
            _put_back(data, sealed, keys, ciphers)
        opened.append(EventEnvelope.model_validate(data))
    return opened


def _put_back(
    data: dict[str, Any], sealed: str, keys: Keys, ciphers: dict[int, AESGCM] | None
) -> None:
    """`data` (a parsed envelope without its `sealed`) with the values `sealed` holds put
    back into its event, or `[erased]` where they were when the key is gone."""
    aad = event_aad(str(data.get("conversation_id")), int(data.get("seq", 0)))
    data["event"] = join(data["event"], _decrypt(keys, sealed, aad, ciphers))


def opened_json(stored: str, keys: Keys, ciphers: dict[int, AESGCM] | None = None) -> str | None:
    """The stored event's JSON with its sealed values put back, for replay (`Link.opened`);
    None when nothing of it is sealed or its key is gone. The JSON is parsed once (as
    `open_events` parses it) and `ciphers`, when given, keeps each key's cipher for the
    conversation's next events (`storage.sql_rows.links`)."""
    if not keys or f'"{SEALED_FIELD}":' not in stored:
        return None
    data = from_json(stored)
    sealed = data.pop(SEALED_FIELD, None) if isinstance(data, dict) else None
    if not isinstance(sealed, str) or _key_id(sealed) not in keys:
        return None
    _put_back(data, sealed, keys, ciphers)
    return EventEnvelope.model_validate(data).model_dump_json()


def open_inbound(stored: Mapping[str, Any], keys: Keys, conversation_id: str) -> dict[str, Any]:
    """A stored inbound as replay reads it: sealed values put back, or `[erased]` when its
    key is gone."""
    data = dict(stored)
    sealed = data.pop(SEALED_FIELD, None)
    if sealed is None:
        return data
    delivery_id = str(data.get("delivery_id", ""))
    return join(data, _decrypt(keys, sealed, inbound_aad(conversation_id, delivery_id)))


def redacted_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """An outbox payload of an erased conversation: the reply's text and its card's words
    read `[erased]` (its kind, buttons, refs and routing stay, so a card can still be
    found and updated); a CRM write's contact and note lines too."""
    data: dict[str, Any] = json.loads(json.dumps(payload))
    crm = data.get("crm")
    if isinstance(crm, dict):
        # A CRM write (`domain.crm.CrmRecord`): the contact and the note's lines.
        contact = crm.get("contact")
        if isinstance(contact, dict):
            for name in ("email", "name", "company", "origin"):
                if isinstance(contact.get(name), str):
                    contact[name] = ERASED
        if isinstance(crm.get("note_lines"), list):
            crm["note_lines"] = [ERASED for _ in crm["note_lines"]]
    reply = data.get("reply")
    if isinstance(reply, dict):
        if isinstance(reply.get("text"), str) and reply["text"]:
            reply["text"] = ERASED
        card = reply.get("card")
        if isinstance(card, dict):
            for name in ("title", "text"):
                if isinstance(card.get(name), str) and card[name]:
                    card[name] = ERASED
            if isinstance(card.get("lines"), list):
                card["lines"] = [ERASED for _ in card["lines"]]
            fields = card.get("fields")
            if isinstance(fields, list):
                for field in fields:
                    if isinstance(field, dict) and "value" in field:
                        field["value"] = ERASED
    return data


def _key_id(sealed: str) -> int | None:
    head, _, _ = sealed.partition(":")
    return int(head[1:]) if head.startswith("k") and head[1:].isdigit() else None


def _decrypt(
    keys: Keys, sealed: str, aad: bytes, ciphers: dict[int, AESGCM] | None = None
) -> dict[str, Any] | None:
    """The sealed values; None when their key is gone (erased). `ciphers` keeps each key's
    cipher for the caller's next values (one conversation's read)."""
    key_id = _key_id(sealed)
    if key_id is None:
        raise StorageError("A sealed value names no key: it was changed after it was stored.")
    cipher = ciphers.get(key_id) if ciphers is not None else None
    if cipher is None:
        key = keys.get(key_id)
        if key is None:
            return None
        cipher = AESGCM(key)
        if ciphers is not None:
            ciphers[key_id] = cipher
    try:
        raw = base64.b64decode(sealed.partition(":")[2], validate=True)
        plain = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
        values = from_json(plain)
    except (InvalidTag, ValueError) as exc:
        raise StorageError(
            "A sealed value does not open with its conversation's key: it was changed or "
            "moved after it was stored (`salesbot verify` shows where)."
        ) from exc
    if not isinstance(values, dict):
        raise StorageError("A sealed value does not hold personal data as stored.")
    return values
