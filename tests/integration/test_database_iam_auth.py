"""In the stack the handlers log in to RDS Proxy with an IAM token signed by their role (DB_IAM_AUTH).

The embedded test server listens on a Unix socket only, which an IAM token cannot name, so these tests check
the connection string the handlers build from the template's settings rather than a login: the password is
an rds-db:connect token for the proxy's host, port and user, and TLS is required.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from urllib.parse import parse_qs, urlsplit

import pytest
from moto import mock_aws
from psycopg.conninfo import conninfo_to_dict
from pydantic import ValidationError

from feedcore import settings
from feedcore.db import connection
from feedcore.errors import DatabaseUnavailable
from tests.conftest import SILENCE_AT_MOST_S, silent_backend

PROXY = "feed-db.proxy-c1abcdefgh2i.us-east-1.rds.amazonaws.com"


@pytest.fixture
def iam_auth(monkeypatch: pytest.MonkeyPatch):
    """The environment template.yaml gives the functions; DATABASE_URL unset."""
    with mock_aws():  # fake credentials to sign with
        monkeypatch.delenv("DATABASE_URL", raising=False)
        monkeypatch.setenv("DB_IAM_AUTH", "true")
        monkeypatch.setenv("DB_HOST", PROXY)
        monkeypatch.setenv("DB_PORT", "5432")
        monkeypatch.setenv("DB_NAME", "feed")
        monkeypatch.setenv("DB_USER", "feed_owner")
        monkeypatch.setenv("DB_CONNECT_TIMEOUT_S", "1")
        settings.database_settings.cache_clear()
        connection._rds_client.cache_clear()
        yield settings.database_settings()
    settings.database_settings.cache_clear()
    connection._rds_client.cache_clear()


def test_the_password_is_a_token_for_the_proxy_user_over_tls(iam_auth: settings.DatabaseSettings) -> None:
    url = conninfo_to_dict(connection.connection_url(iam_auth))

    assert (url["host"], url["port"], url["dbname"], url["user"]) == (PROXY, "5432", "feed", "feed_owner")
    assert url["sslmode"] == "require"
    token = urlsplit("https://" + url["password"])
    query = parse_qs(token.query)
    assert token.netloc == f"{PROXY}:5432"
    assert query["Action"] == ["connect"] and query["DBUser"] == ["feed_owner"]
    assert query["X-Amz-Expires"] == ["900"] and query["X-Amz-Signature"]


def test_no_startup_options_go_to_the_proxy(iam_auth: settings.DatabaseSettings, database_url: str) -> None:
    # RDS Proxy answers "Feature not supported: RDS Proxy currently doesn't support command-line options".
    assert connection.startup_options(iam_auth, 2000) is None
    assert connection.startup_options(settings.DatabaseSettings(database_url=database_url), 2000) == (
        "-c statement_timeout=2000 -c TimeZone=UTC"
    )


def test_a_connection_whose_timeout_is_set_by_statement_gives_up_on_a_silent_server_within_it(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Through the proxy (no startup options) a connection made for its own timeout sets it by a statement.
    monkeypatch.setattr(connection, "startup_options", lambda _settings, _timeout_ms: None)
    connect = connection.BoundedConnection.connect
    with ExitStack() as silences:

        def connect_and_fall_silent(_cls: type, *args: object, **kwargs: object) -> connection.BoundedConnection:
            conn = connect(*args, **kwargs)
            silences.enter_context(silent_backend(conn.info.backend_pid))
            return conn

        monkeypatch.setattr(connection.BoundedConnection, "connect", classmethod(connect_and_fall_silent))
        started = time.perf_counter()
        with pytest.raises(DatabaseUnavailable, match="no answer from the database within 1.2 s"):
            connection.connect(settings.DatabaseSettings(database_url=database_url), statement_timeout_ms=200)
        elapsed = time.perf_counter() - started

    # Its bound is the one it was made for (the message names it, not the default timeout's 3.0 s); it waited that
    # long, and gave up before the server answered.
    assert 1.2 <= elapsed < SILENCE_AT_MOST_S


def test_an_unreachable_proxy_is_a_retryable_database_error(
    iam_auth: settings.DatabaseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_HOST", "127.0.0.1")
    monkeypatch.setenv("DB_PORT", "1")
    settings.database_settings.cache_clear()
    with pytest.raises(DatabaseUnavailable):
        connection.connect()


def test_iam_auth_without_the_endpoint_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_IAM_AUTH", "true")
    monkeypatch.delenv("DB_HOST", raising=False)
    with pytest.raises(ValidationError, match="DB_IAM_AUTH needs DB_HOST"):
        settings.DatabaseSettings()
