"""The SQS consumers' batch processor: every failed message logged with its id and why."""

from __future__ import annotations

import json
import time

import pytest
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import BaseModel, Json, ValidationError

from feedcore import queue_consumer
from feedcore.queue_consumer import LoggedBatchProcessor
from feedcore.settings import DatabaseSettings
from tests.aws_events import CountingDown, LambdaContext, sqs_event


class Task(BaseModel):
    size: int


class TaskMessage(SqsRecordModel):
    body: Json[Task]


def test_a_body_that_does_not_parse_is_refused_and_a_failure_inside_the_handler_is_unexpected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(record: TaskMessage) -> None:
        if record.body.size > 1:
            Task.model_validate({"size": "many"})  # a bug: some other validation fails inside the handler

    event = sqs_event(json.dumps({"size": 1}), json.dumps({"size": "one"}), json.dumps({"size": 2}))
    ok, bad_body, bug = (record["messageId"] for record in event["Records"])

    answer = process_partial_response(
        event=event, record_handler=handler, processor=LoggedBatchProcessor(TaskMessage), context=LambdaContext()
    )

    assert answer == {"batchItemFailures": [{"itemIdentifier": bad_body}, {"itemIdentifier": bug}]}
    logged = {r.message_id: r for r in caplog.records if r.getMessage().startswith("queue message")}
    assert logged.keys() == {bad_body, bug}
    assert logged[bad_body].levelname == "WARNING" and logged[bad_body].getMessage().startswith("queue message refused")
    assert [(e["field"], e["type"]) for e in logged[bad_body].errors] == [("size", "int_parsing")]
    assert logged[bug].levelname == "ERROR" and "unexpected error" in logged[bug].getMessage()
    assert logged[bug].exc_info[0] is ValidationError  # the traceback of the bug itself


def test_a_failure_is_registered_before_it_is_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    def log_fails(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the log failed")

    monkeypatch.setattr(queue_consumer.logger, "warning", log_fails)
    event = sqs_event(json.dumps({"size": "one"}))
    processor = LoggedBatchProcessor(TaskMessage)

    with pytest.raises(RuntimeError, match="the log failed"):
        process_partial_response(event=event, record_handler=lambda record: None, processor=processor,
                                 context=LambdaContext())  # fmt: skip

    assert processor.response() == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


def test_a_message_is_tried_only_while_the_invocation_has_left_the_longest_a_message_may_take(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Tried while the invocation had left the time of the slowest message so far and 2 s, a message slower than every
    # earlier one overran it: 0.05 s, then 3 s, within 2.5 s ended 0.55 s past the invocation.
    worst = DatabaseSettings(db_connect_timeout_s=1, db_statement_timeout_ms=200)  # a message: at most 2.2 s
    monkeypatch.setattr(queue_consumer, "database_settings", lambda: worst)
    event = sqs_event(*(json.dumps({"size": size}) for size in (5, 300, 5)))
    _, second, third = (record["messageId"] for record in event["Records"])
    tried: list[int] = []

    def handler(record: TaskMessage) -> None:
        tried.append(record.body.size)
        time.sleep(record.body.size / 100)

    def batch(seconds: float) -> tuple[dict, float]:
        started = time.monotonic()
        processor = LoggedBatchProcessor(TaskMessage)
        answer = process_partial_response(event=event, record_handler=handler, processor=processor,
                                          context=CountingDown(seconds))  # fmt: skip
        return answer, time.monotonic() - started

    answer, took = batch(2.5)
    assert tried == [5] and took < 0.5, (tried, took)  # 2.45 s left: less than 2.2 s and the 2 s margin
    assert answer == {"batchItemFailures": [{"itemIdentifier": second}, {"itemIdentifier": third}]}
    tried.clear()
    answer, _ = batch(7.5)  # 7.45 s left after the first, 4.45 s after the second
    assert tried == [5, 300, 5] and answer == {"batchItemFailures": []}
