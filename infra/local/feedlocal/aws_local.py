"""Local stand-ins for the stack's AWS parts: moto in server mode (SQS, S3, Secrets Manager) and the
env.json that `sam local start-api` / `sam local invoke` read.

With these, the code paths of the cloud run on a laptop: the database secret is read from Secrets Manager,
model score files are listed and read from S3, event batches wait in an SQS queue with its dead-letter queue.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import monotonic
from typing import Any

import boto3
from moto.server import ThreadedMotoServer
from psycopg.conninfo import conninfo_to_dict

REPO_ROOT = Path(__file__).resolve().parents[3]
REGION = "us-east-1"
# moto accepts any credentials; these only keep boto3 from looking for real ones.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": REGION}
MODEL_SCORES_BUCKET = "feed-model-scores"
SECRET_NAME = "feed-assembly/database"


@dataclass(frozen=True)
class LocalAws:
    """The endpoint and the resources created on it."""

    endpoint_url: str
    ingest_queue_url: str
    ingest_dead_letter_queue_url: str
    shard_queue_url: str
    shard_dead_letter_queue_url: str
    model_scores_bucket: str
    database_secret_arn: str
    # Where the database is (DB_HOST, DB_PORT, DB_NAME), which the secret does not say, as RDS's master secret.
    database_instance: dict[str, str]

    def sqs(self) -> Any:
        return boto3.client(
            "sqs",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def environment(self) -> dict[str, str]:
        """The variables that point feedcore (and boto3) at the stand-ins."""
        return LOCAL_CREDENTIALS | {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "MODEL_SCORES_BUCKET": self.model_scores_bucket,
            "DB_SECRET_ARN": self.database_secret_arn,
            **self.database_instance,
            "SCORING_FANOUT_QUEUE_URL": self.shard_queue_url,
        }


def start_moto_server(host: str, port: int) -> ThreadedMotoServer:
    """moto's server on `host:port`, started; OSError when it cannot listen there. ThreadedMotoServer would wait
    forever for a server whose thread failed to bind (a port in use, a host that does not resolve)."""
    try:
        socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET).close()
    except OSError as exc:
        raise OSError(f"cannot serve moto on {host}:{port}: {exc.strerror or exc}") from exc
    server = ThreadedMotoServer(ip_address=host, port=port)
    server.start()
    return server


def endpoint_url(host: str, port: int) -> str:
    """The URL of a server listening on `host:port` (an IPv6 address in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def create_queue_with_dead_letters(
    sqs: Any, name: str, *, max_receives: int, visibility_timeout_s: int | None = None
) -> tuple[str, str]:
    """A queue whose messages move to its own dead-letter queue (`<name>-dlq`) after `max_receives` receives,
    as template.yaml declares its queues; returns both URLs."""
    dead_letters = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dead_letter_arn = sqs.get_queue_attributes(QueueUrl=dead_letters, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    attributes = {
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": max_receives})
    }
    if visibility_timeout_s is not None:
        attributes["VisibilityTimeout"] = str(visibility_timeout_s)
    return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"], dead_letters


def create_local_resources(endpoint_url: str, database_url: str) -> LocalAws:
    """The ingestion and shard queues with their dead-letter queues (same redrive as the template), the model
    scores bucket, and a secret holding `database_url`'s user and password alone, as RDS keeps the master's (the
    stack's schema migrations read it): the database's host, port and name are variables, as the stack gives them."""
    session = boto3.Session(
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    sqs = session.client("sqs", endpoint_url=endpoint_url)
    queue, dead_letters = create_queue_with_dead_letters(sqs, "feed-ingest", max_receives=5, visibility_timeout_s=190)
    shards, shard_dead_letters = create_queue_with_dead_letters(
        sqs, "feed-score-shards", max_receives=5, visibility_timeout_s=720
    )
    session.client("s3", endpoint_url=endpoint_url).create_bucket(Bucket=MODEL_SCORES_BUCKET)
    parts = conninfo_to_dict(database_url)
    secret = session.client("secretsmanager", endpoint_url=endpoint_url).create_secret(
        Name=SECRET_NAME,
        SecretString=json.dumps({"username": parts.get("user") or "postgres", "password": parts.get("password") or ""}),
    )
    instance = {
        "DB_HOST": parts.get("host") or "localhost",
        "DB_PORT": parts.get("port") or "5432",
        "DB_NAME": parts.get("dbname") or "postgres",
    }
    return LocalAws(
        endpoint_url, queue, dead_letters, shards, shard_dead_letters, MODEL_SCORES_BUCKET, secret["ARN"], instance
    )


@dataclass(frozen=True)
class QueueConsumer:
    """A function of the stack that consumes a queue, as template.yaml declares it (a test keeps them equal)."""

    logical_id: str
    timeout_s: int  # the function's Timeout
    batch_size: int  # its event source mapping's BatchSize


QUEUE_CONSUMERS = {
    "ingest_queue": QueueConsumer("IngestQueueFunction", timeout_s=30, batch_size=10),
    "recompute_shards": QueueConsumer("RecomputeShardFunction", timeout_s=120, batch_size=1),
}


@dataclass(frozen=True)
class QueueContext:
    """The Lambda context the local queue poller passes the consumer `function_name`: its remaining time runs down
    from the function's timeout, from when the context is made (`ends_at`, a `monotonic()` time)."""

    function_name: str
    ends_at: float
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "local-queue"
    log_stream_name: str = "local"

    @classmethod
    def invoking(cls, function_name: str) -> QueueContext:
        return cls(function_name, ends_at=monotonic() + QUEUE_CONSUMERS[function_name].timeout_s)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:123456789012:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.ends_at - monotonic()) * 1000))


