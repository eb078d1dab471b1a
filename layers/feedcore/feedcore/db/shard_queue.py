"""The shard queue: one SQS message per (chunk, shard) whose per-user part a consumer is to score."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from feedcore.aws_calls import client_config

# SQS takes at most ten messages per SendMessageBatch call.
SEND_BATCH_MESSAGES = 10


@cache
def _sqs() -> Any:
    import boto3

    # The coordinator waits for nothing else meanwhile: short timeouts, three attempts in all.
    return boto3.client("sqs", config=client_config(connect_timeout_s=2, read_timeout_s=5, attempts=3))


class ShardMessagesNotSent(Exception):
    """SQS refused some of the messages; they are sent again once the resend interval has passed."""


def send_shard_messages(queue_url: str, chunk_id: int, shards: list[int]) -> None:
    """Send a message `{"chunk_id", "shard"}` for each of `shards`; raises ShardMessagesNotSent when SQS
    refuses any."""
    for start in range(0, len(shards), SEND_BATCH_MESSAGES):
        entries = [
            {"Id": str(shard), "MessageBody": json.dumps({"chunk_id": chunk_id, "shard": shard})}
            for shard in shards[start : start + SEND_BATCH_MESSAGES]
        ]
        failed = _sqs().send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed", [])
        if failed:
            raise ShardMessagesNotSent(f"chunk {chunk_id}: SQS refused shards {[f['Id'] for f in failed]}")
