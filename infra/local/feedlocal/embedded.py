"""The local database: the server named by DATABASE_URL, or else an embedded PostgreSQL (pgserver wheel).

The embedded server keeps its data under `.feedctl/pgdata` and keeps running between commands, so
`feedctl seed`, `feedctl serve` and `feedctl recompute` share it; `feedctl db stop` stops it.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from feedcore import settings
from feedcore.db.connection import reset_cached_connection
from feedcore.db.events import forget_known_partitions
from feedcore.db.migrations import PACKAGED_MIGRATIONS, migrate
from feedcore.feed.service import forget_store_shelves
from feedcore.ingestion.service import catalog_items

# infra/migrations, through the link that ships them in the layer.
MIGRATIONS_DIR = PACKAGED_MIGRATIONS
STATE_DIR = Path(os.environ.get("FEEDCTL_HOME", ".feedctl"))


# The stack's default instance class (db.t4g.medium, 4 GiB) gets a quarter of its memory as shared_buffers from RDS's
# default parameter group (DBInstanceClassMemory/32768 pages of 8 kB); PostgreSQL's own default is 128 MB. The WAL
# settings are the stack's parameter group's (template.yaml, DatabaseParameterGroup: wal_writer_delay 10 ms,
# wal_buffers 8192 pages of 8 kB). The embedded server is made alike, so that local runs and the benchmarks see the
# cache and the WAL writer the deployed database has (README, "Measured": the recompute bench).
SERVER_SETTINGS = {"shared_buffers": "1GB", "wal_writer_delay": "10ms", "wal_buffers": "64MB"}


def embedded_server(pgdata: Path, *, on_exit: Literal["keep", "stop", "delete"] = "keep"):
    """Start (or reuse) an embedded PostgreSQL in `pgdata`; returns the pgserver handle. A new one is made with
    SERVER_SETTINGS (started, set and stopped first: they take effect at a start).

    `on_exit` says what happens when the handle is cleaned up: keep it running, stop it, or stop it and
    delete its data."""
    pgdata.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (root, CI); pgserver then uses /tmp, which is fine.
        warnings.simplefilter("ignore")
        import pgserver

        if not (pgdata / "PG_VERSION").exists():
            with (
                pgserver.get_server(pgdata, cleanup_mode="stop") as server,
                psycopg.connect(server.get_uri(), autocommit=True) as conn,
            ):
                for name, value in SERVER_SETTINGS.items():
                    conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        return pgserver.get_server(pgdata, cleanup_mode=None if on_exit == "keep" else on_exit)


def ensure_database_url() -> str:
    """DATABASE_URL when set; otherwise start the embedded server and export its URL for feedcore."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        url = embedded_server(STATE_DIR / "pgdata").get_uri()
        os.environ["DATABASE_URL"] = url
    return url


def ensure_usable_database() -> str:
    """DATABASE_URL when set, left as it is (a deployed database is migrated by its stack, never from an operator's
    checkout); otherwise the embedded server's database, migrated."""
    if url := os.environ.get("DATABASE_URL"):
        return url
    url = ensure_database_url()
    migrate_database(url)
    return url


def stop_embedded_server(timeout_s: float = 15.0) -> bool:
    """Stop the embedded server if it runs (a fast shutdown, data kept); True when one was stopped."""
    pid_file = STATE_DIR / "pgdata" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
    except (FileNotFoundError, IndexError, ValueError, ProcessLookupError):
        return False
    deadline = time.monotonic() + timeout_s
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return True


def migrate_database(url: str) -> list[str]:
    """Apply pending migrations from infra/migrations; returns the versions applied."""
    with psycopg.connect(url, autocommit=True) as conn:
        return migrate(conn, MIGRATIONS_DIR)


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A migrated, empty database on feedctl's server for one benchmark or evaluation run; feedcore points
    at it until the run ends, when it is dropped."""
    server_url = ensure_database_url()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin_url = make_conninfo(server_url, dbname="postgres")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with _migrated_and_pointed_at(make_conninfo(server_url, dbname=name)) as url:
            yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def kept_database(name: str, label: str) -> Iterator[tuple[str, bool]]:
    """A migrated database `name` on feedctl's server that outlives the run, for data too slow to load each
    time. Yields its URL and whether it is reused: it is when it exists and carries `label`; otherwise it is
    created afresh, and labelled when the caller's block ends without an error."""
    server_url = ensure_database_url()
    admin_url = make_conninfo(server_url, dbname="postgres")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        reused = row is not None and row[0] == label
        if not reused:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with _migrated_and_pointed_at(make_conninfo(server_url, dbname=name)) as url:
        yield url, reused
    if not reused:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(label)))


@contextmanager
def _migrated_and_pointed_at(url: str) -> Iterator[str]:
    """Apply pending migrations to `url` and point feedcore at it until the block ends."""
    previous = os.environ.get("DATABASE_URL")
    try:
        migrate_database(url)
        point_feedcore_at(url)
        yield url
    finally:
        reset_cached_connection()
        if previous is not None:
            point_feedcore_at(previous)


def point_feedcore_at(url: str) -> None:
    """Make feedcore use `url` from now on (its settings, connection, known event partitions and what it knows
    of the catalog are cached per process)."""
    os.environ["DATABASE_URL"] = url
    settings.database_settings.cache_clear()
    reset_cached_connection()
    forget_known_partitions()
    forget_store_shelves()
    catalog_items.clear()
