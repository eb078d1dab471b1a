"""What the SQS consumers share: Powertools' BatchProcessor, logging every message it reports failed, and
answering Lambda before the invocation's time runs out.

Powertools logs a failed record at debug level only, so a message that fails every delivery reaches the
dead-letter queue leaving nothing in the function's logs. Here each failure is logged with the message's id and
why: the fields of a body that is not the expected JSON, the service's own reason (events rejected, the database
unavailable), or the traceback of an unexpected error.

Messages are handled one after the other, and a database that does not answer makes each one wait its connect
timeout (5 s): ten messages took 50 s, past the ingestion consumer's 30 s timeout, so the invocation timed out
without its answer (no message reported, none logged after the timeout). A message is now tried only while the
invocation has the time the slowest message of its batch took so far, and a margin; the others are reported failed
untried, and SQS delivers them again.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    ExceptionInfo,
    FailureResponse,
    SuccessResponse,
)
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import ValidationError

from feedcore.api.field_errors import field_errors
from feedcore.errors import MAX_FIELD_ERRORS, FeedError
from feedcore.observability import logger

_REDELIVERED = "SQS delivers it again, and after its last delivery moves it to the dead-letter queue"
# Kept back from the invocation's time after its last message: the answer, the log and the metrics.
ANSWER_MARGIN_S = 2.0


class MessageNotTried(FeedError):
    """The invocation had no time left to handle the message."""


class LoggedBatchProcessor(BatchProcessor):
    """A BatchProcessor of SQS messages whose bodies parse as `model`, reporting failed messages (for redelivery)
    rather than raising when all fail, each one logged."""

    def __init__(self, model: type[SqsRecordModel]) -> None:
        super().__init__(event_type=EventType.SQS, model=model, raise_on_entire_batch_failure=False)
        self._slowest_s = 0.0  # the longest a message of the current batch took

    def _prepare(self) -> None:
        super()._prepare()
        self._slowest_s = 0.0

    def _process_record(self, record: dict) -> SuccessResponse | FailureResponse:
        """Handle the message when the invocation has time left for one as slow as the slowest so far (the first
        is always tried), else report it failed untried."""
        context = getattr(self, "lambda_context", None)  # set by each call of process_partial_response
        if context is not None and self._slowest_s:
            left_s = context.get_remaining_time_in_millis() / 1000
            if left_s < self._slowest_s + ANSWER_MARGIN_S:
                not_tried = MessageNotTried(
                    f"not tried: {left_s:.1f} s left, and a message of this batch took {self._slowest_s:.1f} s"
                )
                return self.failure_handler(
                    self._to_batch_type(record, self.event_type), (MessageNotTried, not_tried, None)
                )
        started = monotonic()
        try:
            return super()._process_record(record)
        finally:
            self._slowest_s = max(self._slowest_s, monotonic() - started)

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
