"""Which parts of a stored event or inbound are a prospect's personal data, and how they are
taken out and put back: what makes a conversation erasable (issue 15, item 6).

The store keeps every event and inbound in two parts (`storage.sealing`):

* the *masked* JSON — the record with every personal value below replaced by a
  placeholder (`SEALED` for a string, `null` for the credit score) — which is what the hash
  chain links (`domain.chain`), and
* the personal values themselves, `{path: value}`, encrypted with the conversation's key
  and kept inside the same stored JSON (the envelope's `sealed`), so the chain covers the
  ciphertext too.

Deleting the key erases the personal values everywhere at once without changing one
stored byte: the chain still holds, and reading the conversation gives `ERASED` where the
text was. What is *not* personal data here, and stays after an erasure: ids, times, the
flow, the reader's features and readings (counts, bands, scores, signals), every quote
figure in cents, the lead's source and company size, ticket reasons, policy versions and
hashes (see `PATHS`).

A path is a tuple of keys into the JSON object; `MASK_ALL` at the end masks every string
inside the value found there (lists and objects included; keys, numbers and booleans stay),
so a dict of the prospect's words by placeholder keeps its keys. Pure data: no I/O, no
cryptography (that is the store's).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final, TypeVar

from pydantic import BaseModel

from domain.chain import Link
from domain.model import replaced

SEALED: Final = "[sealed]"
"""What a personal string reads as in the stored (masked) JSON."""
ERASED: Final = "[erased]"
"""What a personal string reads as once its key is deleted."""
MASK_ALL: Final = "*"
"""The last step of a path that masks every string inside the value (keys stay)."""

Path = tuple[str, ...]

_LEAD: tuple[Path, ...] = (
    ("name",),
    ("company",),
    ("email",),
    ("message",),
    ("credit_score",),
    ("external_id",),
    ("reply_url",),
)
"""A lead's personal data (`domain.inbound.LeadDetails`); its source and company size stay."""

EVENT_PATHS: Final[Mapping[str, tuple[Path, ...]]] = {
    "conversation_started": tuple(("lead", *path) for path in _LEAD),
    "prospect_message_received": (("text",),),
    "rep_message_recorded": (("text",),),
    "bot_replied": (("text",), ("echoed", MASK_ALL)),
    "lead_scored": (("score", "evidence", MASK_ALL), ("score", "negated", MASK_ALL)),
    "message_read": (("evidence", MASK_ALL), ("entities", MASK_ALL)),
    "narrative_assessed": (("audit", "credit"), ("audit", "reason")),
    "ticket_opened": (("summary",),),
    "ticket_resolved": (("note",),),
    "deal_marked": (("note",),),
    "prospect_left": (("words", MASK_ALL),),
    "meeting_requested": (("when",),),
    "team_notified": (("text",),),
    "crm_sync_settled": (("reason",),),
}
"""Per event type, the personal values of its `event` object. The prospect's words, what
the bot echoed of them, the lead's details, the credit score (and the narrative's reason,
which names it), and the notes and posts that quote them."""

INBOUND_PATHS: Final[Mapping[str, tuple[Path, ...]]] = {
    "message": (("text",), ("actor", "name")),
    "lead": (*(("lead", *path) for path in _LEAD), ("actor", "name")),
    "command": (("args",), ("actor", "name")),
    "button": (("note",), ("actor", "name")),
    "crm_write_settled": (("reason",),),
}
"""Per inbound kind, the personal values of a stored inbound (`domain.inbound`): what the
prospect wrote, a lead's details, a command's words (`/lead` takes pasted text), a button's
note, and the name the platform gave the person."""

_NULLED: Final = frozenset({"credit_score", "credit"})
"""Personal numbers: masked as null (an unknown credit score), never as a string."""


def legacy_events(stored: Iterable[Link]) -> int:
    """The stored events with personal values in clear: written before sealing existed (or
    by a store that does not seal). An erasure cannot remove their words without changing
    the bytes the hash chain links, so they keep them (README, "Personal data")."""
    count = 0
    for event in stored:
        if '"sealed":' in event.envelope:
            continue
        data = _json_object(event.envelope)
        if data is None:
            continue
        kind = data["event"].get("type")
        if isinstance(kind, str) and split(data["event"], event_paths(kind))[1]:
            count += 1
    return count


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("event"), dict) else None


