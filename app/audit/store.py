"""The audit store: tables ``audit`` and ``feedback`` in the service's database (app/db: SQLite by default,
PostgreSQL for replicas), append-only, each record chained to the one before.

UPDATE and DELETE are refused by triggers (migration 0004); the only removal is retention (``prune``),
which deletes a prefix of the chain and appends, in the same transaction, a ``retention`` record naming
the last removed record's hash, so what remains still verifies. An append reads the chain's head and
inserts under one lock held to its commit — SQLite's write lock (BEGIN IMMEDIATE), PostgreSQL's
transaction advisory lock — so any number of threads, processes and replicas build one chain, and a
crash loses at most the record being written.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, ColumnElement, and_, func, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.audit.record import GENESIS, AuditKind, AuditOutcome, AuditRecord, audit_time, canonical
from app.db.legacy import legacy_rows, retire
from app.db.migrate import ensure_schema
from app.db.schema import audit, feedback

log = logging.getLogger(__name__)
CHAIN_LOCK = 0x63787261  # PostgreSQL advisory lock key of the chain's head ("cxra")
LEGACY_FILE = "audit.sqlite3"  # the per-server trail before the shared database: its chain is copied in once
_NO_DELETE = ("CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit "
              "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END")


@dataclass(frozen=True)
class AuditFilter:
    since: str | None = None  # ISO time, inclusive
    until: str | None = None  # ISO time, exclusive
    model: str | None = None  # name or name@version
    outcome: AuditOutcome | None = None
    input_sha256: str | None = None
    kind: AuditKind | None = None


def _record(body: str, digest: str) -> AuditRecord:
    return AuditRecord(**json.loads(body), hash=digest)


@contextmanager
def _holding_chain(engine: Engine) -> Iterator[Connection]:
    """A transaction holding the chain: no other writer reads the head until it commits (on leaving the
    block) or rolls back (on an error)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def _head(conn: Connection) -> tuple[int, str]:
    last = conn.execute(select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)).first()
    return (int(last[0]), str(last[1])) if last else (0, GENESIS)


class AuditStore:
    def __init__(self, engine: Engine, *, legacy: Path | None = None) -> None:
        self.engine = engine
        ensure_schema(engine)
        if legacy is not None:
            adopt_legacy(engine, Path(legacy))

    @property
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest record: write it down elsewhere to detect a rewritten chain."""
        with self.engine.connect() as conn:
            return _head(conn)

    def append(self, fields: dict[str, Any]) -> AuditRecord:
        """Chain and store one record (``fields``: AuditRecord fields other than seq, prev_hash, hash)."""
        with _holding_chain(self.engine) as conn:
            return _append(conn, fields)

    def get(self, seq: int) -> AuditRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(audit.c.body, audit.c.hash).where(audit.c.seq == seq)).first()
        return None if row is None else _record(*row)

    def latest_screening(self, input_sha256: str) -> AuditRecord | None:
        """The newest screened record of these input bytes."""
        query = (select(audit.c.body, audit.c.hash)
                 .where(audit.c.input_sha256 == input_sha256, audit.c.outcome == AuditOutcome.screened.value)
                 .order_by(audit.c.seq.desc()).limit(1))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _record(*row)

    def save_feedback(self, record_seq: int, reader: str, label: str, comment: str | None, audit_seq: int) -> bool:
        """The reader's current verdict on a record (a later one replaces it); True when it replaced one."""
        values = {"record_seq": record_seq, "reader": reader, "label": label, "comment": comment,
                  "time": audit_time(), "audit_seq": audit_seq}
        with self.engine.begin() as conn:
            replaced = conn.execute(select(feedback.c.record_seq).where(
                feedback.c.record_seq == record_seq, feedback.c.reader == reader)).first() is not None
            upsert = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(feedback).values(**values)
            conn.execute(upsert.on_conflict_do_update(
                index_elements=["record_seq", "reader"],
                set_={k: upsert.excluded[k] for k in ("label", "comment", "time", "audit_seq")}))
        return replaced

    def feedback_cases(self, since: str | None, until: str | None, *, model: str | None = None
                       ) -> list[tuple[int, str, str, str | None, str | None]]:
        """(record_seq, reader, label, input_sha256, model name@version) of the current verdicts on records
        in [since, until), of ``model`` (name or name@version) when given."""
        where = [audit.c.time >= (since or ""), audit.c.time < (until or "9999")]
        if model:
            where.append(_model_clause(model))
        query = (select(feedback.c.record_seq, feedback.c.reader, feedback.c.label, audit.c.input_sha256, audit.c.model)
                 .join(audit, audit.c.seq == feedback.c.record_seq).where(*where).order_by(feedback.c.record_seq))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [(int(r[0]), str(r[1]), str(r[2]), r[3], r[4]) for r in rows]

    def page(self, flt: AuditFilter, *, after: int = 0, limit: int = 100) -> list[AuditRecord]:
        """Records matching ``flt`` with seq > ``after``, oldest first (cursor pagination by seq)."""
        where: list[ColumnElement[bool]] = [audit.c.seq > after]
        if flt.since:
            where.append(audit.c.time >= flt.since)
        if flt.until:
            where.append(audit.c.time < flt.until)
        if flt.model:
            where.append(_model_clause(flt.model))
        if flt.outcome:
            where.append(audit.c.outcome == flt.outcome.value)
        if flt.kind:
            where.append(audit.c.kind == flt.kind.value)
        if flt.input_sha256:
            where.append(audit.c.input_sha256 == flt.input_sha256)
        # the limit is written into the SQL (literal_execute): bound as a parameter, SQLite plans for an
        # unknown limit and walks the whole table in seq order instead of using the filter's index
        query = (select(audit.c.body, audit.c.hash).where(and_(*where)).order_by(audit.c.seq)
                 .limit(int(limit)).execution_options(literal_execute=True))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [_record(*r) for r in rows]

    def iterate(self, flt: AuditFilter, *, chunk: int = 1000) -> Iterator[AuditRecord]:
        after = 0
        while True:
            rows = self.page(flt, after=after, limit=chunk)
            if not rows:
                return
            yield from rows
            after = rows[-1].seq

    def prune(self, cutoff: str) -> AuditRecord | None:
        """Remove every record older than ``cutoff`` (ISO UTC) except the newest, and append a ``retention``
        record saying what went and which hash the remaining chain continues from: one transaction."""
        with _holding_chain(self.engine) as conn:
            newest = conn.execute(select(func.max(audit.c.seq))).scalar() or 0
            row = conn.execute(select(audit.c.seq, audit.c.hash)
                               .where(audit.c.time < cutoff, audit.c.seq < newest)
                               .order_by(audit.c.seq.desc()).limit(1)).first()
            if row is None:
                return None
            through, anchor = int(row[0]), str(row[1])
            first = conn.execute(select(func.min(audit.c.seq))).scalar()
            removed = _delete_through(conn, through)
            return _append(conn, {
                "kind": AuditKind.retention, "outcome": AuditOutcome.pruned,
                "detail": f"records {first}..{through} older than {cutoff} removed by the retention policy",
                "extra": {"removed_from": first, "removed_through": through, "removed": removed,
                          "anchor_hash": anchor}})


