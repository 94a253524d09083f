"""`cxr audit verify`: walk the chain and say where it breaks.

Read-only (the file is opened with ``mode=ro``), so it can run beside the server. A record whose text
was changed no longer matches its hash; a removed record leaves a gap in ``seq``; a reordered or
replaced one no longer continues its predecessor's hash. Records removed by the retention policy
are expected: the ``retention`` record names the hash the remaining chain continues from.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from pydantic import BaseModel

from app.audit.record import GENESIS


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


def _anchor(db: sqlite3.Connection, first_seq: int) -> str | None:
    """The hash the chain continues from when records 1..first_seq-1 were removed by retention."""
    if first_seq == 1:
        return GENESIS
    for (body,) in db.execute("SELECT body FROM audit WHERE kind = 'retention' ORDER BY seq DESC"):
        extra = json.loads(body).get("extra") or {}
        if extra.get("removed_through") == first_seq - 1:
            return str(extra.get("anchor_hash"))
    return None


def verify_chain(path: Path, *, max_breaks: int = 20) -> VerifyReport:
    if not Path(path).is_file():
        raise FileNotFoundError(f"no audit trail at {path}")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        breaks: list[ChainBreak] = []
        count, first, prev_seq, expected, head = 0, None, None, None, None
        rows = db.execute("SELECT seq, time, kind, outcome, body, hash FROM audit ORDER BY seq")
        for seq, time_, kind, outcome, body, digest in rows:
            count += 1
            if first is None:
                first, expected = seq, _anchor(db, seq)
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
        return VerifyReport(ok=not breaks, records=count, first_seq=first, last_seq=prev_seq, head_hash=head,
                            breaks=breaks)
    finally:
        db.close()
