"""The record of every STOW-RS instance taken in and the results produced for it: rows in the shared
database (app/db: SQLite by default, PostgreSQL for replicas), files in CXR_STATE_DIR/dicom.

One row per source instance: inference state (queued → processing → done | not_evaluated | failed) and
delivery state to each target, the PACS and the FHIR server (not_configured | pending → delivered |
failed), each with its own attempts and next attempt. Files live beside it: the incoming instance
until it is processed, then the result objects CXR_DICOM_OUTPUTS names (``sr.dcm``, ``pm.dcm``,
``sc.dcm``; only the SR for an image the integrity check refused: state not_evaluated, the reason in
``error``) and the FHIR Bundle (``fhir.json``) when a FHIR server is configured.

Replicas share both. Whoever processes an instance first claims it (queued → processing, one
conditional UPDATE: one replica wins); a delivery attempt first leases the row (its next attempt moved
past the attempt's timeout, again one conditional UPDATE), so an instance is screened once and each
result is sent at least once, by one replica at a time, and again only if that replica died.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import ColumnElement, Engine, Select, and_, func, or_, select

from app.core.files import write_atomic
from app.db.legacy import legacy_rows, retire
from app.db.migrate import ensure_schema
from app.db.schema import results
from app.dicom.multipart import Part

log = logging.getLogger(__name__)

PRIVATE = 0o600  # instances and results carry patient data


class ResultState(str, Enum):
    queued = "queued"
    processing = "processing"
    done = "done"
    not_evaluated = "not_evaluated"  # the integrity check refused it: the SR alone says so
    failed = "failed"


class DeliveryState(str, Enum):
    not_configured = "not_configured"  # no CXR_PACS_STOW_URL
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class Target(str, Enum):
    pacs = "pacs"
    fhir = "fhir"


@dataclass(frozen=True)
class TargetColumns:
    state: str
    attempts: str
    next_attempt_at: str
    error: str
    delivered_at: str


COLUMNS = {
    Target.pacs: TargetColumns("delivery", "attempts", "next_attempt_at", "delivery_error", "delivered_at"),
    Target.fhir: TargetColumns("fhir_delivery", "fhir_attempts", "fhir_next_attempt_at", "fhir_error",
                               "fhir_delivered_at"),
}
OUTPUT_ORDER = ("sr", "pm", "sc")  # delivery order: the report before the images
FHIR_FILE = "fhir.json"
DELIVERABLE = (ResultState.done, ResultState.not_evaluated)  # states with instances to send
LEGACY_FILE = "results.sqlite3"  # the per-server file before the shared database: copied in once


class ResultStore:
    def __init__(self, root: Path, engine: Engine, owner: str = "cxr") -> None:
        self.root = Path(root)
        self.engine = engine
        self.owner = owner  # how this replica names itself in claims (CXR_WORKER_NAME)
        self.incoming = self.root / "incoming"
        self.outputs = self.root / "results"
        # STOW-RS parts while a request is read (same file system: moved, not copied); one folder per process, so a
        # replica clears what its own crashed predecessor left, never the parts another replica is reading
        self.spool = self.root / "spool" / f"{owner}-{os.getpid()}"
        for folder in (self.incoming, self.outputs, self.spool):
            folder.mkdir(parents=True, exist_ok=True)
        self._clear_dead_spools()
        ensure_schema(engine)
        self._adopt_legacy()

    def _clear_dead_spools(self) -> None:
        for folder in self.spool.parent.iterdir():
            name, _, pid = folder.name.rpartition("-")
            if folder == self.spool or name != self.owner or not pid.isdigit() or _alive(int(pid)):
                continue
            shutil.rmtree(folder, ignore_errors=True)  # parts of requests a crash interrupted

    def _adopt_legacy(self) -> None:
        """Rows of the SQLite file each server kept before the shared database, copied in once."""
        legacy = self.root / LEGACY_FILE
        if not legacy.is_file():
            return
        rows = legacy_rows(legacy, "results", results.c.keys())
        with self.engine.begin() as conn:
            have = set(conn.execute(select(results.c.id)).scalars())
            todo = [r for r in rows if r["id"] not in have]
            if todo:
                conn.execute(results.insert(), todo)
        retire(legacy)
        log.info("DICOM results: %d row(s) of %s copied into the database", len(todo), legacy)

    def close(self) -> None:
        shutil.rmtree(self.spool, ignore_errors=True)

    # -- files ------------------------------------------------------------------------------
    def incoming_path(self, result_id: str) -> Path:
        return self.incoming / f"{result_id}.dcm"

    def folder(self, result_id: str) -> Path:
        return self.outputs / result_id

    def save_outputs(self, result_id: str, objects: dict[str, bytes], fhir: bytes | None = None) -> None:
        """``objects``: kind (sr, pm, sc) -> Part-10 bytes; ``fhir``: the Bundle, when one is delivered."""
        folder = self.folder(result_id)
        folder.mkdir(parents=True, exist_ok=True)
        for kind, data in objects.items():
            write_atomic(folder / f"{kind}.dcm", data, mode=PRIVATE)
        if fhir is not None:
            write_atomic(folder / FHIR_FILE, fhir, mode=PRIVATE)

    def load_outputs(self, result_id: str) -> list[bytes]:
        """The result's Part-10 objects in delivery order; OSError when there are none on disk."""
        folder = self.folder(result_id)
        found = [folder / f"{kind}.dcm" for kind in OUTPUT_ORDER if (folder / f"{kind}.dcm").is_file()]
        if not found:
            raise FileNotFoundError(f"no result objects for {result_id}")
        return [path.read_bytes() for path in found]

    def load_fhir(self, result_id: str) -> list[bytes]:
        return [(self.folder(result_id) / FHIR_FILE).read_bytes()]

    # -- rows -------------------------------------------------------------------------------
    def spool_file(self) -> tuple[BinaryIO, Path]:
        """A new private file for one STOW-RS part (the caller removes what it does not ``add``)."""
        fd, name = tempfile.mkstemp(dir=self.spool, prefix="part-", suffix=".dcm")
        os.fchmod(fd, PRIVATE)
        return os.fdopen(fd, "w+b"), Path(name)

    def add(self, study_uid: str, sop_class_uid: str, sop_instance_uid: str, source: Part) -> str:
        """Persist an accepted instance (file first, then the row: a crash leaves no row without its file).
        A spooled part is synced and renamed into place; an in-memory one is written."""
        result_id = uuid.uuid4().hex[:16]
        if source.path is not None:
            source.body.flush()
            os.fsync(source.body.fileno())
            os.replace(source.path, self.incoming_path(result_id))
        else:
            write_atomic(self.incoming_path(result_id), source.data, mode=PRIVATE)
        t = time.time()
        with self.engine.begin() as conn:
            conn.execute(results.insert().values(id=result_id, study_uid=study_uid, source_sop_class_uid=sop_class_uid,
                                                 source_sop_instance_uid=sop_instance_uid, state="queued",
                                                 created_at=t, updated_at=t))
        return result_id

    def _rows(self, query: Select) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def find_source(self, sop_instance_uid: str) -> dict[str, Any] | None:
        """The live (not failed) result of a source instance, if it was received before."""
        rows = self._rows(select(results).where(results.c.source_sop_instance_uid == sop_instance_uid,
                                                results.c.state != "failed")
                          .order_by(results.c.created_at.desc()).limit(1))
        return rows[0] if rows else None

    def update(self, result_id: str, **fields: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(results.update().where(results.c.id == result_id).values(**fields, updated_at=time.time()))

    def claim(self, result_id: str) -> bool:
        """queued -> processing for this replica; False when another one has it (or it is past that)."""
        t = time.time()
        with self.engine.begin() as conn:
            return conn.execute(results.update().where(results.c.id == result_id, results.c.state == "queued").values(
                state="processing", owner=self.owner, claimed_at=t, updated_at=t)).rowcount == 1

    def get(self, result_id: str) -> dict[str, Any] | None:
        rows = self._rows(select(results).where(results.c.id == result_id))
        return rows[0] if rows else None

    def by_study(self, study_uid: str, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        return self._rows(select(results).where(results.c.study_uid == study_uid)
                          .order_by(results.c.created_at, results.c.id).limit(limit).offset(offset))

    def recent(self, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        return self._rows(select(results).order_by(results.c.created_at.desc(), results.c.id.desc())
                          .limit(limit).offset(offset))

    def count_waiting(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(results).where(
                results.c.state.in_(("queued", "processing")))).scalar_one())

    def unfinished(self, stale_s: float | None = None) -> list[str]:
        """Instances to (re)process, oldest first: this replica's own that it was processing when it stopped
        (and unowned ones), or with ``stale_s`` any replica's claimed longer ago than that (it died); then
        every queued one (a claim decides who processes it)."""
        if stale_s is None:
            stopped = or_(results.c.owner == self.owner, results.c.owner.is_(None))
        else:
            stopped = results.c.claimed_at < time.time() - stale_s
        with self.engine.begin() as conn:
            conn.execute(results.update().where(results.c.state == "processing", stopped).values(
                state="queued", owner=None, claimed_at=None))
        return [r["id"] for r in self._rows(select(results.c.id).where(results.c.state == "queued")
                                            .order_by(results.c.created_at, results.c.id))]

    def purge(self, older_than: float) -> int:
        """Delete results (rows and files) created before ``older_than`` (epoch seconds) that need
        nothing more: done or not evaluated and delivered (or with no PACS configured), or failed. Results still
        waiting for inference or delivery are kept whatever their age."""
        finished = ("delivered", "not_configured")
        ids = [r["id"] for r in self._rows(select(results.c.id).where(
            results.c.created_at < older_than,
            or_(results.c.state == "failed",
                and_(results.c.state.in_([s.value for s in DELIVERABLE]), results.c.delivery.in_(finished),
                     results.c.fhir_delivery.in_(finished)))))]
        for result_id in ids:
            self.incoming_path(result_id).unlink(missing_ok=True)
            folder = self.folder(result_id)
            if folder.is_dir():
                for path in folder.iterdir():
                    path.unlink(missing_ok=True)
                folder.rmdir()
            with self.engine.begin() as conn:
                conn.execute(results.delete().where(results.c.id == result_id))
        return len(ids)

    def _due(self, target: Target, now: float) -> ColumnElement[bool]:
        c = COLUMNS[target]
        when = results.c[c.next_attempt_at]
        return and_(results.c[c.state] == "pending", results.c.state.in_([s.value for s in DELIVERABLE]),
                     or_(when.is_(None), when <= now))

    def due_deliveries(self, now: float, target: Target = Target.pacs, limit: int = 16) -> list[dict[str, Any]]:
        c = COLUMNS[target]
        return self._rows(select(results).where(self._due(target, now))
                          .order_by(results.c[c.next_attempt_at], results.c.created_at).limit(limit))

    def lease_delivery(self, result_id: str, target: Target, now: float, lease_s: float) -> bool:
        """Take one delivery attempt: its next attempt moves ``lease_s`` ahead (where a replica that dies
        mid-attempt leaves it for another); False when another replica took it first."""
        c = COLUMNS[target]
        with self.engine.begin() as conn:
            return conn.execute(results.update().where(results.c.id == result_id, self._due(target, now)).values(
                **{c.next_attempt_at: now + lease_s})).rowcount == 1

    def next_due_at(self, target: Target = Target.pacs) -> float | None:
        c = COLUMNS[target]
        with self.engine.connect() as conn:
            value = conn.execute(select(func.min(func.coalesce(results.c[c.next_attempt_at], 0))).where(
                results.c[c.state] == "pending", results.c.state.in_([s.value for s in DELIVERABLE]))).scalar()
        return None if value is None else float(value)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
