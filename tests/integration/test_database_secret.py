"""In the cloud the handlers find the database through a Secrets Manager secret (RDS JSON format)."""

from __future__ import annotations

import json

import boto3
import psycopg
import pytest
from moto import mock_aws
from psycopg.conninfo import conninfo_to_dict

from feedcore import settings
from feedcore.db.connection import connect, connection_url, reset_cached_connection
from feedcore.errors import ConfigurationError
from tests.aws_events import LambdaContext, api_gateway_rest_event, cognito_claims
from tests.conftest import load_function
from tests.factories import purchase

ingest = load_function("ingest_events")


@pytest.fixture
def database_secret(db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch):
    """A moto secret holding the test database's coordinates; DATABASE_URL unset as in Lambda."""
    parts = conninfo_to_dict(database_url)
    with mock_aws():
        secret = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="feed-assembly/database",
            SecretString=json.dumps(
                {
                    "engine": "postgres",
                    "host": parts["host"],
                    "port": int(parts.get("port") or 5432),
                    "username": parts.get("user") or "postgres",
                    "password": parts.get("password") or "",
                    "dbname": parts["dbname"],
                }
            ),
        )
        monkeypatch.delenv("DATABASE_URL")
        monkeypatch.setenv("DB_SECRET_ARN", secret["ARN"])
        settings.database_settings.cache_clear()
        reset_cached_connection()
        yield secret["ARN"]
    settings.database_settings.cache_clear()
    reset_cached_connection()


def post_a_purchase() -> dict:
    event = api_gateway_rest_event(
        "POST",
        "/v1/events",
        resource="/v1/events",
        body={"events": [purchase("user-1", items=("milk",))]},
        claims=cognito_claims("user-1"),
    )
    return ingest.lambda_handler(event, LambdaContext(function_name="ingest_events"))


def test_handler_connects_with_the_secret(database_secret: str, db: psycopg.Connection) -> None:
    response = post_a_purchase()

    assert response["statusCode"] == 200, response["body"]
    assert json.loads(response["body"])["accepted"] == 1
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 1


def test_unreadable_secret_is_a_retryable_503(database_secret: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_SECRET_ARN", database_secret.replace("feed-assembly/database", "feed-assembly/missing"))
    settings.database_settings.cache_clear()
    response = post_a_purchase()

    assert response["statusCode"] == 503
    assert json.loads(response["body"])["status"] == 503


@pytest.fixture
def master_user_secret(db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch):
    """The secret RDS keeps for the master user (ManageMasterUserPassword): its name and password alone; the
    instance is DB_HOST, DB_PORT and DB_NAME, as the stack gives the schema migrations."""
    parts = conninfo_to_dict(database_url)
    with mock_aws():
        secret = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="rds!db-0123abcd",
            SecretString=json.dumps(
                {"username": parts.get("user") or "postgres", "password": parts.get("password") or ""}
            ),
        )
        monkeypatch.delenv("DATABASE_URL")
        monkeypatch.setenv("DB_SECRET_ARN", secret["ARN"])
        monkeypatch.setenv("DB_IAM_AUTH", "false")
        monkeypatch.delenv("DB_HOST", raising=False)
        monkeypatch.setenv("DB_NAME", parts["dbname"])
        monkeypatch.setenv("DB_PORT", str(parts.get("port") or 5432))
        settings.database_settings.cache_clear()
        reset_cached_connection()
        yield parts
    settings.database_settings.cache_clear()
    reset_cached_connection()


def test_a_secret_naming_no_instance_connects_to_db_host(master_user_secret: dict, monkeypatch) -> None:
    monkeypatch.setenv("DB_HOST", master_user_secret["host"])
    settings.database_settings.cache_clear()

    with connect() as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (master_user_secret["dbname"],)


def test_a_secret_naming_no_instance_without_db_host_is_a_configuration_error(master_user_secret: dict) -> None:
    with pytest.raises(ConfigurationError, match="lacks 'host', and DB_HOST is not set"):
        connect()


def test_each_connection_reads_the_master_secret_as_it_is_now(master_user_secret: dict, monkeypatch) -> None:
    """RDS rotates the master's password (every 7 days): a migration run after a rotation, or retrying its connection
    during one, logs in with the new password, not one read minutes before."""
    monkeypatch.setenv("DB_HOST", master_user_secret["host"])
    settings.database_settings.cache_clear()
    database = settings.database_settings()
    assert conninfo_to_dict(connection_url(database)).get("password", "") == master_user_secret.get("password", "")

    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId=database.db_secret_arn,
        SecretString=json.dumps({"username": master_user_secret.get("user") or "postgres", "password": "rotated"}),
    )

    assert conninfo_to_dict(connection_url(database))["password"] == "rotated"
