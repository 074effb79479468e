"""The audit bundle: one conversation's record, self-contained and tamper-evident.

`salesbot audit ID --bundle out.zip` writes, for the conversation of ID:

    events.jsonl             the events, one per line, each exactly as stored (the bytes
                             its link hashes), in sequence order
    inbounds.jsonl           the raw inbounds as stored for replay (what arrived, when, the
                             policy version it was decided under), by position, with their
                             sealed personal values opened (`[erased]` once erased)
    opened.jsonl             for each event whose personal values the store sealed
                             (`domain.personal`), `{"seq", "envelope"}`: the event with them
                             opened, for replay (absent when none is sealed, or all erased)
    policies/<version>.json  the canonical text of every policy those name; the file name
                             is the text's SHA-256 (a policy's version is its content hash)
    schemas/…                the JSON Schemas of this release (`salesbot schema export`)
    manifest.json            every other file's SHA-256, the chain (each event's stored
                             link and the head), the rule, the schema versions, and the
                             bundle's own schema and generator versions

`salesbot verify out.zip` checks the files against the manifest, recomputes the chain from
events.jsonl against the recorded links and head, and replays the inbounds under the
bundled policies (`domain.verification`). The bytes of a bundle depend only on what is
stored (no time of writing in it), so two bundles of the same conversation are identical.

The manifest is not signed: someone who rewrites the events, their links, the head and the
file hashes together is caught only by comparing the head with one kept elsewhere (the
live store's, or the one printed when the bundle was written).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from domain import GENERATOR
from domain.chain import CHAIN_RULE, GENESIS, ChainHead, Finding, Link, head_of, sha256_hex
from domain.errors import DomainError
from domain.model import Frozen
from domain.personal import event_paths, split
from domain.verification import (
    ConversationCheck,
    VerifyReport,
    first_error,
    policies_from,
    verify_conversation,
)

BUNDLE_SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
EVENTS = "events.jsonl"
INBOUNDS = "inbounds.jsonl"
OPENED = "opened.jsonl"
POLICIES = "policies/"
SCHEMAS = "schemas/"


class BundleError(DomainError):
    """A file that is not an audit bundle this salesbot can read (bad input, exit 2)."""


class BundleChain(Frozen):
    """The conversation's chain as the store held it when the bundle was written."""

    conversation_id: str
    genesis: str = GENESIS
    rule: str = CHAIN_RULE
    links: tuple[str | None, ...]
    """Each event's stored link, seq 1, 2, … (null where the store held none)."""
    head: ChainHead | None
    """The last event's seq and link (null when the store held no link for it)."""


class BundleManifest(Frozen):
    """`manifest.json` of an audit bundle."""

    conversation_id: str
    files: dict[str, str]
    """Every file of the bundle but the manifest → its SHA-256 (hex), by name."""
    chain: BundleChain
    events: int
    inbounds: int
    policies: tuple[str, ...]
    """The policy versions bundled (`policies/<version>.json`), sorted."""
    schemas: dict[str, int]
    """Each bundled JSON Schema's artifact → its schema version (`schemas/index.json`)."""
    schema_version: int = BUNDLE_SCHEMA_VERSION
    generator_version: str = GENERATOR


def policy_file(version: str) -> str:
    return f"{POLICIES}{version}.json"


def jsonl(lines: Sequence[str]) -> bytes:
    """One text per line, each ending in a newline (stored JSON never holds a raw one)."""
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def bundle_files(
    conversation_id: str,
    stored: Sequence[Link],
    inbounds: Sequence[str],
    policies: Mapping[str, str],
    schemas: Mapping[str, str],
    schema_versions: Mapping[str, int],
) -> dict[str, bytes]:
    """Every file of the bundle, by name (the manifest included), from what is stored:
    `stored` the conversation's events, `inbounds` its stored inbound rows as JSON,
    `policies` version → canonical text, `schemas` file name → text."""
    if not stored:
        raise DomainError(f"Conversation {conversation_id!r} has no events to bundle.")
    files: dict[str, bytes] = {
        EVENTS: jsonl([event.envelope for event in stored]),
        INBOUNDS: jsonl(inbounds),
    }
    opened = [
        json.dumps({"seq": event.seq, "envelope": event.opened}, ensure_ascii=False)
        for event in stored
        if event.opened is not None
    ]
    if opened:
        files[OPENED] = jsonl(opened)
    for version, text in policies.items():
        files[policy_file(version)] = text.encode("utf-8")
    for name, text in schemas.items():
        files[f"{SCHEMAS}{name}"] = text.encode("utf-8")
    manifest = BundleManifest(
        conversation_id=conversation_id,
        files={name: sha256_hex(files[name]) for name in sorted(files)},
        chain=BundleChain(
            conversation_id=conversation_id,
            links=tuple(event.chain_hash for event in stored),
            head=head_of(stored),
        ),
        events=len(stored),
        inbounds=len(inbounds),
        policies=tuple(sorted(policies)),
        schemas=dict(sorted(schema_versions.items())),
    )
    files[MANIFEST] = manifest_bytes(manifest)
    return files


def manifest_bytes(manifest: BundleManifest) -> bytes:
    """Deterministic JSON: sorted keys, two-space indent, UTF-8, a final newline."""
    text = json.dumps(
        manifest.model_dump(mode="json"), indent=2, sort_keys=True, ensure_ascii=False
    )
    return (text + "\n").encode("utf-8")


