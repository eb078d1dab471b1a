"""The asynchronous path: SQS messages each carrying one event batch, as high-volume producers send them.

A message succeeds when every event in it is stored (or was already). Otherwise it fails and SQS
redelivers it — safe, since stored events count as duplicates the next time — until the queue's redrive
policy moves it to the dead-letter queue, where a message with invalid events waits for inspection.
"""

from __future__ import annotations

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import Json

from feedcore.api.event_models import EventBatch, IngestResult
from feedcore.errors import FeedError
from feedcore.ingestion.service import ingest_batch
from feedcore.observability import logger


class EventBatchMessage(SqsRecordModel):
    """An SQS record whose body is an event batch in the same JSON as `POST /v1/events`."""

    body: Json[EventBatch]


class RejectedEventsInMessage(FeedError):
    """Some events of a message break the contract; the others were stored."""


# Records that fail to parse as EventBatchMessage are reported as failed without reaching the handler.
# When every record fails, the answer still lists them (rather than raising) so each follows its own
# redelivery count to the dead-letter queue.
queue_processor = BatchProcessor(event_type=EventType.SQS, model=EventBatchMessage, raise_on_entire_batch_failure=False)


def ingest_queue_record(record: EventBatchMessage) -> IngestResult:
    """Ingest one message's batch; raises when any of its events was not stored."""
    result = ingest_batch(record.body)
    if result.rejected:
        logger.warning(
            "message has rejected events",
            extra={
                "message_id": record.messageId,
                "rejections": [r.model_dump(mode="json") for r in result.rejections],
            },
        )
        raise RejectedEventsInMessage(f"{result.rejected} of {result.received} events rejected")
    return result
