"""The consumer of the shard queue: each message names a fanned-out chunk and one of its user shards
(feedcore.scoring.fanout).

A message succeeds when its shard is scored — or was already, or its chunk is finished or cancelled: then
nothing changes. Otherwise (the database failed) it fails alone and SQS delivers it again, until the queue's
redrive policy parks it in the dead-letter queue; the coordinator sends a shard's message again when the shard
is still not done SCORING_FANOUT_RESEND_AFTER_S after the last one.
"""

from __future__ import annotations

import psycopg
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, Json

from feedcore.db import shards as shards_db
from feedcore.db.connection import bound_transaction, run
from feedcore.observability import logger
from feedcore.queue_consumer import LoggedBatchProcessor
from feedcore.scoring.fanout import score_shard
from feedcore.scoring.service import run_timeout_ms
from feedcore.settings import scoring_settings

# Time kept back from the invocation's remaining time to commit and answer SQS.
SHARD_SAFETY_MARGIN_MS = 5_000


class ShardTask(BaseModel):
    """A user shard of a fanned-out chunk, as the coordinator sends it."""

    model_config = ConfigDict(extra="forbid")

    chunk_id: int = Field(ge=1)
    shard: int = Field(ge=0)


class ShardMessage(SqsRecordModel):
    """An SQS record whose body is a ShardTask in JSON."""

    body: Json[ShardTask]


# Records that fail to parse are reported failed without reaching the handler (and end in the dead-letter queue);
# each failure is logged.
shard_processor = LoggedBatchProcessor(ShardMessage)


def score_shard_record(record: ShardMessage, lambda_context: LambdaContext) -> bool:
    """Score the shard of one message; False when there was nothing left to do. Raises when the database fails
    (the message is then delivered again)."""
    task = record.body
    settings = scoring_settings()
    budget_ms = lambda_context.get_remaining_time_in_millis() - SHARD_SAFETY_MARGIN_MS
    timeout_ms = run_timeout_ms(settings.recompute_statement_timeout_ms, budget_ms)

    def score(conn: psycopg.Connection) -> bool:
        bound_transaction(conn, timeout_ms)
        chunk = shards_db.lock_shard(conn, task.chunk_id, task.shard)
        if chunk is None:
            return False
        score_shard(conn, settings, chunk, task.shard)
        return True

    scored = run(score)
    logger.info("shard scored" if scored else "shard already done", extra=task.model_dump())
    return scored