def read_manifest(files: Mapping[str, bytes]) -> BundleManifest:
    """The bundle's manifest; `BundleError` when there is none this salesbot can read."""
    raw = files.get(MANIFEST)
    if raw is None:
        raise BundleError(f"it holds no {MANIFEST}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BundleError(f"its {MANIFEST} is not JSON") from None
    if not isinstance(data, dict):
        raise BundleError(f"its {MANIFEST} is not a JSON object")
    version = data.get("schema_version")
    if isinstance(version, int) and version > BUNDLE_SCHEMA_VERSION:
        raise BundleError(
            f"it was written by a newer salesbot (bundle schema version {version}; this one "
            f"reads up to {BUNDLE_SCHEMA_VERSION})"
        )
    try:
        return BundleManifest.model_validate(data)
    except ValidationError as exc:
        raise BundleError(
            f"its {MANIFEST} is not an audit bundle manifest ({first_error(exc)})"
        ) from None


def verify_bundle(files: Mapping[str, bytes]) -> VerifyReport:
    """Verify a bundle's files (name → bytes, as the zip holds them): every file against
    the manifest, the chain against the recorded links and head, the replay against the
    bundled policies. `BundleError` when it is not a bundle at all."""
    manifest = read_manifest(files)
    conversation_id = manifest.conversation_id
    findings = _file_findings(files, manifest)
    stored = _stored_events(files.get(EVENTS, b""), manifest.chain.links)
    stored, opened_findings = _with_opened(stored, files.get(OPENED, b""))
    inbounds = _inbound_rows(files.get(INBOUNDS, b""))
    texts = {
        version: files[policy_file(version)].decode("utf-8", errors="replace")
        for version in manifest.policies
        if policy_file(version) in files
    }
    check: ConversationCheck = verify_conversation(
        conversation_id,
        stored,
        inbounds,
        policies_from(texts, "the bundle"),
        version=len(manifest.chain.links),
        head=manifest.chain.head,
    )
    if check.finding is None:  # an opened event that disagrees matters while the chain holds
        findings.extend(opened_findings)
    return VerifyReport.of("bundle", [check], findings)


def _file_findings(files: Mapping[str, bytes], manifest: BundleManifest) -> list[Finding]:
    findings = []
    for name, digest in manifest.files.items():
        if name not in files:
            findings.append(
                Finding(problem="missing file", file=name, detail="listed in the manifest")
            )
        elif sha256_hex(files[name]) != digest:
            findings.append(
                Finding(
                    problem="content hash mismatch",
                    file=name,
                    detail=f"SHA-256 {sha256_hex(files[name])[:16]}…, the manifest says "
                    f"{digest[:16]}…",
                )
            )
    for name in sorted(set(files) - set(manifest.files) - {MANIFEST}):
        findings.append(
            Finding(problem="content hash mismatch", file=name, detail="not in the manifest")
        )
    for version in manifest.policies:
        name = policy_file(version)
        if name in files and sha256_hex(files[name]) != version:
            findings.append(
                Finding(
                    problem="content hash mismatch",
                    file=name,
                    detail="the policy text does not hash to its version",
                )
            )
    for name in (EVENTS, INBOUNDS):
        if name not in manifest.files:
            findings.append(
                Finding(problem="missing file", file=name, detail="not in the manifest")
            )
    return findings


def _lines(data: bytes) -> list[str]:
    # Split on "\n" only: stored JSON escapes it, but may hold U+2028 and its kin raw.
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _stored_events(data: bytes, links: Sequence[str | None]) -> list[Link]:
    stored = []
    for index, envelope in enumerate(_lines(data)):
        seq = index + 1
        try:
            found = json.loads(envelope).get("seq")
        except (ValueError, AttributeError):
            found = None
        if isinstance(found, int) and not isinstance(found, bool):
            seq = found
        chain_hash = links[index] if index < len(links) else None
        stored.append(Link(seq=seq, envelope=envelope, chain_hash=chain_hash))
    return stored


def _with_opened(stored: list[Link], data: bytes) -> tuple[list[Link], list[Finding]]:
    """The events with their opened form (`opened.jsonl`) attached for replay. An opened
    event must be its stored event with the personal values put back: masked again it must
    give the stored event exactly (the values themselves are only in the chained ciphertext,
    which the bundle cannot open without the key)."""
    opened: dict[int, str] = {}
    for line in _lines(data):
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if (
            isinstance(row, dict)
            and isinstance(row.get("seq"), int)
            and isinstance(row.get("envelope"), str)
        ):
            opened[row["seq"]] = row["envelope"]
    findings: list[Finding] = []
    attached = []
    for event in stored:
        text = opened.get(event.seq)
        if text is not None and not _masks_to(text, event.envelope):
            findings.append(
                Finding(
                    problem="content hash mismatch",
                    file=OPENED,
                    detail=f"the opened event seq {event.seq} is not the stored event with "
                    "its personal values put back",
                )
            )
            text = None
        attached.append(event.model_copy(update={"opened": text}))
    return attached, findings


def _masks_to(opened: str, stored: str) -> bool:
    try:
        plain, kept = json.loads(opened), json.loads(stored)
    except ValueError:
        return False
    if not (isinstance(plain, dict) and isinstance(kept, dict)):
        return False
    kept.pop("sealed", None)
    event = plain.get("event")
    if not isinstance(event, dict):
        return False
    plain["event"] = split(event, event_paths(str(event.get("type"))))[0]
    return bool(plain == kept)


def _inbound_rows(data: bytes) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for line in _lines(data):
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        rows.append(row if isinstance(row, dict) else {})
    return rows
