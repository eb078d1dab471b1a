"""What the SQS consumers share: Powertools' BatchProcessor, logging every message it reports failed.

Powertools logs a failed record at debug level only, so a message that fails every delivery reaches the
dead-letter queue leaving nothing in the function's logs. Here each failure is logged with the message's id and
why: the fields of a body that is not the expected JSON, the service's own reason (events rejected, the database
unavailable), or the traceback of an unexpected error.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, ExceptionInfo, FailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import ValidationError

from feedcore.api.field_errors import field_errors
from feedcore.errors import MAX_FIELD_ERRORS, FeedError
from feedcore.observability import logger

_REDELIVERED = "SQS delivers it again, and after its last delivery moves it to the dead-letter queue"


class LoggedBatchProcessor(BatchProcessor):
    """A BatchProcessor of SQS messages whose bodies parse as `model`, reporting failed messages (for redelivery)
    rather than raising when all fail, each one logged."""

    def __init__(self, model: type[SqsRecordModel]) -> None:
        super().__init__(event_type=EventType.SQS, model=model, raise_on_entire_batch_failure=False)

    def failure_handler(self, record: Any, exception: ExceptionInfo) -> FailureResponse:
        # The failure is registered first: logging it cannot lose it. `record` is the parsed model, or Powertools'
        # SQSRecord when the body did not parse.
        failure = super().failure_handler(record, exception)
        message_id = getattr(record, "messageId", None) or getattr(record, "message_id", None)
        error = exception[1]
        if isinstance(error, ValidationError) and error.title == self.model.__name__:  # the body, not a bug
            logger.warning(
                f"queue message refused: its body is not the expected JSON; {_REDELIVERED}",
                extra={"message_id": message_id,
                       "errors": [e.model_dump() for e in field_errors(error.errors(include_url=False))]},
            )  # fmt: skip
        elif isinstance(error, FeedError):
            rejections = getattr(error, "rejections", [])
            logger.warning(
                f"queue message failed: {error}; {_REDELIVERED}",
                extra={"message_id": message_id,
                       "rejections": [r.model_dump(mode="json") for r in rejections[:MAX_FIELD_ERRORS]]},
            )  # fmt: skip
        else:
            logger.error(f"queue message failed: unexpected error; {_REDELIVERED}", exc_info=exception,
                         extra={"message_id": message_id})  # fmt: skip
        return failure
