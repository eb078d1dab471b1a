"""The functions' login users: one per Lambda function, member of its function's group role (migration 0061).

In the stack each user's password is a generated Secrets Manager secret in the RDS JSON format, which RDS
Proxy reads to log in as the user on behalf of the function (the function itself presents an IAM token). The
schema custom resource creates the users, or sets their passwords again, from those secrets on every
deploy. The password reaches the database only as a SCRAM-SHA-256 verifier, so it is never in a statement
the server could log (libpq computes it, as psql's \\password does).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from feedcore.db.connection import json_secret
from feedcore.errors import ConfigurationError

# The group roles of migration 0061, the only roles a login user may be given.
FUNCTION_ROLES = frozenset(
    {"feed_ingest_queue", "feed_ingest_events", "feed_assemble_feed", "feed_recompute_shards", "feed_recompute_scores"}
)


@dataclass(frozen=True)
class LoginUser:
    """A function's database user, its password and the group role it is given."""

    username: str
    password: str
    role: str


def ensure_login_user(conn: psycopg.Connection, user: LoginUser) -> None:
    """Create the login user with its password and group role, or give an existing one its password and
    role again (one transaction). Raises ConfigurationError for a role that is not a function's."""
    if user.role not in FUNCTION_ROLES:
        raise ConfigurationError(f"{user.role!r} is not a function's database role")
    name = sql.Identifier(user.username)
    # libpq's PQencryptPasswordConn: the verifier the server would make (SCRAM-SHA-256, a random salt)
    password = conn.pgconn.encrypt_password(user.password.encode(), user.username.encode(), b"scram-sha-256")
    verifier = sql.Literal(password.decode())
    with conn.transaction():
        row = conn.execute(
            "SELECT rolsuper OR rolcreaterole OR rolname = current_user FROM pg_roles WHERE rolname = %s",
            (user.username,),
        ).fetchone()
        if row is not None and row[0]:
            raise ConfigurationError(f"{user.username!r} administers the database; it cannot be a function's user")
        exists = row is not None
        action = "ALTER ROLE {} WITH LOGIN PASSWORD {}" if exists else "CREATE ROLE {} WITH LOGIN PASSWORD {}"
        conn.execute(sql.SQL(action).format(name, verifier))
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(user.role), name))


def login_user_from_secret(secret_arn: str, role: str) -> LoginUser:
    """The login user whose `username` and `password` the Secrets Manager secret holds (RDS JSON format)."""
    secret = json_secret(secret_arn, "a login user's secret", max_age_s=0)
    try:
        return LoginUser(username=secret["username"], password=secret["password"], role=role)
    except KeyError as exc:
        raise ConfigurationError(f"a login user's secret lacks {exc.args[0]!r}") from exc
