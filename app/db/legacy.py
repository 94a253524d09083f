"""What a server kept in its own SQLite files before the shared database (dicom/results.sqlite3,
audit.sqlite3): read once, copied in by the store that owns the table, then the file is renamed aside."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def legacy_rows(path: Path, table: str, columns: Iterable[str]) -> list[dict[str, Any]]:
    """The rows of ``table`` in the file at ``path`` (none when it has no such table), each cut to ``columns``.
    Not opened read-only: closing it folds a WAL left beside it back into the file before ``retire``."""
    keep = set(columns)
    src = sqlite3.connect(path)
    src.row_factory = sqlite3.Row
    try:
        if src.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() is None:
            return []
        return [{k: r[k] for k in r.keys() if k in keep} for r in src.execute(f'SELECT * FROM "{table}"')]
    finally:
        src.close()


def retire(path: Path) -> None:
    """Rename the file ``*.adopted``: copied in, kept for reference, never read again."""
    path.rename(path.with_name(path.name + ".adopted"))