def _append(conn: Connection, fields: dict[str, Any]) -> AuditRecord:
    """Chain one record onto the head, inside the caller's locked transaction."""
    seq, prev = _head(conn)
    body = {k: v for k, v in fields.items() if v is not None}
    body.setdefault("time", audit_time())
    body.update(seq=seq + 1, prev_hash=prev)
    record = AuditRecord(**body, hash="0" * 64)  # validates before anything is written
    content = canonical(record.model_dump(mode="json", exclude={"hash"}, exclude_none=True))
    digest = hashlib.sha256(content.encode("utf-8")).hexdigest()
    conn.execute(insert(audit).values(
        seq=record.seq, time=record.time, kind=record.kind.value, outcome=record.outcome.value,
        model=f"{record.model.name}@{record.model.version}" if record.model else None,
        input_sha256=record.input.sha256 if record.input else None, body=content, hash=digest))
    return record.model_copy(update={"hash": digest})


def _delete_through(conn: Connection, through: int) -> int:
    """Retention's one way past the append-only trigger, inside the caller's transaction."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL cxr.audit_retention = 'on'")
        return conn.execute(audit.delete().where(audit.c.seq <= through)).rowcount
    conn.exec_driver_sql("DROP TRIGGER audit_no_delete")
    removed = conn.execute(audit.delete().where(audit.c.seq <= through)).rowcount
    conn.exec_driver_sql(_NO_DELETE)
    return removed


def adopt_legacy(engine: Engine, path: Path) -> int:
    """Copy the chain of a server's own audit file (before the shared database) in once, byte for byte
    (each record's text and hash as written, so it verifies as before), then rename the file
    ``*.adopted``. Only into an empty trail: two chains cannot be joined, so a non-empty one leaves the
    file where it is (``cxr audit verify --db FILE`` still checks it) and says so."""
    if not path.is_file():
        return 0
    rows = legacy_rows(path, "audit", audit.c.keys())
    verdicts = legacy_rows(path, "feedback", feedback.c.keys())
    with _holding_chain(engine) as conn:
        if _head(conn)[0]:
            log.error("audit trail: %s holds %d records but the database's trail is not empty; left as it is "
                      "(check it with `cxr audit verify --db %s`)", path, len(rows), path)
            return 0
        if rows:
            conn.execute(insert(audit), rows)
        if verdicts:
            conn.execute(insert(feedback), verdicts)
    retire(path)
    log.info("audit trail: %d records and %d verdicts of %s copied into the database", len(rows), len(verdicts), path)
    return len(rows)


def _model_clause(model: str) -> ColumnElement[bool]:
    """A model given as name@version, or as a name (every version of it)."""
    prefix = model.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "@%"
    return (audit.c.model == model) | audit.c.model.like(prefix, escape="\\")
