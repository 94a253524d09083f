"""GET /audit and GET /audit/export: the audit trail, filtered, paged by cursor, or streamed whole (admin)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app.api.deps import AdminDep, get_services
from app.audit.record import AuditKind, AuditOutcome, AuditRecord, optional_audit_time
from app.audit.store import AuditFilter
from app.audit.trail import AuditTrail
from app.errors import FeatureOff
from app.schemas import ErrorResponse

router = APIRouter(prefix="/audit", tags=["audit"], dependencies=[AdminDep])
CSV_FIELDS = ["seq", "time", "kind", "outcome", "request_id", "caller", "client", "route", "status", "latency_ms",
              "input_sha256", "input_format", "input_bytes", "instance", "result_id", "model", "model_version",
              "model_sha256", "integrity_accepted", "integrity_code", "integrity_score", "p_pneumonia", "label",
              "threshold", "priority", "detail", "prev_hash", "hash"]


class ChainHead(BaseModel):
    seq: int = Field(description="the newest record; 0 when the trail is empty")
    hash: str = Field(description="its hash: note it elsewhere to detect a rewritten chain later")


class AuditPage(BaseModel):
    records: list[AuditRecord]
    next_cursor: int | None = Field(description="pass as cursor for the next page; null at the end")
    head: ChainHead


async def get_trail(request: Request) -> AuditTrail:
    trail = get_services(request).audit
    if trail is None:
        raise FeatureOff("the audit trail is off on this server (CXR_AUDIT=off)")
    return trail


TrailDep = Annotated[AuditTrail, Depends(get_trail)]


async def audit_filter(
    since: dt.datetime | None = Query(None, description="records at or after this time (ISO 8601; UTC if no zone)"),
    until: dt.datetime | None = Query(None, description="records before this time"),
    model: str | None = Query(None, max_length=200, description="model name, or name@version"),
    outcome: AuditOutcome | None = Query(None),
    kind: AuditKind | None = Query(None),
    input_sha256: str | None = Query(None, pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the uploaded bytes"),
) -> AuditFilter:
    return AuditFilter(since=optional_audit_time(since), until=optional_audit_time(until), model=model, outcome=outcome, kind=kind,
                       input_sha256=input_sha256)


FilterDep = Annotated[AuditFilter, Depends(audit_filter)]


@router.get("", response_model=AuditPage, responses={409: {"model": ErrorResponse, "description": "CXR_AUDIT=off"}},
            summary="audit records, oldest first, filtered; cursor pagination")
async def list_audit(trail: TrailDep, flt: FilterDep, cursor: int = Query(0, ge=0, le=2**62),
                     limit: int = Query(100, ge=1, le=1000)) -> AuditPage:
    records = await run_in_threadpool(trail.store.page, flt, after=cursor, limit=limit)
    seq, digest = await run_in_threadpool(lambda: trail.store.head)
    return AuditPage(records=records, next_cursor=records[-1].seq if len(records) == limit else None,
                     head=ChainHead(seq=seq, hash=digest))


def _csv_row(r: AuditRecord) -> list[object]:
    d = r.model_dump(mode="json")
    flat = {**d, "input_sha256": r.input and r.input.sha256, "input_format": r.input and r.input.format,
            "input_bytes": r.input and r.input.bytes, "model": r.model and r.model.name,
            "model_version": r.model and r.model.version, "model_sha256": r.model and r.model.sha256,
            "integrity_accepted": r.integrity and r.integrity.accepted, "integrity_code": r.integrity and r.integrity.code,
            "integrity_score": r.integrity and r.integrity.score}
    return ["" if flat.get(k) is None else flat[k] for k in CSV_FIELDS]


def _stream(trail: AuditTrail, flt: AuditFilter, fmt: str) -> Iterator[bytes]:
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_FIELDS)
        for record in trail.store.iterate(flt):
            writer.writerow(_csv_row(record))
            if buf.tell() > 65536:
                yield buf.getvalue().encode()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue().encode()
        return
    for record in trail.store.iterate(flt):
        yield (json.dumps(record.model_dump(mode="json", exclude_none=True), separators=(",", ":")) + "\n").encode()


@router.get("/export", responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}},
                                  409: {"model": ErrorResponse, "description": "CXR_AUDIT=off"}},
            summary="the filtered trail streamed as JSON lines (verifiable: every field of each record) or CSV")
async def export_audit(trail: TrailDep, flt: FilterDep,
                       format: Literal["jsonl", "csv"] = Query("jsonl")) -> StreamingResponse:  # noqa: A002
    media = "text/csv" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(_stream(trail, flt, format), media_type=media, headers={
        "Content-Disposition": f'attachment; filename="audit.{format}"'})
