"""The schema's version: ``cxr db upgrade`` applies the migrations; every process checks before it uses
the database. A schema newer than this code (written by a newer release) is never touched: the
process refuses to start and says so. An older one is upgraded at start only on SQLite (one machine,
nothing else uses the file); on PostgreSQL that is the operator's step (`cxr db upgrade`, the
Kubernetes migration Job), so that replicas starting together never race to migrate."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from app.core.errors import ConfigurationError
from app.db.engine import redacted

MIGRATIONS = Path(__file__).with_name("migrations")


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    """The migration scripts, read once per process (every store checks the schema when it opens)."""
    return ScriptDirectory.from_config(_config())


def head() -> str:
    return _scripts().get_current_head() or ""


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return current(engine)


def ensure_schema(engine: Engine) -> str:
    """The schema at this code's head, or ConfigurationError saying why not and what to do."""
    rev = current(engine)
    known = {s.revision for s in _scripts().walk_revisions()}
    where = redacted(engine.url)
    if rev is not None and rev not in known:
        raise ConfigurationError(f"the database {where} has schema revision {rev!r}, newer than this release knows "
                                 f"(head {head()!r}): it was written by a newer cxr; run that release, or restore a "
                                 "backup taken before the upgrade")
    if rev == head():
        return rev
    if engine.url.get_backend_name() == "sqlite":
        return upgrade(engine) or ""
    raise ConfigurationError(f"the database {where} is at schema revision {rev or 'none'!r}, this release needs "
                             f"{head()!r}: run `cxr db upgrade` (once, before the replicas start)")
