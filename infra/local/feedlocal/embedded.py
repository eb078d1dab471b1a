"""The local database: the server named by DATABASE_URL, or else an embedded PostgreSQL (pgserver wheel).

The embedded server keeps its data under `.feedctl/pgdata` and keeps running between commands, so
`feedctl seed`, `feedctl serve` and `feedctl recompute` share it; `feedctl db stop` stops it.
"""

from __future__ import annotations

import os
import signal
import time
import warnings
from pathlib import Path
from typing import Literal

import psycopg

from feedcore.db.migrations import migrate

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
STATE_DIR = Path(os.environ.get("FEEDCTL_HOME", ".feedctl"))


def embedded_server(pgdata: Path, *, on_exit: Literal["keep", "stop", "delete"] = "keep"):
    """Start (or reuse) an embedded PostgreSQL in `pgdata`; returns the pgserver handle.

    `on_exit` says what happens when the handle is cleaned up: keep it running, stop it, or stop it and
    delete its data."""
    pgdata.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (root, CI); pgserver then uses /tmp, which is fine.
        warnings.simplefilter("ignore")
        import pgserver

        return pgserver.get_server(pgdata, cleanup_mode=None if on_exit == "keep" else on_exit)


def ensure_database_url() -> str:
    """DATABASE_URL when set; otherwise start the embedded server and export its URL for feedcore."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        url = embedded_server(STATE_DIR / "pgdata").get_uri()
        os.environ["DATABASE_URL"] = url
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
