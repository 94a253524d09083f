"""The shared database: SQLAlchemy Core tables, one engine per URL, Alembic migrations.

SQLite in CXR_STATE_DIR by default (one machine, nothing to run); PostgreSQL when
CXR_DATABASE_URL names one (replicas). Stores build their statements on ``schema``'s tables,
so the same code runs on both."""
