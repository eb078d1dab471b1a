"""One database connection per container (per thread locally): made on first use, replaced when broken.

Connections are made with `prepare_threshold=None` and no session state so they work through RDS Proxy.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import make_conninfo

from feedcore.errors import DatabaseUnavailable
from feedcore.observability import logger
from feedcore.settings import DatabaseSettings, database_settings

_cache = threading.local()


def connection_url(settings: DatabaseSettings) -> str:
    """The libpq URL from DATABASE_URL, or else from the Secrets Manager secret named by DB_SECRET_ARN."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    if settings.db_secret_arn:
        from aws_lambda_powertools.utilities import parameters

        secret = parameters.get_secret(settings.db_secret_arn, transform="json", max_age=300)
        return make_conninfo(
            host=secret["host"],
            port=str(secret.get("port", 5432)),
            user=secret["username"],
            password=secret["password"],
            dbname=secret.get("dbname", "postgres"),
            sslmode="require",
        )
    raise DatabaseUnavailable("no database configured: set DATABASE_URL or DB_SECRET_ARN")


def connect(settings: DatabaseSettings | None = None, *, statement_timeout_ms: int | None = None) -> psycopg.Connection:
    """A new autocommit connection; callers open transactions explicitly."""
    settings = settings or database_settings()
    timeout = statement_timeout_ms or settings.db_statement_timeout_ms
    try:
        return psycopg.connect(
            connection_url(settings),
            autocommit=True,
            prepare_threshold=None,
            connect_timeout=settings.db_connect_timeout_s,
            options=f"-c statement_timeout={timeout}",
            application_name="feed-assembly",
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {exc}") from exc


def cached_connection() -> psycopg.Connection:
    """The container's connection, reconnecting when the previous one was closed or broken."""
    conn: psycopg.Connection | None = getattr(_cache, "connection", None)
    if conn is None or conn.closed or conn.broken:
        if conn is not None:
            logger.warning("database connection lost; reconnecting")
        conn = connect()
        _cache.connection = conn
    return conn


def reset_cached_connection() -> None:
    """Close and forget this thread's connection (tests, settings changes)."""
    conn: psycopg.Connection | None = getattr(_cache, "connection", None)
    if conn is not None:
        conn.close()
    _cache.connection = None


@contextmanager
def transaction() -> Iterator[psycopg.Connection]:
    """A transaction on the cached connection; connection loss and timeouts become DatabaseUnavailable."""
    conn = cached_connection()
    try:
        with conn.transaction():
            yield conn
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"database error: {exc}") from exc
