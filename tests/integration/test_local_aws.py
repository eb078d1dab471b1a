"""Local parity: moto in server mode stands in for SQS, S3 and Secrets Manager, and env.json points
`sam local` at a local database; the cloud code paths run against them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from feedcore import settings
from feedcore.db import connection, shard_queue
from feedcore.scoring.service import RecomputeRequest, recompute_scores
from feedcore.settings import AuthSettings, DatabaseSettings, FanoutSettings, FeedSettings
from feedlocal.aws_local import (
    LOCAL_CREDENTIALS,
    QUEUE_CONSUMERS,
    REGION,
    LocalAws,
    QueueContext,
    create_local_resources,
    create_queue_with_dead_letters,
    deliver_queue_batch,
    endpoint_url,
    sam_local_environment,
    start_moto_server,
)
from tests.conftest import load_function
from tests.factories import NOW, create_catalog, purchase, record
from tests.infra.support import stack_template

ingest = load_function("ingest_events")
recompute = load_function("recompute_scores")


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
        # As RDS's master secret, which the stack's schema migrations read: the user and the password alone, the
        # database named by DB_HOST, DB_PORT and DB_NAME.
        secret = parameters.get_secret(local_aws.database_secret_arn, transform="json", max_age=0)
        assert sorted(secret) == ["password", "username"]
    finally:
        settings.database_settings.cache_clear()
        connection.reset_cached_connection()


def test_batches_sent_to_the_local_queue_are_consumed_by_the_queue_handler(
    local_aws: LocalAws, db: psycopg.Connection
) -> None:
    sqs = local_aws.sqs()
    good = [purchase("user-1", items=("milk",))]
    good_id = sqs.send_message(QueueUrl=local_aws.ingest_queue_url, MessageBody=json.dumps({"events": good}))
    poison_id = sqs.send_message(QueueUrl=local_aws.ingest_queue_url, MessageBody="not json")

    received, answer = deliver_queue_batch(sqs, local_aws.ingest_queue_url, ingest.queue_handler)

    assert sorted(received) == sorted([good_id["MessageId"], poison_id["MessageId"]])
    assert answer["batchItemFailures"] == [{"itemIdentifier": poison_id["MessageId"]}]
    assert db.execute("SELECT event_id::text FROM events").fetchall() == [(good[0]["event_id"],)]
    # The poison message stays in flight for the visibility timeout, then comes back (and, after five
    # receives, moves to the dead-letter queue); the delivered one is gone.
    attributes = sqs.get_queue_attributes(QueueUrl=local_aws.ingest_queue_url, AttributeNames=["All"])["Attributes"]
    assert (attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"]) == (
        "0",
        "1",
    )


@pytest.mark.parametrize(
    ("queue", "stack_queue", "dead_letters"),
    [("ingest", "IngestQueue", "feed-ingest-dlq"), ("shard", "ScoreShardQueue", "feed-score-shards-dlq")],
)
def test_the_queues_park_what_keeps_failing_like_the_stack(
    local_aws: LocalAws, queue: str, stack_queue: str, dead_letters: str
) -> None:
    sqs = local_aws.sqs()
    url = getattr(local_aws, f"{queue}_queue_url")
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    stack_queue_properties = stack_template()["Resources"][stack_queue]["Properties"]
    assert redrive["maxReceiveCount"] == stack_queue_properties["RedrivePolicy"]["maxReceiveCount"]
    assert attributes["VisibilityTimeout"] == str(stack_queue_properties["VisibilityTimeout"])
    assert redrive["deadLetterTargetArn"].endswith(f":{dead_letters}")


def test_a_recompute_pointed_at_the_local_shard_queue_fans_out_to_its_consumer(
    local_aws: LocalAws, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_catalog(db)
    recompute_scores(RecomputeRequest(), now=NOW)
    record(purchase("user-1", items=("milk", "eggs")), purchase("user-2", items=("coffee",)))
    for name, value in local_aws.environment().items():
        if not name.startswith("DB_"):  # the database stays the test's
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("SCORING_FANOUT_MIN_EVENTS", "1")
    monkeypatch.setenv("SCORING_FANOUT_POLL_INTERVAL_S", "0.05")
    settings.fanout_settings.cache_clear()
    shard_queue._sqs.cache_clear()
    sqs = local_aws.sqs()
    stop = threading.Event()

    def consume() -> None:  # what `feedctl moto` does for the shard queue
        while not stop.is_set():
            if not deliver_queue_batch(sqs, local_aws.shard_queue_url, recompute.shard_handler)[0]:
                stop.wait(0.02)

    consumer = threading.Thread(target=consume)
    consumer.start()
    try:
        result = recompute_scores(RecomputeRequest(), now=NOW, time_budget_ms=30_000)
    finally:
        stop.set()
        consumer.join()
        settings.fanout_settings.cache_clear()
        shard_queue._sqs.cache_clear()

    assert (result.status, result.events_scored, result.shard_messages_sent) == ("completed", 2, 4)
    assert db.execute("SELECT count(*) FROM user_item_affinity").fetchone() == (3,)


def test_feedctl_recompute_imports_a_model_file_from_the_local_s3_as_the_schedule_does(
    local_aws: LocalAws, database_url: str, db: psycopg.Connection
) -> None:
    create_catalog(db)
    s3 = boto3.client("s3", endpoint_url=local_aws.endpoint_url, region_name=REGION, **{
        "aws_access_key_id": LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    })  # fmt: skip
    key = "model-scores/picked_for_you/v1.csv"
    s3.put_object(Bucket=local_aws.model_scores_bucket, Key=key, Body=b"user_id,item_id,score\nuser-1,milk,0.9\n")
    # The variables the README exports after `feedctl moto`; the database stays the test's, no fan-out.
    environment = (
        os.environ
        | LOCAL_CREDENTIALS
        | {
            "AWS_ENDPOINT_URL": local_aws.endpoint_url,
            "MODEL_SCORES_BUCKET": local_aws.model_scores_bucket,
            "DATABASE_URL": database_url,
        }
    )
    result = subprocess.run(
        [str(Path(sys.executable).parent / "feedctl"), "recompute"],
        env=environment, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip

    assert json.loads(result.stdout.strip().splitlines()[-1])["models_imported"] == ["picked_for_you"]
    assert db.execute("SELECT user_id, item_id, score FROM model_scores").fetchall() == [("user-1", "milk", 0.9)]


def test_sam_env_covers_every_function_with_settings_that_validate() -> None:
    env = sam_local_environment(
        "postgresql://postgres:feed@host.docker.internal:5432/postgres", "http://host.docker.internal:5000"
    )

    assert set(env) == {
        "IngestEventsFunction",
        "IngestQueueFunction",
        "AssembleFeedFunction",
        "RecomputeScoresFunction",
        "RecomputeShardFunction",
        "MigrateSchemaFunction",
    }
    for variables in env.values():
        # Over the template's DB_HOST (a proxy that does not exist locally) and its IAM authentication.
        database = DatabaseSettings(**{k.lower(): v for k, v in variables.items() if k.startswith(("DB_", "DATABASE"))})
        assert database.database_url is not None and not database.db_iam_auth
        assert AuthSettings(dev_tokens=variables["AUTH_DEV_TOKENS"]).dev_tokens is True
        assert variables["AWS_ENDPOINT_URL"] == "http://host.docker.internal:5000"
        assert not FanoutSettings(queue_url=variables["SCORING_FANOUT_QUEUE_URL"]).enabled
    # The feed function in Lambda's environment: over the template's secret ARN and AppConfig application (which
    # SAM would give as resource names), a local cursor key and the packaged ranking config.
    feed_variables = env["AssembleFeedFunction"] | {"AWS_LAMBDA_FUNCTION_NAME": "AssembleFeedFunction"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in feed_variables.items():
            patch.setenv(name, value)
        feed = FeedSettings()
    assert feed.cursor_secret is not None and not feed.cursor_secret_arn and not feed.appconfig_application


def test_feedctl_moto_on_a_port_in_use_says_so_in_one_line_instead_of_waiting_forever() -> None:
    # moto's threaded server waited forever for a server thread that had failed to bind.
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(Path(sys.executable).parent / "feedctl"), "moto", "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    assert result.returncode == 1
    assert result.stderr.startswith(f"feedctl moto: cannot serve moto on 127.0.0.1:{port}: Address already in use")


def test_the_local_queue_consumers_have_the_stacks_timeouts_and_batch_sizes() -> None:
    template = stack_template()
    resources, default_timeout = template["Resources"], template["Globals"]["Function"]["Timeout"]
    for consumer in QUEUE_CONSUMERS.values():
        (mapping,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"
                      and r["Properties"]["FunctionName"] == {"Ref": consumer.logical_id}]  # fmt: skip
        timeout = resources[consumer.logical_id]["Properties"].get("Timeout", default_timeout)
        assert (consumer.timeout_s, consumer.batch_size) == (timeout, mapping["BatchSize"]), consumer


def test_local_delivery_gives_each_consumer_its_batch_size_and_a_clock_running_down_from_its_timeout() -> None:
    # The local context said 30 s were left however long the consumer had run, and a shard consumer got up to ten
    # messages where the stack's mapping gives it one.
    seen: list[tuple[int, int, int]] = []

    def consumer(event: dict, context: QueueContext) -> dict:
        first = context.get_remaining_time_in_millis()
        time.sleep(0.05)
        seen.append((len(event["Records"]), first, context.get_remaining_time_in_millis()))
        return {"batchItemFailures": []}

    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url, _ = create_queue_with_dead_letters(sqs, "local-parity", max_receives=5)
        for n in range(3):
            sqs.send_message(QueueUrl=url, MessageBody=str(n))
        deliver_queue_batch(sqs, url, consumer, function_name="recompute_shards")
        deliver_queue_batch(sqs, url, consumer, function_name="ingest_queue")

    (shards, ingest) = seen
    assert shards[0] == 1 and 119_000 < shards[1] <= 120_000 and shards[2] <= shards[1] - 50, shards
    assert ingest[0] == 2 and 29_000 < ingest[1] <= 30_000 and ingest[2] <= ingest[1] - 50, ingest


def test_moto_serves_on_an_ipv6_host() -> None:
    # The check that the port was free probed IPv4 alone: `feedctl moto --host ::1` ended in "cannot serve moto on
    # ::1:…: Address family for hostname not supported".
    with socket.create_server(("::1", 0), family=socket.AF_INET6) as probe:
        port = probe.getsockname()[1]
    server = start_moto_server("::1", port)
    try:
        sqs = boto3.client("sqs", endpoint_url=endpoint_url("::1", port), region_name=REGION,
                           aws_access_key_id="local", aws_secret_access_key="local")  # fmt: skip
        assert sqs.create_queue(QueueName="on-ipv6")["QueueUrl"].endswith("/on-ipv6")
    finally:
        server.stop()
