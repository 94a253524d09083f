"""Turning what happened into audit records: HTTP screenings (via the middleware), STOW-RS instances and
PACS deliveries (called by app/pacs), retention. The one place a record's fields are filled in."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from app.audit.record import AuditIntegrity, AuditKind, AuditModel, AuditOutcome, AuditRecord, audit_time
from app.audit.store import AuditStore
from models.errors import CXRError
from models.imaging import sniff_format

log = logging.getLogger(__name__)
SALT_FILE = "audit_salt"


def load_salt(state_dir: Path) -> bytes:
    """The trail's secret salt for DICOM UIDs: created once (0600) in the state directory and kept, so the
    same instance always hashes the same way on this installation and nowhere else. Replicas sharing the
    directory share it: it is written aside and linked into place, so one of them creates it and every
    other one reads that one, never a half-written file."""
    path = Path(state_dir) / SALT_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{SALT_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(draft, path)  # fails if another process linked its salt first: that one is kept
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return bytes.fromhex(path.read_text().strip())


@dataclass
class ScreeningFacts:
    """What a route learned about one screening; the middleware adds who, when, the status and the latency."""

    input_sha256: str | None = None
    input_format: str | None = None
    input_bytes: int | None = None
    instance_uid: str | None = None
    model: AuditModel | None = None
    integrity: AuditIntegrity | None = None
    p_pneumonia: float | None = None
    label: str | None = None
    threshold: float | None = None
    priority: str | None = None
    outcome: AuditOutcome | None = None  # None: decided by the status code
    detail: str | None = None


class AuditTrail:
    def __init__(self, store: AuditStore, salt: bytes) -> None:
        self.store = store
        self._salt = salt

    def instance(self, uid: str | None) -> str | None:
        return None if not uid else hmac.new(self._salt, uid.encode("utf-8"), hashlib.sha256).hexdigest()

    def _facts_fields(self, facts: ScreeningFacts | None) -> dict[str, Any]:
        if facts is None:
            return {}
        return {
            "input": None if facts.input_sha256 is None else {"sha256": facts.input_sha256, "format": facts.input_format,
                                                              "bytes": facts.input_bytes or 0},
            "instance": self.instance(facts.instance_uid), "model": facts.model, "integrity": facts.integrity,
            "p_pneumonia": facts.p_pneumonia, "label": facts.label, "threshold": facts.threshold,
            "priority": facts.priority, "detail": facts.detail,
        }

    def http(self, *, kind: AuditKind, route: str, status: int, latency_ms: float, request_id: str | None,
             caller: str | None, client: str | None, facts: ScreeningFacts | None) -> AuditRecord:
        if facts is not None and facts.outcome is not None and status < 500:
            outcome = facts.outcome
        elif status >= 500:
            outcome = AuditOutcome.error
        elif status >= 400:
            outcome = AuditOutcome.rejected
        else:
            outcome = AuditOutcome.screened if kind is AuditKind.predict else AuditOutcome.accepted
        return self.store.append({"kind": kind, "outcome": outcome, "request_id": request_id, "caller": caller,
                                  "client": client, "route": route, "status": status,
                                  "latency_ms": round(latency_ms, 3), **self._facts_fields(facts)})

    def stow_instance(self, result_id: str, outcome: AuditOutcome, facts: ScreeningFacts) -> AuditRecord:
        return self.store.append({"kind": AuditKind.stow_instance, "outcome": outcome, "result_id": result_id,
                                  **self._facts_fields(facts)})

    def delivery(self, result_id: str, *, delivered: bool, attempts: int, detail: str | None,
                 target: str = "pacs") -> AuditRecord:
        return self.store.append({"kind": AuditKind.delivery, "result_id": result_id, "detail": detail,
                                  "outcome": AuditOutcome.delivered if delivered else AuditOutcome.delivery_failed,
                                  "extra": {"attempts": attempts, "target": str(getattr(target, "value", target))}})

    def prune(self, retention_days: float | None) -> AuditRecord | None:
        if not retention_days:
            return None
        record = self.store.prune(audit_time(dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=retention_days)))
        if record is not None:
            log.info("audit trail: %s", record.detail)
        return record


def record_inference(facts: ScreeningFacts, inf: Any) -> None:
    """Fill ``facts`` from an ``app.inference.pipeline.Inference`` (a screened image)."""
    card = inf.model.card
    facts.model = AuditModel(name=card.name, version=card.version, sha256=card.sha256)
    facts.p_pneumonia, facts.label, facts.threshold = round(inf.p_pneumonia, 6), inf.label.value, card.threshold
    facts.instance_uid = _uid(inf.decoded.dataset)
    if inf.integrity is not None:
        facts.integrity = AuditIntegrity(accepted=inf.integrity.accepted, code=inf.integrity.code,
                                         score=round(inf.integrity.score, 6))


def record_refusal(facts: ScreeningFacts, refused: Any) -> None:
    """Fill ``facts`` from an ``app.errors.NotEvaluated`` (the integrity check refused the image)."""
    facts.outcome = AuditOutcome.not_evaluated
    facts.detail = refused.integrity.reason
    facts.integrity = AuditIntegrity(accepted=False, code=refused.integrity.code, score=round(refused.integrity.score, 6))
    if refused.model:
        facts.model = AuditModel(name=refused.model[0], version=refused.model[1])
    facts.instance_uid = _uid(refused.dataset)


def _uid(dataset: Any) -> str | None:
    uid = getattr(dataset, "SOPInstanceUID", None) if dataset is not None else None
    return str(uid) if uid else None


def screening_facts(data: bytes) -> ScreeningFacts:
    """The input's part of a record: SHA-256, size and sniffed format (None when not an image)."""
    try:
        fmt: str | None = sniff_format(data).value
    except CXRError:  # not PNG/JPEG/DICOM: the route answers 415 and the record says so
        fmt = None
    return ScreeningFacts(input_sha256=hashlib.sha256(data).hexdigest(), input_format=fmt, input_bytes=len(data))


async def audit_retention(trail: AuditTrail | None, settings: Any, inputs: Any = None, *,
                          every_s: float = 3600.0) -> None:
    """At start and then hourly: remove records past CXR_AUDIT_RETENTION_DAYS and kept inputs past
    CXR_KEEP_INPUTS_DAYS (nothing when unset)."""
    if (trail is None or not settings.audit_retention_days) and inputs is None:
        return
    while True:
        try:
            if trail is not None and settings.audit_retention_days:
                await run_in_threadpool(trail.prune, settings.audit_retention_days)
            if inputs is not None:
                gone = await run_in_threadpool(inputs.expire)
                if gone:
                    log.info("kept inputs: %d older than %g days deleted", gone, inputs.days)
        except Exception:
            log.exception("audit trail: retention sweep failed")
        await asyncio.sleep(every_s)
