"""The functions' login users: one per Lambda function, member of its function's group role (migration 0061).

In the stack each user logs in with IAM alone, end to end: the function presents RDS Proxy an IAM token signed
for the user, and the proxy logs in to the database with a token of its own role (its `DefaultAuthScheme` is
`IAM_AUTH`). So a user has no password, and is a member of `rds_iam`, RDS's role that makes the server accept
such tokens for it (and nothing else: a member of `rds_iam` cannot log in with a password). The schema custom
resource creates the users, or gives them this again, on every deploy; a user made by a stack from before keeps
no password.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from feedcore.errors import ConfigurationError

# The group roles of migration 0061, the only roles a login user may be given.
FUNCTION_ROLES = frozenset(
    {"feed_ingest_queue", "feed_ingest_events", "feed_assemble_feed", "feed_recompute_shards", "feed_recompute_scores"}
)
# RDS for PostgreSQL's role whose members log in with IAM tokens (RDS creates it; a plain PostgreSQL has none).
IAM_LOGIN_ROLE = "rds_iam"


@dataclass(frozen=True)
class LoginUser:
    """A function's database user and the group role it is given."""

    username: str
    role: str


def ensure_login_user(conn: psycopg.Connection, user: LoginUser) -> None:
    """Create the login user, without a password, member of `rds_iam` and of its group role; or give an existing
    one the same again, dropping a password it had (one transaction). Raises ConfigurationError for a role that
    is not a function's, for a user that administers the database, and on a server without `rds_iam` (not RDS)."""
    if user.role not in FUNCTION_ROLES:
        raise ConfigurationError(f"{user.role!r} is not a function's database role")
    with conn.transaction():
        _ensure_iam_login(conn, user.username, "a function's user")
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(user.role), sql.Identifier(user.username)))


def ensure_probe_user(conn: psycopg.Connection, username: str) -> None:
    """Create the user the schema resource logs in as through RDS Proxy to check the functions' way in
    (feedcore.db.proxy_probe): without a password, member of `rds_iam`, with CONNECT on this database and no other
    privilege (no group role: it reads no table); or give an existing one the same again (one transaction). Raises
    ConfigurationError as ensure_login_user does."""
    with conn.transaction():
        _ensure_iam_login(conn, username, "the proxy's probe user")
        (database,) = conn.execute("SELECT current_database()").fetchone()
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), sql.Identifier(username))
        )


def _ensure_iam_login(conn: psycopg.Connection, username: str, what: str) -> None:
    """Create `username` as a login without a password, member of `rds_iam`, or make an existing one so (dropping a
    password it had), in the caller's transaction; `what` names it in errors."""
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (IAM_LOGIN_ROLE,)).fetchone() is None:
        raise ConfigurationError(f"the server has no {IAM_LOGIN_ROLE!r} role: IAM logins need RDS for PostgreSQL")
    row = conn.execute(
        "SELECT rolsuper OR rolcreaterole OR rolname = current_user FROM pg_roles WHERE rolname = %s", (username,)
    ).fetchone()
    if row is not None and row[0]:
        raise ConfigurationError(f"{username!r} administers the database; it cannot be {what}")
    name = sql.Identifier(username)
    action = "ALTER ROLE {} WITH LOGIN PASSWORD NULL" if row is not None else "CREATE ROLE {} WITH LOGIN"
    conn.execute(sql.SQL(action).format(name))
    conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(IAM_LOGIN_ROLE), name))
