"""The asynchronous path: SQS messages each carrying one event batch, as high-volume producers send them.

A message succeeds when every event in it is stored (or was already). Otherwise it fails and SQS
redelivers it — safe, since stored events count as duplicates the next time — until the queue's redrive
policy moves it to the dead-letter queue, where a message with invalid events waits for inspection. Each failure
is logged with the message's id and why (feedcore.queue_consumer).
"""

from __future__ import annotations

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import Json

from feedcore.api.event_models import EventBatch, IngestResult
from feedcore.errors import FeedError
from feedcore.ingestion.service import ingest_batch
from feedcore.queue_consumer import LoggedBatchProcessor


class EventBatchMessage(SqsRecordModel):
    """An SQS record whose body is an event batch in the same JSON as `POST /v1/events`."""

    body: Json[EventBatch]


class RejectedEventsInMessage(FeedError):
    """Some events of a message break the contract (`rejections`); the others were stored."""

    def __init__(self, result: IngestResult):
        super().__init__(f"{result.rejected} of {result.received} events rejected; the others were stored")
        self.rejections = result.rejections


# Records that fail to parse as EventBatchMessage are reported as failed without reaching the handler.
# When every record fails, the answer still lists them (rather than raising) so each follows its own
# redelivery count to the dead-letter queue.
queue_processor = LoggedBatchProcessor(EventBatchMessage)


def ingest_queue_record(record: EventBatchMessage) -> IngestResult:
    """Ingest one message's batch; raises when any of its events was not stored."""
    result = ingest_batch(record.body)
    if result.rejected:
        raise RejectedEventsInMessage(result)
    return result