def deliver_queue_batch(
    sqs: Any, queue_url: str, consumer: Callable[[dict, Any], dict], *, visibility_timeout_s: int | None = None,
    function_name: str = "ingest_queue",
) -> tuple[list[str], dict]:  # fmt: skip
    """What Lambda's SQS event source mapping does once: receive up to its BatchSize of messages, invoke the consumer
    (the function `function_name` of QUEUE_CONSUMERS) with them as Lambda's SQS event and a context whose time runs
    down from the function's timeout, delete the messages it did not report failed (the others come back after the
    visibility timeout, and after maxReceiveCount receives SQS moves them to the dead-letter queue).
    Returns the received message ids and the consumer's answer."""
    receive: dict[str, Any] = {
        "QueueUrl": queue_url,
        "MaxNumberOfMessages": QUEUE_CONSUMERS[function_name].batch_size,
        "AttributeNames": ["All"],
    }
    if visibility_timeout_s is not None:
        receive["VisibilityTimeout"] = visibility_timeout_s
    received = sqs.receive_message(**receive).get("Messages", [])
    if not received:
        return [], {"batchItemFailures": []}
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    records = [
        {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message["Attributes"],
            "messageAttributes": {},
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": REGION,
        }
        for message in received
    ]
    answer = consumer({"Records": records}, QueueContext.invoking(function_name))
    failed = {failure["itemIdentifier"] for failure in answer["batchItemFailures"]}
    for message in received:
        if message["MessageId"] not in failed:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return [message["MessageId"] for message in received], answer


def sam_local_environment(database_url: str, aws_endpoint_url: str | None = None) -> dict[str, dict[str, Any]]:
    """env.json for `sam local start-api --env-vars env.json`: every function of template.yaml reads the
    local database by URL instead of RDS Proxy, accepts development tokens (there is no authorizer), does not
    fan the recompute out, signs cursors with a local key and ranks by the packaged config."""
    from cfnlint.decode import decode_str

    template, _ = decode_str((REPO_ROOT / "template.yaml").read_text())
    functions = [name for name, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]
    # No shard consumer runs under `sam local start-api`: the recompute scores every chunk itself. SAM resolves
    # a `!Ref` to a resource as its logical id, so the cursor secret's ARN and the AppConfig application are
    # replaced: a local cursor key, and the packaged ranking config.
    variables: dict[str, Any] = {
        "DATABASE_URL": database_url, "DB_IAM_AUTH": "false", "AUTH_DEV_TOKENS": "true",
        "SCORING_FANOUT_QUEUE_URL": "",
        "FEED_CURSOR_SECRET_ARN": "", "FEED_CURSOR_SECRET": "sam-local-cursor-key", "FEED_APPCONFIG_APPLICATION": "",
    }  # fmt: skip
    if aws_endpoint_url:
        variables |= LOCAL_CREDENTIALS | {"AWS_ENDPOINT_URL": aws_endpoint_url}
    return {name: dict(variables) for name in functions}


def write_sam_local_environment(out: Path, database_url: str, aws_endpoint_url: str | None = None) -> None:
    out.write_text(json.dumps(sam_local_environment(database_url, aws_endpoint_url), indent=2) + "\n")
