"""The JSON Schemas of everything salesbot stores or exports, generated from its models.

`salesbot schema export DIR` writes one `<artifact>.schema.json` per artifact below and an
`index.json`; `docs/schemas/` holds the export of this release, and a test fails when a
model changed without it being exported again. Each schema is draft 2020-12, with an `$id`
naming the artifact and its schema version, a title, a description saying where the
artifact comes from, and `x-schema-version`, the `schema_version` the artifact carries.

The schemas are pydantic's *validation* schemas: what salesbot itself accepts when it reads
the artifact back. So a record written by an earlier release — without a field added since,
which its model then defaults — still validates, and a decimal (a weight, a score; never
money, which is integer minor units) may be a JSON number, as the command line prints it, or
a decimal string, as stored events hold it. Rules a JSON Schema cannot state (a quote's
arithmetic adding up, a reply URL's destination) are checked by the models, not here.

The bytes are deterministic (keys sorted, two-space indent, UTF-8, a final newline) and hold
no generator version, so the export changes only when a schema does and diffs read well.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from adapters.leadfeed.models import (
    LEAD_REPLY_SCHEMA_VERSION,
    LEAD_SCHEMA_VERSION,
    LeadBody,
    LeadReply,
)
from adapters.ports import OUTBOX_PAYLOAD_SCHEMA_VERSION, OutboxPayload
from domain import GENERATOR
from domain.analytics import METRICS_SCHEMA_VERSION, Metrics
from domain.artifacts import (
    CHECK_SCHEMA_VERSION,
    LEAD_SCORE_SCHEMA_VERSION,
    NARRATIVE_SCHEMA_VERSION,
    OFFER_SCHEMA_VERSION,
    REPLAY_SCHEMA_VERSION,
    CheckReport,
    LeadScoreReport,
    NarrativeReport,
    Offer,
    QuoteReport,
    ReplayReport,
    UnderstandReading,
)
from domain.audit import AUDIT_SCHEMA_VERSION, AuditReport
from domain.audit_bundle import BUNDLE_SCHEMA_VERSION, BundleManifest
from domain.events import EVENT_SCHEMA_VERSION, EventEnvelope
from domain.fairness_report import FAIRNESS_REPORT_SCHEMA_VERSION, FairnessReport
from domain.inbound import INBOUND_SCHEMA_VERSION, Inbound
from domain.quotes import QUOTE_SCHEMA_VERSION
from domain.report_data import REPORT_SCHEMA_VERSION, ReportData
from domain.understand import UNDERSTAND_SCHEMA_VERSION
from domain.verification import VERIFY_SCHEMA_VERSION, VerifyReport
from storage.ports import TICKET_SCHEMA_VERSION, TicketRow

DRAFT = "https://json-schema.org/draft/2020-12/schema"
INDEX = "index.json"
SUFFIX = ".schema.json"
DECIMAL_STRING = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
"""A decimal as text, as `str(Decimal)` writes it (pydantic's own schema says only "a
string" when the field has no digit limits)."""


@dataclass(frozen=True, slots=True)
class Artifact:
    """One artifact: its name (the file's), what it is and who writes it, its shape."""

    name: str
    title: str
    description: str
    shape: Any
    """A pydantic model class, or an annotated type (read through a `TypeAdapter`)."""
    schema_version: int

    @property
    def id(self) -> str:
        return f"urn:salesbot:schema:{self.name}:{self.schema_version}"

    @property
    def file(self) -> str:
        return f"{self.name}{SUFFIX}"


ARTIFACTS: tuple[Artifact, ...] = (
    Artifact(
        "audit",
        "Audit report",
        "What `salesbot audit ID --json` prints: every decision on a conversation, lead or "
        "quote, each explained, under the policy versions that decided them.",
        AuditReport,
        AUDIT_SCHEMA_VERSION,
    ),
    Artifact(
        "audit_bundle",
        "Audit bundle manifest",
        "`manifest.json` of the zip `salesbot audit ID --bundle FILE` writes: the SHA-256 of "
        "every other file (events.jsonl, the events as stored; inbounds.jsonl, the raw "
        "inbounds; policies/<version>.json, the policy texts, each named by its own SHA-256; "
        "schemas/), the conversation's hash chain (each event's stored link, the head, the "
        "rule) and the schema versions bundled.",
        BundleManifest,
        BUNDLE_SCHEMA_VERSION,
    ),
    Artifact(
        "check",
        "Policy check",
        "What `salesbot check --json` prints: the policy and one line per violation.",
        CheckReport,
        CHECK_SCHEMA_VERSION,
    ),
    Artifact(
        "event",
        "Event",
        "An event as the event log stores it (SQLite `events.envelope`): the conversation, "
        "its sequence number, the time in epoch ms, the policy version and the delivery that "
        "caused it, around one decision (`event.type`). `generator` is the generator version "
        "of the salesbot that wrote it.",
        EventEnvelope,
        EVENT_SCHEMA_VERSION,
    ),
    Artifact(
        "inbound",
        "Inbound",
        "What arrived from outside, platform-neutral, as stored for replay (SQLite "
        "`inbounds.inbound`): a lead, a message, a command, a button click, a timer, a failed "
        "delivery. Its generator is the `generator` of the events its delivery caused.",
        Inbound,
        INBOUND_SCHEMA_VERSION,
    ),
    Artifact(
        "lead",
        "Lead",
        "The body a web form, CRM or mail relay POSTs to `/leads` (the lead feed). The "
        "caller's document: it carries no versions. The feed also refuses an e-mail address "
        "that does not look like one and a reply URL its outbound rules forbid.",
        LeadBody,
        LEAD_SCHEMA_VERSION,
    ),
    Artifact(
        "lead_reply",
        "Lead reply",
        "The body POSTed (signed) to a lead's reply URL: one reply of the bot to the "
        "prospect, its card as neutral JSON, and the key receivers dedupe by.",
        LeadReply,
        LEAD_REPLY_SCHEMA_VERSION,
    ),
    Artifact(
        "lead_score",
        "Lead score",
        "What `salesbot score --json` prints: a lead's score, band and exact per-feature "
        "contributions (they add up to the score).",
        LeadScoreReport,
        LEAD_SCORE_SCHEMA_VERSION,
    ),
    Artifact(
        "fairness",
        "Fairness report",
        "What `salesbot fairness --json` prints: stored leads pursued now with and without "
        "the fairness penalty, by band, lead source and company size, the ratio of pursued-now "
        "rates between the credit groups (flagged below 0.8) and an optional sweep of c0 and λ.",
        FairnessReport,
        FAIRNESS_REPORT_SCHEMA_VERSION,
    ),
    Artifact(
        "metrics",
        "Metrics",
        "What `salesbot metrics --json` prints, the report data: conversion with Wilson and "
        "Jeffreys intervals, time to qualify, abandonment, the funnel, quotes and meetings.",
        Metrics,
        METRICS_SCHEMA_VERSION,
    ),
    Artifact(
        "narrative",
        "Narrative assessment",
        "What `salesbot narrative --json` prints: resonance and urgency with their "
        "attributions, and the fairness penalty's audit record (knobs, credit score, reason).",
        NarrativeReport,
        NARRATIVE_SCHEMA_VERSION,
    ),
    Artifact(
        "offer",
        "Offer",
        "A quote made in a conversation (to a lead, when the conversation is one): a "
        "`quote_issued` or `quote_revised` event in its envelope, as the event log stores it.",
        Offer,
        OFFER_SCHEMA_VERSION,
    ),
    Artifact(
        "outbox_payload",
        "Outbox payload",
        "What an outbox item holds for its sender (SQLite `outbox.payload`): the neutral "
        "reply, the route's target, the requester, and the versions of the record, of the "
        "salesbot that wrote it and of the adapter that routed it (absent on items written "
        "before payloads were versioned).",
        OutboxPayload,
        OUTBOX_PAYLOAD_SCHEMA_VERSION,
    ),
    Artifact(
        "quote",
        "Quote",
        "What `salesbot quote --json` prints: a quote with every input, figure (integer "
        "minor units) and proof line, and the policy whose catalog priced it. Quotes in "
        "events have the same fields without `policy` and `generator_version`.",
        QuoteReport,
        QUOTE_SCHEMA_VERSION,
    ),
    Artifact(
        "replay",
        "Replay report",
        "What `salesbot replay --json` prints: conversations and inbounds re-decided, and "
        "every aspect decided differently.",
        ReplayReport,
        REPLAY_SCHEMA_VERSION,
    ),
    Artifact(
        "report",
        "Report data",
        "What `salesbot report --out DIR --json` prints, and what DIR/report.html shows: "
        "the window, store and policy; the metrics and their chart's data with conversion "
        "by persona and lead source; latest scores by band; Σ w×x per feature; objection "
        "classes and escalations; tickets by reason with time to claim; the narrative "
        "scatter's points; the fairness counterfactual; the flow's traffic per transition.",
        ReportData,
        REPORT_SCHEMA_VERSION,
    ),
    Artifact(
        "ticket",
        "Ticket",
        "A request for a human as the ticket table holds it: its key, reason, status, who "
        "claimed and resolved it, times in epoch ms, and the salesbot that last wrote it "
        "(null for a row last written before rows recorded it).",
        TicketRow,
        TICKET_SCHEMA_VERSION,
    ),
    Artifact(
        "verify",
        "Verification report",
        "What `salesbot verify --json` prints, on the live store or an audit bundle: what was "
        "verified, the first problem found in each conversation (a content hash mismatch, a "
        "missing link, a replay difference, something unreadable) or bundle file, and each "
        "conversation's chain head.",
        VerifyReport,
        VERIFY_SCHEMA_VERSION,
    ),
    Artifact(
        "understand",
        "Understanding",
        "One line of `salesbot understand`: the reading of one input line (README, "
        '"Understanding").',
        UnderstandReading,
        UNDERSTAND_SCHEMA_VERSION,
    ),
)

BY_NAME: Mapping[str, Artifact] = {artifact.name: artifact for artifact in ARTIFACTS}


class _Generator(GenerateJsonSchema):
    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        """As pydantic's, without a default that is this salesbot's own version: a record
        says which salesbot wrote it, and the schema must not change with every release."""
        found = super().default_schema(schema)
        if found.get("default") == GENERATOR:
            del found["default"]
        return found

    def decimal_schema(self, schema: core_schema.DecimalSchema) -> JsonSchemaValue:
        found = super().decimal_schema(schema)
        for option in found.get("anyOf", [found]):
            if option.get("type") == "string" and "pattern" not in option:
                option["pattern"] = DECIMAL_STRING
        return found


def schema_of(artifact: Artifact) -> dict[str, Any]:
    """The artifact's JSON Schema document, ready to write."""
    adapter: TypeAdapter[Any] = TypeAdapter(artifact.shape)
    found = adapter.json_schema(mode="validation", schema_generator=_Generator)
    return {
        "$schema": DRAFT,
        "$id": artifact.id,
        **found,
        "title": artifact.title,
        "description": artifact.description,
        "x-schema-version": artifact.schema_version,
    }


def index() -> dict[str, Any]:
    """What `index.json` says: every artifact's file, `$id`, title and schema version."""
    return {
        "$comment": "Written by `salesbot schema export`; do not edit. One JSON Schema "
        "(draft 2020-12) per artifact salesbot stores or exports.",
        "artifacts": {
            artifact.name: {
                "$id": artifact.id,
                "description": artifact.description,
                "file": artifact.file,
                "schema_version": artifact.schema_version,
                "title": artifact.title,
            }
            for artifact in ARTIFACTS
        },
    }


def document_text(document: Mapping[str, Any]) -> str:
    """Deterministic JSON: sorted keys, two-space indent, UTF-8 text, a final newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export_texts() -> dict[str, str]:
    """File name → text, for every file `salesbot schema export` writes."""
    texts = {artifact.file: document_text(schema_of(artifact)) for artifact in ARTIFACTS}
    texts[INDEX] = document_text(index())
    return texts


def export(directory: Path) -> list[Path]:
    """Write every schema and the index into `directory` (created if missing); returns the
    paths written. Raises `OSError` when the directory cannot be made or written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in export_texts().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
