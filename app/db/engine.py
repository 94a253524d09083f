"""One engine per database URL: SQLite (the default, a file in CXR_STATE_DIR) or PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

from app.core.config import Settings

DEFAULT_FILE = "jobs.sqlite3"  # the job table's file before there was a URL: existing installs keep it


def database_url(settings: Settings) -> URL:
    """CXR_DATABASE_URL, else SQLite in CXR_STATE_DIR."""
    if settings.database_url is None:
        return URL.create("sqlite", database=str(Path(settings.state_dir) / DEFAULT_FILE))
    return make_url(settings.database_url.get_secret_value())


def make_engine(url: URL | str) -> Engine:
    url = make_url(url)
    if url.drivername in ("postgresql", "postgres"):  # plain postgresql:// is served by psycopg 3
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite":
        if url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _wal(dbapi_connection: sqlite3.Connection, _record: object) -> None:  # readers never block the writer
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def redacted(url: URL | str) -> str:
    """The URL as logs and errors may show it: no password."""
    return make_url(url).render_as_string(hide_password=True)
