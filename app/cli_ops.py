"""`cxr worker`, `cxr db` and `cxr audit verify`: the commands of a deployment with a shared database
(lazy imports, like the rest of the CLI)."""

from __future__ import annotations

import argparse
import json
import sys


def cmd_worker(args: argparse.Namespace) -> int:
    import asyncio

    from app.core.config import Settings
    from app.training.standalone import run_worker

    return asyncio.run(run_worker(Settings()))


def cmd_db(args: argparse.Namespace) -> int:
    from app.core.config import Settings
    from app.db.engine import database_url, make_engine, redacted
    from app.db.migrate import current, head, upgrade

    from alembic.util.exc import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    engine = make_engine(database_url(Settings()))
    try:
        before = current(engine)
        after = upgrade(engine) if args.action == "upgrade" else before
    except (SQLAlchemyError, CommandError) as exc:  # unreachable, refused, or a schema newer than this release
        print(f"cxr db: error: {redacted(engine.url)}: {str(getattr(exc, 'orig', None) or exc).strip()}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(json.dumps({"database": redacted(engine.url), "revision": after, "before": before, "head": head()}))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from app.audit.store import LEGACY_FILE
    from app.audit.verify import readonly_engine, verify_chain
    from app.core.config import Settings
    from app.db.engine import database_url, redacted

    from sqlalchemy.exc import SQLAlchemyError

    settings = Settings()
    legacy = settings.state_dir / LEGACY_FILE
    target = args.db or (str(legacy) if legacy.is_file() else database_url(settings))  # not yet copied in: the file
    shown = redacted(target) if "://" in str(target) else str(target)
    try:
        engine = readonly_engine(target)
        try:
            report = verify_chain(engine)
        finally:
            engine.dispose()
    except FileNotFoundError as exc:
        print(f"cxr audit: error: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip()
        print(f"cxr audit: error: cannot read {shown}: {reason}", file=sys.stderr)
        return 2
    print(report.model_dump_json())
    return 0 if report.ok else 1