def event_paths(event_type: str) -> tuple[Path, ...]:
    return EVENT_PATHS.get(event_type, ())


PERSONAL_COMMANDS: Final = frozenset({"lead"})
"""Commands whose words are a prospect's (`lead` scores pasted text); the others' words are
the team's (a quote's terms, an id to audit) and stay readable for replay."""


def inbound_paths(kind: str, command: str | None = None) -> tuple[Path, ...]:
    """The personal paths of a stored inbound of `kind` (for a command, which `command`)."""
    paths = INBOUND_PATHS.get(kind, ())
    if kind == "command" and command not in PERSONAL_COMMANDS:
        paths = tuple(path for path in paths if path != ("args",))
    return paths


def paths_of_inbound(data: Mapping[str, Any]) -> tuple[Path, ...]:
    """`inbound_paths` for a stored inbound's JSON object."""
    command = data.get("command")
    return inbound_paths(str(data.get("kind", "")), command if isinstance(command, str) else None)


def split(
    data: Mapping[str, Any], paths: tuple[Path, ...]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`data` masked (a copy: every value at `paths` replaced by its placeholder) and
    the personal values taken out, by path key (`key_of`). A path absent from `data`, or
    holding null or an empty string, takes nothing out."""
    masked = dict(data)
    taken: dict[str, Any] = {}
    for path in paths:
        parent, last = _own_parent(masked, path)
        if parent is None or last not in parent:
            continue
        value = parent[last]
        if value is None or value == "" or value == {} or value == []:
            continue
        taken[key_of(path)] = value
        parent[last] = _placeholder(value, path, SEALED)
    return masked, taken


Model = TypeVar("Model", bound=BaseModel)


def split_model(model: Model, paths: tuple[Path, ...]) -> tuple[Model, dict[str, Any]] | None:
    """`split` of the model's JSON, done on the model itself: a copy of `model` with every
    personal value replaced by its placeholder (sharing its unchanged parts), and the values
    taken out, by path key, as plain data that serialises to the JSON `split` takes out.

    Why: sealing an event had serialised it, parsed the JSON back, masked it and serialised
    it again — for a read message (its ~100 features) three times its own dump. The masked
    copy serialises in one pass. Dumping the copy gives the bytes dumping the masked JSON
    validated would (`tests/storage/test_sealing_bytes.py`).

    None when a path goes through something that is not a model field or a value is not
    plain data (strings, numbers, booleans, None, and tuples, lists and string-keyed dicts
    of them: a decimal, say, is a string in the JSON and masked there): `split` the model's
    JSON then."""
    taken: dict[str, Any] = {}
    updates: dict[Path, Any] = {}
    for steps, key, nulled in _plan(paths):
        node: Any = model
        for step in steps:
            if not isinstance(node, BaseModel) or step not in _field_names(type(node)):
                return None
            node = getattr(node, step)
            if node is None:
                break  # null on the way, or as the value: nothing to take
        if node is None or node == "" or (isinstance(node, tuple | list | dict) and not node):
            continue
        try:
            masked = _masked_plain(node)
        except _NotPlainError:
            return None
        taken[key] = node
        updates[steps] = None if nulled else masked
    return (_updated(model, updates) if updates else model), taken


_PLANS: dict[tuple[Path, ...], tuple[tuple[Path, str, bool], ...]] = {}


def _plan(paths: tuple[Path, ...]) -> tuple[tuple[Path, str, bool], ...]:
    """Each path's steps to its value, its key and whether it is masked as null, worked
    out once per set of paths."""
    plan = _PLANS.get(paths)
    if plan is None:
        plan = _PLANS[paths] = tuple(
            (
                path[:-1] if path[-1] == MASK_ALL else path,
                key_of(path),
                path[-1] in _NULLED,
            )
            for path in paths
        )
    return plan


_FIELD_NAMES: dict[type[BaseModel], frozenset[str]] = {}


def _field_names(cls: type[BaseModel]) -> frozenset[str]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(cls.model_fields)
    return names


class _NotPlainError(Exception):
    """A value `split_model` leaves to `split` of the JSON."""


def _masked_plain(value: Any) -> Any:
    """`_mask_strings` of plain Python data (tuples stay tuples, so the model's serialiser
    sees the types it was made for); `_NotPlainError` for anything else."""
    if isinstance(value, str):
        return SEALED
    if value is None or isinstance(value, int | float):  # booleans are ints
        return value
    if isinstance(value, tuple):
        return tuple([_masked_plain(item) for item in value])
    if isinstance(value, list):
        return [_masked_plain(item) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise _NotPlainError
        return {key: _masked_plain(item) for key, item in value.items()}
    raise _NotPlainError


def _updated(model: Model, updates: Mapping[Path, Any]) -> Model:
    """`model` with the value at each path replaced, every model on the way copied."""
    direct: dict[str, Any] = {}
    deeper: dict[str, dict[Path, Any]] = {}
    for steps, value in updates.items():
        if len(steps) == 1:
            direct[steps[0]] = value
        else:
            deeper.setdefault(steps[0], {})[steps[1:]] = value
    for name, inner in deeper.items():
        direct[name] = _updated(getattr(model, name), inner)
    return replaced(model, direct)


def join(masked: Mapping[str, Any], taken: Mapping[str, Any] | None) -> dict[str, Any]:
    """The record again from its masked form and its personal values; with `taken` None
    (the key is gone), every placeholder reads `ERASED` instead. A new record that shares
    its unchanged parts with `masked` and holds `taken`'s values themselves (as `split`'s:
    copying the whole record was a third of reading a conversation back); `masked` is never
    changed."""
    if taken is None:
        replaced: dict[str, Any] = _replace_strings(dict(masked), SEALED, ERASED)  # all new
        return replaced
    data = dict(masked)
    for key, value in taken.items():
        parent, last = _own_parent(data, tuple(key.split("/")))
        if parent is not None:
            parent[last] = value
    return data


def erased(masked: Mapping[str, Any], paths: tuple[Path, ...]) -> dict[str, Any]:
    """A record written before sealing existed, read as erased: every personal value at
    `paths` replaced by `ERASED` (for copies outside the chain, such as a stored inbound)."""
    data = dict(masked)
    for path in paths:
        parent, last = _own_parent(data, path)
        if parent is None or last not in parent or parent[last] in (None, "", {}, []):
            continue
        parent[last] = _placeholder(parent[last], path, ERASED)
    return data


def key_of(path: Path) -> str:
    return "/".join(path)


def _replace_strings(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return new if value == old else value
    if isinstance(value, list):
        return [_replace_strings(item, old, new) for item in value]
    if isinstance(value, dict):
        return {key: _replace_strings(item, old, new) for key, item in value.items()}
    return value


def _own_parent(copied: dict[str, Any], path: Path) -> tuple[dict[str, Any] | None, str]:
    """The object holding the path's value and its key (the path without `MASK_ALL`), in
    `copied`: a shallow copy of a record, sharing its unchanged parts with it. Every object
    on the way to the value is copied first, so the value can be replaced without touching
    the record (a deep copy of the whole record cost most of sealing an event, and a third
    of reading a conversation back). Placeholders and filled values are new objects."""
    steps = path[:-1] if path[-1] == MASK_ALL else path
    node = copied
    for step in steps[:-1]:
        child = node.get(step)
        if not isinstance(child, dict):
            return None, steps[-1]
        fresh = dict(child)
        node[step] = fresh
        node = fresh
    return node, steps[-1]


def _placeholder(value: Any, path: Path, mark: str) -> Any:
    if path[-1] == MASK_ALL:
        return _mask_strings(value, mark)
    if path[-1] in _NULLED or not isinstance(value, str):
        return None if path[-1] in _NULLED else _mask_strings(value, mark)
    return mark


def _mask_strings(value: Any, mark: str) -> Any:
    if isinstance(value, str):
        return mark
    if isinstance(value, list):
        return [_mask_strings(item, mark) for item in value]
    if isinstance(value, dict):
        return {key: _mask_strings(item, mark) for key, item in value.items()}
    return value
