"""A throwaway PostgreSQL server from Debian's packages (scripts/install_postgres.sh), on loopback, in a
temporary folder: what the database tests run against. As root it runs as the ``postgres`` user
(PostgreSQL refuses root)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.live_server import free_port


def server_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yields the URL of a fresh server's superuser database (``postgresql://cxr@127.0.0.1:PORT/cxr``)."""
    bindir = server_binaries()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL's server is not installed (scripts/install_postgres.sh installs Debian's "
                                "postgresql as root)")
    root = Path(tempfile.mkdtemp(prefix="cxr-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(root, pg.pw_uid, pg.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = root / "data"

    def run(*cmd: str | Path) -> None:
        subprocess.run([*as_user, *map(str, cmd)], check=True, capture_output=True, timeout=120)

    try:
        run(bindir / "initdb", "-D", data, "-A", "trust", "-U", "cxr", "-E", "UTF8", "--no-sync")
        run(bindir / "pg_ctl", "-D", data, "-l", root / "server.log", "-w", "-t", "60", "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off", "start")
        run(bindir / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "cxr", "cxr")
        yield f"postgresql://cxr@127.0.0.1:{port}/cxr"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(server_url: str) -> str:
    """A new empty database on the server: one per test, so tests share the server, never its data."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    """A server per test module (import this fixture where it is used); the module is skipped without one."""
    if server_binaries() is None:
        pytest.skip("PostgreSQL's server is not installed (scripts/install_postgres.sh installs Debian's postgresql "
                    "as root)")
    with postgres_server() as url:
        yield url


def migrated(url: str) -> str:
    """``url`` after `cxr db upgrade` (what an operator runs before PostgreSQL replicas start)."""
    from app.db.engine import make_engine
    from app.db.migrate import upgrade

    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url
