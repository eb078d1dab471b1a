"""What the SQS consumers share: Powertools' BatchProcessor, logging every message it reports failed, and
answering Lambda before the invocation's time runs out.

Powertools logs a failed record at debug level only, so a message that fails every delivery reaches the
dead-letter queue leaving nothing in the function's logs. Here each failure is logged with the message's id and
why: the fields of a body that is not the expected JSON, the service's own reason (events rejected, the database
unavailable), or the traceback of an unexpected error.

Messages are handled one after the other, and a database that does not answer makes each one wait its connect
timeout (5 s): ten messages took 50 s, past the ingestion consumer's 30 s timeout, so the invocation timed out
without its answer (no message reported, none logged after the timeout). So a message after the first is tried only
while the invocation has left the longest one may take (`message_worst_case_s`: connecting, then an answer within the
statement timeout) and a margin for the answer; the others are reported failed untried, and SQS delivers them again.
And every wait for the database of a message ends by that margin before the invocation's end (`answers_by`): a message
slower than the settings allow (several statements, each slow) fails, its transaction rolled back, rather than
outliving the invocation.
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
from feedcore.db.connection import answer_bound_s, answers_by
from feedcore.errors import MAX_FIELD_ERRORS, FeedError
from feedcore.observability import logger
from feedcore.settings import database_settings

_REDELIVERED = "SQS delivers it again, and after its last delivery moves it to the dead-letter queue"
# Kept back from the invocation's time after its last message: the answer, the log and the metrics.
ANSWER_MARGIN_S = 2.0


class MessageNotTried(FeedError):
    """The invocation had no time left to handle the message."""


def message_worst_case_s() -> float:
    """The longest a message may take as the settings bound it: a new connection (DB_CONNECT_TIMEOUT_S), then the
    answer of a statement (DB_STATEMENT_TIMEOUT_MS and the grace for the network)."""
    settings = database_settings()
    return settings.db_connect_timeout_s + answer_bound_s(settings.db_statement_timeout_ms)


class LoggedBatchProcessor(BatchProcessor):
    """A BatchProcessor of SQS messages whose bodies parse as `model`, reporting failed messages (for redelivery)
    rather than raising when all fail, each one logged."""

    def __init__(self, model: type[SqsRecordModel]) -> None:
        super().__init__(event_type=EventType.SQS, model=model, raise_on_entire_batch_failure=False)
        self._tried = False  # whether a message of the current batch was tried

    def _prepare(self) -> None:
        super()._prepare()
        self._tried = False

    def _process_record(self, record: dict) -> SuccessResponse | FailureResponse:
        """Handle the message, its waits for the database ended ANSWER_MARGIN_S before the invocation's end, when the
        invocation has time left for the longest a message may take (the first is always tried); else report it
        failed untried."""
        context = getattr(self, "lambda_context", None)  # set by each call of process_partial_response
        if context is None:
            return super()._process_record(record)
        left_s = context.get_remaining_time_in_millis() / 1000
        if self._tried and left_s < (needed_s := message_worst_case_s() + ANSWER_MARGIN_S):
            not_tried = MessageNotTried(f"not tried: {left_s:.1f} s left, and a message may need {needed_s:.1f} s")
            parsed = self._to_batch_type(record, self.event_type)
            return self.failure_handler(parsed, (MessageNotTried, not_tried, None))
        self._tried = True
        with answers_by(monotonic() + left_s - ANSWER_MARGIN_S):
            return super()._process_record(record)

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
