"""Reader feedback: a radiologist's verdict on a screened image, kept as the current verdict per reader
(a later one replaces it) and appended to the trail every time (so earlier verdicts stay on record).
The free-text comment stays in the feedback table only; the trail holds its SHA-256 (a comment may
name a patient; the trail must not)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from app.audit.inputs import InputKeeper
from app.audit.record import AuditKind, AuditOutcome, AuditRecord
from app.audit.trail import AuditTrail
from app.errors import AuditRecordNotFound, NotScreened
from app.schemas import FeedbackDatasetRequest, FeedbackRequest, FeedbackResponse

SCREENING_KINDS = (AuditKind.predict, AuditKind.stow_instance)


def screened_record(trail: AuditTrail, body: FeedbackRequest) -> AuditRecord:
    if body.record is not None:
        record = trail.store.get(body.record)
        if record is None:
            raise AuditRecordNotFound(f"no audit record {body.record}")
        if record.kind not in SCREENING_KINDS or record.outcome is not AuditOutcome.screened:
            raise NotScreened(f"audit record {body.record} is a {record.kind.value} record with outcome "
                             f"{record.outcome.value}, not a screened image: nothing to give feedback on")
        return record
    assert body.input_sha256 is not None
    record = trail.store.latest_screening(body.input_sha256)
    if record is None:
        raise AuditRecordNotFound(f"no screened image with input sha256 {body.input_sha256}")
    return record


def give_feedback(trail: AuditTrail, body: FeedbackRequest, caller: str) -> FeedbackResponse:
    record = screened_record(trail, body)
    reader = body.reader or caller
    comment_hash = hashlib.sha256(body.comment.encode("utf-8")).hexdigest() if body.comment else None
    logged = trail.store.append({
        "kind": AuditKind.feedback, "outcome": AuditOutcome.recorded, "caller": caller, "label": body.label.value,
        "model": record.model, "input": record.input, "result_id": record.result_id,
        "extra": {"record": record.seq, "reader": reader, "comment_sha256": comment_hash}})
    replaced = trail.store.save_feedback(record.seq, reader, body.label.value, body.comment, logged.seq)
    return FeedbackResponse(record=record.seq, reader=reader, label=body.label, model_label=record.label,
                            agrees=record.label == body.label.value, replaced=replaced, audit_seq=logged.seq)


def feedback_cases(trail: AuditTrail, keeper: InputKeeper, body: FeedbackDatasetRequest
                   ) -> tuple[list[tuple[Path, str]], dict[str, int]]:
    """The kept images readers gave a verdict on, each with its label; cases where readers disagree or
    whose image is no longer kept are counted and left out."""
    by_record: dict[int, tuple[str | None, set[str]]] = {}
    for seq, reader, label, sha, _ in trail.store.feedback_cases(body.since_iso(), body.until_iso(), model=body.model):
        if body.reader and reader != body.reader:
            continue
        by_record.setdefault(seq, (sha, set()))[1].add(label)
    cases: list[tuple[Path, str]] = []
    seen: set[str] = set()
    tally = {"verdicts": len(by_record), "conflicting": 0, "not_kept": 0, "duplicates": 0}
    for sha, labels in by_record.values():
        if len(labels) > 1:
            tally["conflicting"] += 1
            continue
        path = keeper.find(sha) if sha else None
        if path is None:
            tally["not_kept"] += 1
            continue
        if sha in seen:  # the same image screened twice: one case
            tally["duplicates"] += 1
            continue
        seen.add(sha)
        cases.append((path, labels.pop()))
    return cases, tally
