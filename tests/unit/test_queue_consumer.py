"""The SQS consumers' batch processor: every failed message logged with its id and why."""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import BaseModel, Json, ValidationError

from feedcore import queue_consumer
from feedcore.queue_consumer import LoggedBatchProcessor
from tests.aws_events import LambdaContext, sqs_event


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
