"""What one audit record holds, and how it is chained.

A record is canonical JSON (sorted keys, no spaces) of its fields, including ``seq`` and the previous
record's hash; its own hash is SHA-256 over that JSON. Changing, deleting or reordering a stored
record therefore breaks the chain at that point (``app.audit.verify``). No patient data: images are
named by the SHA-256 of their bytes, DICOM instances by a salted hash of their SOP Instance UID.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

GENESIS = "0" * 64  # the "previous hash" of the first record ever written


class AuditKind(str, Enum):
    predict = "predict"  # one POST /predict (any output form)
    stow_request = "stow_request"  # one STOW-RS HTTP request (its instances get their own records)
    stow_instance = "stow_instance"  # one received instance, screened in the background
    delivery = "delivery"  # the outcome of sending a result to the PACS
    feedback = "feedback"  # a reader's verdict on a screened image (POST /feedback)
    retention = "retention"  # old records were removed; says which, and the hash to continue from


class AuditOutcome(str, Enum):
    screened = "screened"  # a probability and a label were produced
    accepted = "accepted"  # a STOW-RS request whose instances were taken in (each gets its own record)
    not_evaluated = "not_evaluated"  # the integrity check refused the image
    rejected = "rejected"  # a 4xx: not an image, too large, unauthorised, ...
    error = "error"  # a 5xx or a failure while processing
    delivered = "delivered"
    delivery_failed = "delivery_failed"
    recorded = "recorded"  # feedback
    pruned = "pruned"


class AuditInput(BaseModel):
    sha256: str
    format: str | None = None  # png | jpeg | dicom
    bytes: int


class AuditModel(BaseModel):
    name: str
    version: str
    sha256: str | None = None


class AuditIntegrity(BaseModel):
    accepted: bool
    code: str
    score: float | None = None


class AuditRecord(BaseModel):
    """One line of the trail (GET /audit, the export and `cxr audit verify` show exactly these fields)."""

    model_config = ConfigDict(extra="forbid")

    seq: int = Field(description="position in the chain, 1, 2, 3, … without gaps")
    time: str = Field(description="UTC, ISO 8601 with milliseconds")
    kind: AuditKind
    outcome: AuditOutcome
    request_id: str | None = None
    caller: str | None = Field(None, description="API key id (first 8 hex of its SHA-256) and role, e.g. "
                               "'key:1a2b3c4d/predict'; never the key; 'anonymous' with CXR_AUTH=off")
    client: str | None = Field(None, description="client address as the server saw it")
    route: str | None = None
    status: int | None = Field(None, description="HTTP status of the request")
    latency_ms: float | None = None
    input: AuditInput | None = None
    instance: str | None = Field(None, description="DICOM SOP Instance UID as HMAC-SHA256 with the trail's salt")
    result_id: str | None = Field(None, description="STOW-RS result id (GET /dicomweb/results/{id})")
    model: AuditModel | None = None
    integrity: AuditIntegrity | None = None
    p_pneumonia: float | None = None
    label: str | None = None
    threshold: float | None = None
    priority: str | None = None
    detail: str | None = Field(None, description="why: the refusal or error message, the delivery error")
    extra: dict[str, Any] | None = None
    prev_hash: str = Field(description="hash of record seq - 1 (zeros for the first record)")
    hash: str = Field(description="SHA-256 of this record's canonical JSON without this field")


def audit_time(value: dt.datetime | None = None) -> str:
    """The trail's time format: UTC, ISO 8601, milliseconds, 'Z' (sorts as text). None: now; a naive
    datetime is taken as UTC."""
    value = value or dt.datetime.now(dt.timezone.utc)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def optional_audit_time(value: dt.datetime | None) -> str | None:
    """A query bound in the trail's time format; None stays None (no bound)."""
    return None if value is None else audit_time(value)


def canonical(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def record_hash(fields_without_hash: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(fields_without_hash).encode("utf-8")).hexdigest()
