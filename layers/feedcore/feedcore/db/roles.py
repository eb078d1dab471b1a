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
    name = sql.Identifier(user.username)
    with conn.transaction():
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (IAM_LOGIN_ROLE,)).fetchone() is None:
            raise ConfigurationError(f"the server has no {IAM_LOGIN_ROLE!r} role: IAM logins need RDS for PostgreSQL")
        row = conn.execute(
            "SELECT rolsuper OR rolcreaterole OR rolname = current_user FROM pg_roles WHERE rolname = %s",
            (user.username,),
        ).fetchone()
        if row is not None and row[0]:
            raise ConfigurationError(f"{user.username!r} administers the database; it cannot be a function's user")
        action = "ALTER ROLE {} WITH LOGIN PASSWORD NULL" if row is not None else "CREATE ROLE {} WITH LOGIN"
        conn.execute(sql.SQL(action).format(name))
        conn.execute(
            sql.SQL("GRANT {}, {} TO {}").format(sql.Identifier(IAM_LOGIN_ROLE), sql.Identifier(user.role), name)
        )
