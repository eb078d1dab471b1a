"""Versioned SQL migrations: files named `NNNN_description.sql`, applied once each, in order.

Safe to run twice and concurrently: runs hold an advisory lock and record what they applied. After every run
the functions' database roles get their privileges again (grant_function_privileges, migration 0061), so that
tables created by migrations applied after that one are covered.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg

from feedcore.db.connection import connect
from feedcore.db.roles import LoginUser, ensure_login_user
from feedcore.errors import DatabaseUnavailable
from feedcore.observability import logger

# Any fixed 64-bit key; every migrator of this schema uses the same one.
MIGRATION_LOCK_KEY = 7_246_201_117
# The migrations ship inside the feedcore package (a link to infra/migrations), so the layer carries them.
PACKAGED_MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
# Grants each function's database role its privileges (migration 0061); idempotent.
GRANT_FUNCTION_PRIVILEGES = "grant_function_privileges()"
# Pause between connection attempts while the database (or a fresh RDS Proxy target) comes up.
CONNECT_RETRY_INTERVAL_S = 5.0


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path) -> list[Migration]:
    """The migrations in `directory`, sorted by version."""
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        version, _, name = path.stem.partition("_")
        if not version.isdigit():
            raise ValueError(f"migration file {path.name} must start with a version number")
        migrations.append(Migration(version=version, name=name, sql=path.read_text()))
    return migrations


def migrate(conn: psycopg.Connection, directory: Path) -> list[str]:
    """Apply the pending migrations on an autocommit connection; returns the versions applied."""
    applied_now: list[str] = []
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
    try:
        conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version     text PRIMARY KEY,
                name        text NOT NULL,
                checksum    text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        applied = {
            version: checksum for version, checksum in conn.execute("SELECT version, checksum FROM schema_migrations")
        }
        for migration in load_migrations(directory):
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise RuntimeError(
                        f"migration {migration.version} changed after it was applied; add a new one instead"
                    )
                continue
            with conn.transaction():
                conn.execute(migration.sql)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
            applied_now.append(migration.version)
        (grants,) = conn.execute("SELECT to_regprocedure(%s)", (GRANT_FUNCTION_PRIVILEGES,)).fetchone()
        if grants is not None:  # not in a database migrated only up to a version before 0061
            conn.execute(f"SELECT {GRANT_FUNCTION_PRIVILEGES}")
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied_now


def migrate_when_reachable(
    time_budget_ms: int, directory: Path = PACKAGED_MIGRATIONS, login_users: Sequence[LoginUser] = ()
) -> list[str]:
    """Apply the pending migrations through the service's own connection settings (RDS Proxy in the cloud),
    retrying the connection until `time_budget_ms` is spent; statements are bounded by the time left. Then
    create the functions' `login_users` (or set their passwords and roles again).
    Returns the versions applied; raises DatabaseUnavailable when the database never answered."""
    deadline = time.monotonic() + time_budget_ms / 1000
    while True:
        left_ms = int((deadline - time.monotonic()) * 1000)
        try:
            conn = connect(statement_timeout_ms=max(left_ms, 1000))
        except DatabaseUnavailable as exc:
            if left_ms < CONNECT_RETRY_INTERVAL_S * 1000:
                raise
            logger.warning("database not reachable yet; retrying", extra={"error": str(exc), "left_ms": left_ms})
            time.sleep(CONNECT_RETRY_INTERVAL_S)
            continue
        with conn:
            applied = migrate(conn, directory)
            for user in login_users:
                ensure_login_user(conn, user)
            return applied
