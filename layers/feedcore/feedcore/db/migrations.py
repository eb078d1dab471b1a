"""Versioned SQL migrations: files named `NNNN_description.sql`, applied once each, in order.

Safe to run twice and concurrently: runs hold an advisory lock and record what they applied. After every run
the functions' database roles get their privileges again (grant_function_privileges, migration 0061), so that
tables created by migrations applied after that one are covered.

A run with a deadline (the custom resource's, before Lambda ends it) bounds each migration, and the grants and
login users after them, by the time left when it starts, and starts none with less than MIN_TIME_TO_START_MS
left: it stops with MigrationRunStopped naming the step instead; the migrations before it stay applied, and the
next run resumes with it. Nor does it retry connecting to a database not reachable yet when less would be left
after the pause and the retried attempt: it stops with DatabaseUnavailable, having applied nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg

from feedcore.db.connection import (
    UNCONFIRMED_GRACE_S,
    BoundedConnection,
    bound_transaction,
    connect,
    wait_for_lock,
)
from feedcore.db.roles import LoginUser, ensure_login_user, ensure_probe_user
from feedcore.errors import DatabaseUnavailable, LockWaitTimedOut
from feedcore.observability import logger
from feedcore.settings import database_settings

# Any fixed 64-bit key; every migrator of this schema uses the same one.
MIGRATION_LOCK_KEY = 7_246_201_117
# The migrations ship inside the feedcore package (a link to infra/migrations), so the layer carries them.
PACKAGED_MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
# Grants each function's database role its privileges (migration 0061); idempotent.
GRANT_FUNCTION_PRIVILEGES = "grant_function_privileges()"
# Pause between connection attempts while the database comes up (a new instance, one restarting or failing over).
CONNECT_RETRY_INTERVAL_S = 5.0
# A migration (or the grants and login users after them, or a retried connection) is not started with less time
# than this left.
MIN_TIME_TO_START_MS = 1_000
# How long ending the session of a migration the client gave up on may take (within the custom resource's margin
# for answering).
END_SESSION_TIMEOUT_MS = 5_000


class MigrationRunStopped(Exception):
    """A run stopped at a step it did not do (a migration, the grants, a login user): too little time was left to
    start it, or it failed and was rolled back. What the run applied before it stays applied."""


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


def migrate(conn: psycopg.Connection, directory: Path, deadline: float | None = None) -> list[str]:
    """Apply the pending migrations on an autocommit connection; returns the versions applied. With a `deadline`
    (`time.monotonic()`), each migration, and the grants after them, is bounded by the time left when it starts.
    Raises MigrationRunStopped naming the step that failed or that there was too little time to start."""
    applied_now: list[str] = []
    try:
        wait_for_lock(conn, "SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
    except LockWaitTimedOut as exc:
        raise MigrationRunStopped(
            f"stopped before any migration: another migration run holds the lock ({exc})"
        ) from exc
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
            with step_by_deadline(conn, deadline, f"migration {migration.version}_{migration.name}"):
                conn.execute(migration.sql)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
            applied_now.append(migration.version)
        (grants,) = conn.execute("SELECT to_regprocedure(%s)", (GRANT_FUNCTION_PRIVILEGES,)).fetchone()
        # Also with nothing pending: a run that stopped before them (too little time left) left its migrations'
        # tables without the functions' privileges, and nothing records that.
        if grants is not None:  # not in a database migrated only up to a version before 0061
            with step_by_deadline(conn, deadline, "the grants of the functions' privileges"):
                conn.execute(f"SELECT {GRANT_FUNCTION_PRIVILEGES}")
    finally:
        # Else (closed by the client's bound, or no answer now) the server releases the lock with the session.
        with suppress(psycopg.Error):
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied_now


@contextmanager
def step_by_deadline(conn: psycopg.Connection, deadline: float | None, step: str) -> Iterator[None]:
    """A transaction that does `step`, bounded by `deadline` (unbounded without one): each statement by the time
    left when the step starts, and the client's waits for answers by the deadline itself. Raises
    MigrationRunStopped naming `step` when less than MIN_TIME_TO_START_MS is left, or when the step fails (then
    it is rolled back). A step the client gave up on (the server may still run the rest of a file of several
    statements, each under its own timeout, holding its locks) has its server session ended."""
    backend_pid = None
    try:
        with conn.transaction():
            if deadline is not None:
                left_ms = int((deadline - time.monotonic()) * 1000)
                if left_ms < MIN_TIME_TO_START_MS:
                    raise MigrationRunStopped(
                        f"stopped before {step}: {max(left_ms, 0)} ms left of the time budget, less than the "
                        f"{MIN_TIME_TO_START_MS} ms a step needs to start; it is not applied (what was applied "
                        "before it stays), the next run resumes with it"
                    )
                bound_transaction(conn, left_ms)
                (backend_pid,) = conn.execute("SELECT pg_backend_pid()").fetchone()
                if isinstance(conn, BoundedConnection):
                    conn.answer_by = deadline + UNCONFIRMED_GRACE_S
            yield
    except psycopg.Error as exc:
        if conn.closed and backend_pid is not None:
            _end_session(backend_pid)
        raise MigrationRunStopped(f"stopped at {step}, rolled back and not applied: {exc}") from exc
    finally:
        if isinstance(conn, BoundedConnection):
            conn.answer_by = None


def _end_session(backend_pid: int) -> None:
    """End the server session of a connection the client gave up on (its transaction rolls back, its locks go),
    from a connection of its own; logged, not raised, when that fails too."""
    try:
        with connect(statement_timeout_ms=END_SESSION_TIMEOUT_MS) as conn:
            conn.execute("SELECT pg_terminate_backend(%s, %s)", (backend_pid, END_SESSION_TIMEOUT_MS))
    except (DatabaseUnavailable, psycopg.Error) as exc:
        logger.warning("cannot end the migration's server session", extra={"pid": backend_pid, "error": str(exc)})


def migrate_when_reachable(
    time_budget_ms: int,
    directory: Path = PACKAGED_MIGRATIONS,
    login_users: Sequence[LoginUser] = (),
    probe_user: str | None = None,
) -> list[str]:
    """Apply the pending migrations through the service's own connection settings (in the stack, the instance
    itself as its master user: DB_HOST and the secret DB_SECRET_ARN), retrying the connection every
    CONNECT_RETRY_INTERVAL_S within `time_budget_ms`; each migration is bounded by the time left when it starts.
    Then create the functions' `login_users` and the proxy's `probe_user` (or give them their roles again), all or
    none.
    A connection is retried only when MIN_TIME_TO_START_MS will be left after the pause and the retried attempt (up to
    DB_CONNECT_TIMEOUT_S): one made later could start none of the run's steps, not even the grants and login users a
    run with nothing pending still does.
    Returns the versions applied; raises DatabaseUnavailable when the database did not answer in time, and
    MigrationRunStopped when a step failed or there was too little time left to start one."""
    deadline = time.monotonic() + time_budget_ms / 1000
    while True:
        left_ms = int((deadline - time.monotonic()) * 1000)
        try:
            conn = connect(statement_timeout_ms=max(left_ms, 1000))
        except DatabaseUnavailable as exc:
            left_ms = int((deadline - time.monotonic()) * 1000)  # the attempt itself may have taken seconds
            attempt_s = database_settings().db_connect_timeout_s  # what the retried attempt may take
            if left_ms - (CONNECT_RETRY_INTERVAL_S + attempt_s) * 1000 < MIN_TIME_TO_START_MS:
                raise DatabaseUnavailable(
                    f"{exc}; not retried: {max(left_ms, 0)} ms left of the time budget, less than the "
                    f"{CONNECT_RETRY_INTERVAL_S:g} s pause before a retry, the {attempt_s} s the attempt may take and "
                    f"the {MIN_TIME_TO_START_MS} ms a step needs to start; nothing was applied"
                ) from exc
            logger.warning("database not reachable yet; retrying", extra={"error": str(exc), "left_ms": left_ms})
            time.sleep(CONNECT_RETRY_INTERVAL_S)
            continue
        with conn:
            applied = migrate(conn, directory, deadline)
            if login_users or probe_user:
                # All or none: a user given rds_iam has lost its password login, so a run that stopped after some
                # would leave those users to a proxy still logging in with passwords (a stack from before).
                names = ", ".join([user.username for user in login_users] + ([probe_user] if probe_user else []))
                with step_by_deadline(conn, deadline, f"the login users ({names})"):
                    for user in login_users:
                        ensure_login_user(conn, user)
                    if probe_user:
                        ensure_probe_user(conn, probe_user)
            return applied
