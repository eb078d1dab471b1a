"""The local database: the server named by DATABASE_URL, or else an embedded PostgreSQL (pgserver wheel).

The embedded server keeps its data under `.feedctl/pgdata` and keeps running between commands, so
`feedctl seed`, `feedctl serve` and `feedctl recompute` share it; `feedctl db stop` stops it.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg

from feedcore.db.migrations import migrate

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
STATE_DIR = Path(os.environ.get("FEEDCTL_HOME", ".feedctl"))


def embedded_server(pgdata: Path, *, keep_running: bool = True):
    """Start (or reuse) an embedded PostgreSQL in `pgdata`; returns the pgserver handle."""
    import pgserver

    pgdata.mkdir(parents=True, exist_ok=True)
    return pgserver.get_server(pgdata, cleanup_mode=None if keep_running else "delete")


def ensure_database_url() -> str:
    """DATABASE_URL when set; otherwise start the embedded server and export its URL for feedcore."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        url = embedded_server(STATE_DIR / "pgdata").get_uri()
        os.environ["DATABASE_URL"] = url
    return url


def stop_embedded_server() -> bool:
    """Stop the embedded server if it runs; True when one was stopped."""
    pgdata = STATE_DIR / "pgdata"
    if not (pgdata / "postmaster.pid").exists():
        return False
    import pgserver

    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    server.cleanup()
    return True


def migrate_database(url: str) -> list[str]:
    """Apply pending migrations from infra/migrations; returns the versions applied."""
    with psycopg.connect(url, autocommit=True) as conn:
        return migrate(conn, MIGRATIONS_DIR)
