"""`cxr audit verify`: walk the chain and say where it breaks.

Read-only (a SQLite file is opened with ``mode=ro``, PostgreSQL in read-only transactions), so it can
run beside the servers. A record whose text
was changed no longer matches its hash; a removed record leaves a gap in ``seq``; a reordered or
replaced one no longer continues its predecessor's hash. Records removed by the retention policy
are expected: the ``retention`` record names the hash the remaining chain continues from.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import Connection, Engine, create_engine, func, inspect, select
from sqlalchemy.engine import URL, make_url

from app.audit.record import GENESIS
from app.db.engine import make_engine, redacted
from app.db.schema import audit


class ChainBreak(BaseModel):
    seq: int
    problem: str


class VerifyReport(BaseModel):
    ok: bool
    records: int
    first_seq: int | None
    last_seq: int | None
    head_hash: str | None
    breaks: list[ChainBreak]


def readonly_engine(db: str | URL) -> Engine:
    """An engine that cannot write: a SQLite file opened ``mode=ro``, a PostgreSQL session in read-only
    transactions. ``db``: a database URL or the path of a SQLite file (a server's audit.sqlite3 before
    the shared database, an ``*.adopted`` copy)."""
    url = make_url(db) if "://" in str(db) else URL.create("sqlite", database=str(db))
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        if not path.is_file():
            raise FileNotFoundError(f"no audit trail at {path}")
        return create_engine(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true")
    engine = make_engine(url)
    return engine.execution_options(postgresql_readonly=True)


def _anchor(conn: Connection, first_seq: int) -> str | None:
    """The hash the chain continues from when records 1..first_seq-1 were removed by retention."""
    if first_seq == 1:
        return GENESIS
    query = select(audit.c.body).where(audit.c.kind == "retention").order_by(audit.c.seq.desc())
    for (body,) in conn.execute(query):
        extra = json.loads(body).get("extra") or {}
        if extra.get("removed_through") == first_seq - 1:
            return str(extra.get("anchor_hash"))
    return None


def verify_chain(engine: Engine, *, max_breaks: int = 20) -> VerifyReport:
    """Walk the whole trail in seq order (streamed, a chunk at a time)."""
    if not inspect(engine).has_table("audit"):
        raise FileNotFoundError(f"no audit trail in {redacted(engine.url)}")
    with engine.connect() as conn:
        breaks: list[ChainBreak] = []
        count, first, prev_seq, head = 0, None, None, None
        lowest = conn.execute(select(func.min(audit.c.seq))).scalar()
        expected = None if lowest is None else _anchor(conn, int(lowest))
        query = select(audit.c.seq, audit.c.time, audit.c.kind, audit.c.outcome, audit.c.body, audit.c.hash
                       ).order_by(audit.c.seq)
        rows = conn.execution_options(yield_per=2000).execute(query)
        for seq, time_, kind, outcome, body, digest in rows:
            count += 1
            if first is None:
                first = seq
                if expected is None:
                    breaks.append(ChainBreak(seq=seq, problem=f"records 1..{seq - 1} are missing and no retention "
                                                              "record says they were removed"))
            elif seq != prev_seq + 1:
                breaks.append(ChainBreak(seq=seq, problem=f"records {prev_seq + 1}..{seq - 1} are missing"))
            try:
                fields = json.loads(body)
            except ValueError:
                fields = {}
            if hashlib.sha256(body.encode("utf-8")).hexdigest() != digest:
                breaks.append(ChainBreak(seq=seq, problem="the record was modified (its text does not match its hash)"))
            elif (fields.get("seq"), fields.get("time"), fields.get("kind"), fields.get("outcome")) != (
                    seq, time_, kind, outcome):
                breaks.append(ChainBreak(seq=seq, problem="the record's indexed columns were modified"))
            elif expected is not None and fields.get("prev_hash") != expected:
                breaks.append(ChainBreak(seq=seq, problem="the record does not continue the chain (a record before "
                                                          "it was removed, replaced or reordered)"))
            prev_seq, expected, head = seq, digest, digest
            if len(breaks) >= max_breaks:
                break
        rows.close()
    return VerifyReport(ok=not breaks, records=count, first_seq=first, last_seq=prev_seq, head_hash=head,
                        breaks=breaks)
