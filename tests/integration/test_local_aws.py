"""Local parity: moto in server mode stands in for SQS, S3 and Secrets Manager, and env.json points
`sam local` at a local database; the cloud code paths run against them."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import boto3
import psycopg
import pytest
from aws_lambda_powertools.utilities import parameters

from feedcore import settings
from feedcore.db import connection
from feedcore.settings import AuthSettings, DatabaseSettings
from feedlocal.aws_local import (
    LOCAL_CREDENTIALS,
    LocalAws,
    create_local_resources,
    sam_local_environment,
    start_moto_server,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def local_aws(database_url: str) -> Iterator[LocalAws]:
    port = free_port()
    server = start_moto_server("127.0.0.1", port)
    try:
        yield create_local_resources(f"http://127.0.0.1:{port}", database_url)
    finally:
        server.stop()


def test_the_handlers_find_the_database_through_the_local_secret(
    local_aws: LocalAws, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL")
    for name, value in local_aws.environment().items():
        monkeypatch.setenv(name, value)
    settings.database_settings.cache_clear()
    connection.reset_cached_connection()
    # Powertools keeps its Secrets Manager client (and values) per process; earlier tests made one for moto's
    # in-process mock, which knows nothing of this endpoint.
    parameters.clear_caches()
    try:
        assert connection.run(lambda conn: conn.execute("SELECT current_database()").fetchone()[0]) == db.info.dbname
    finally:
        settings.database_settings.cache_clear()
        connection.reset_cached_connection()


def test_the_queue_parks_what_keeps_failing_like_the_stack(local_aws: LocalAws) -> None:
    sqs = boto3.client(
        "sqs",
        endpoint_url=local_aws.endpoint_url,
        region_name=LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    attributes = sqs.get_queue_attributes(QueueUrl=local_aws.ingest_queue_url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["maxReceiveCount"] == 5
    assert redrive["deadLetterTargetArn"].endswith(":feed-ingest-dlq")


def test_sam_env_covers_every_function_with_settings_that_validate() -> None:
    env = sam_local_environment(
        "postgresql://postgres:feed@host.docker.internal:5432/postgres", "http://host.docker.internal:5000"
    )

    assert set(env) == {
        "IngestEventsFunction",
        "IngestQueueFunction",
        "AssembleFeedFunction",
        "RecomputeScoresFunction",
        "MigrateSchemaFunction",
    }
    for variables in env.values():
        # Over the template's DB_HOST (a proxy that does not exist locally) and its IAM authentication.
        database = DatabaseSettings(**{k.lower(): v for k, v in variables.items() if k.startswith(("DB_", "DATABASE"))})
        assert database.database_url is not None and not database.db_iam_auth
        assert AuthSettings(dev_tokens=variables["AUTH_DEV_TOKENS"]).dev_tokens is True
        assert variables["AWS_ENDPOINT_URL"] == "http://host.docker.internal:5000"
