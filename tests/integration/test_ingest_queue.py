"""The SQS consumer of ingest_events, against moto's SQS (redrive to a dead-letter queue) and the real database."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import psycopg
import pytest
from moto import mock_aws

from feedlocal.aws_local import create_queue_with_dead_letters, deliver_queue_batch
from tests.aws_events import REGION, CountingDown, sqs_event
from tests.conftest import SlowServer, load_function, use_database
from tests.factories import event, purchase

ingest = load_function("ingest_events")
MAX_RECEIVES = 3


@dataclass
class Queues:
    sqs: object
    url: str
    dlq_url: str


@pytest.fixture
def queues() -> Iterator[Queues]:
    """The ingestion queue with a redrive policy to its dead-letter queue, as template.yaml declares them."""
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url, dlq_url = create_queue_with_dead_letters(sqs, "ingest", max_receives=MAX_RECEIVES)
        yield Queues(sqs, url, dlq_url)


def deliver(queues: Queues) -> tuple[list[str], dict]:
    """What the Lambda SQS poller does (feedlocal's stand-in for it, also behind `feedctl moto`)."""
    return deliver_queue_batch(queues.sqs, queues.url, ingest.queue_handler, visibility_timeout_s=0)


def send(queues: Queues, body: str) -> str:
    return queues.sqs.send_message(QueueUrl=queues.url, MessageBody=body)["MessageId"]


def test_consumer_reports_exactly_the_failed_messages(queues: Queues, db: psycopg.Connection) -> None:
    good = [purchase("user-1", items=("milk",)), event("click", "user-2", item_id="eggs")]
    with_bad_event = [event("click", "user-3", item_id="milk"), event("click", "user-3", item_id="milk", quantity=1)]
    ok_id = send(queues, json.dumps({"events": good}))
    partly_bad_id = send(queues, json.dumps({"events": with_bad_event}))
    not_json_id = send(queues, "this is not json")
    all_bad_id = send(queues, json.dumps({"events": [{"type": "click"}]}))

    received, answer = deliver(queues)

    assert sorted(received) == sorted([ok_id, partly_bad_id, not_json_id, all_bad_id])
    assert sorted(f["itemIdentifier"] for f in answer["batchItemFailures"]) == sorted(
        [partly_bad_id, not_json_id, all_bad_id]
    )
    stored = {row[0] for row in db.execute("SELECT event_id::text FROM events")}
    # The valid event of the partly bad message is stored; its invalid one waits in the queue.
    assert stored == {good[0]["event_id"], good[1]["event_id"], with_bad_event[0]["event_id"]}


def test_poison_messages_reach_the_dead_letter_queue_and_valid_events_are_stored_once(
    queues: Queues, db: psycopg.Connection
) -> None:
    valid = event("click", "user-1", item_id="milk")
    send(queues, json.dumps({"events": [valid, event("hide", "user-1", item_id="eggs", colour="red")]}))
    send(queues, "{")

    for _ in range(MAX_RECEIVES + 1):
        deliver(queues)

    dead = queues.sqs.receive_message(QueueUrl=queues.dlq_url, MaxNumberOfMessages=10).get("Messages", [])
    assert sorted(message["Body"][:1] for message in dead) == ["{", "{"]
    assert len(dead) == 2
    assert queues.sqs.receive_message(QueueUrl=queues.url).get("Messages", []) == []
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 1  # redeliveries were duplicates


def test_database_outage_fails_the_message_and_redelivery_stores_it_once(
    queues: Queues, db: psycopg.Connection, database_url: str, tmp_path
) -> None:
    batch = [purchase("user-1", items=("milk",)), purchase("user-2", items=("eggs",))]
    message_id = send(queues, json.dumps({"events": batch}))
    use_database(f"postgresql:///postgres?host={tmp_path}&connect_timeout=1")

    _, answer = deliver(queues)
    assert answer["batchItemFailures"] == [{"itemIdentifier": message_id}]
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 0

    use_database(database_url)
    _, answer = deliver(queues)
    assert answer["batchItemFailures"] == []
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 2
    assert deliver(queues)[0] == []  # deleted after success


def test_a_database_that_does_not_answer_still_gets_every_message_reported_within_the_invocation(
    db: psycopg.Connection, database_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each message waits the connect timeout (1 s here, 5 s in the stack): ten of them outlasted the invocation,
    # which timed out without answering. Now the ones it has no time for are reported untried.
    monkeypatch.setenv("DB_CONNECT_TIMEOUT_S", "1")
    silent = SlowServer(database_url)
    silent.delay_s = 5
    bodies = [json.dumps({"events": [event("click", f"user-{n}", item_id="milk")]}) for n in range(10)]
    request = sqs_event(*bodies)
    try:
        use_database(silent.url)
        started = time.monotonic()
        answer = ingest.queue_handler(request, CountingDown(4))
        elapsed = time.monotonic() - started
    finally:
        silent.close()
        use_database(database_url)

    assert elapsed < 4, elapsed
    assert {f["itemIdentifier"] for f in answer["batchItemFailures"]} == {r["messageId"] for r in request["Records"]}
    untried = [r for r in caplog.records if "not tried" in r.getMessage()]
    assert 1 <= len(untried) <= 9 and {r.levelname for r in untried} == {"WARNING"}  # the first is always tried


def test_a_message_whose_statements_outlast_the_invocation_fails_before_it_ends(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each wait had its own bound (the statement timeout): a message of slow statements, 4 s here, outlived the 3 s
    # left of its invocation. Now its waits end 2 s before the invocation does: it fails, rolled back, and is reported.
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "10000")
    use_database(database_url)
    db.execute("CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS "
               "$$ BEGIN PERFORM pg_sleep(4); RETURN NULL; END $$")  # fmt: skip
    db.execute("CREATE TRIGGER slow_insert BEFORE INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION slow_insert()")
    request = sqs_event(json.dumps({"events": [event("click", "user-1", item_id="milk")]}))
    try:
        started = time.monotonic()
        answer = ingest.queue_handler(request, CountingDown(3))
        elapsed = time.monotonic() - started
    finally:
        db.execute("DROP FUNCTION slow_insert() CASCADE")

    assert elapsed < 1.5, elapsed
    assert answer == {"batchItemFailures": [{"itemIdentifier": request["Records"][0]["messageId"]}]}
    assert db.execute("SELECT count(*) FROM events").fetchone() == (0,)


def test_every_failed_message_is_logged_with_its_id_and_why(
    queues: Queues, db: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    not_json = send(queues, "this is not json")
    no_event_valid = send(queues, json.dumps({"events": [{"type": "zap"}]}))
    too_many = send(queues, json.dumps({"events": [event("click", "user-1", item_id="milk")] * 501}))
    partly_bad = send(queues, json.dumps({"events": [event("click", "user-2", item_id="milk"), {"type": "click"}]}))

    _, answer = deliver(queues)

    failed = {not_json, no_event_valid, too_many, partly_bad}
    assert {failure["itemIdentifier"] for failure in answer["batchItemFailures"]} == failed
    logged = {r.message_id: r for r in caplog.records if r.getMessage().startswith("queue message")}
    assert logged.keys() == failed
    assert {r.levelname for r in logged.values()} == {"WARNING"}
    assert [(e["field"], e["type"]) for e in logged[not_json].errors] == [("body", "json_invalid")]
    assert "all 1 events were rejected" in logged[no_event_valid].getMessage()
    assert logged[no_event_valid].rejections[0]["errors"][0]["field"] == "events[0].type"
    assert "501 events; at most 500" in logged[too_many].getMessage()
    assert "1 of 2 events rejected" in logged[partly_bad].getMessage()
    assert [r["index"] for r in logged[partly_bad].rejections] == [1]


def test_a_database_error_fails_only_its_message_which_is_logged_and_stored_once_redelivered(
    queues: Queues, db: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    # The database refuses one user's events (as a failing constraint or trigger would) while the batch runs.
    db.execute(
        """
        CREATE FUNCTION refuse_user_x() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.user_id = 'user-x' THEN RAISE EXCEPTION 'refused by the database'; END IF; RETURN NEW; END $$
        """
    )
    db.execute("CREATE TRIGGER refuse_user_x BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_user_x()")
    before = [event("click", "user-1", item_id="milk")]
    failing = [event("click", "user-2", item_id="milk"), event("click", "user-x", item_id="milk")]
    after = [event("click", "user-3", item_id="eggs")]
    send(queues, json.dumps({"events": before}))
    failing_id = send(queues, json.dumps({"events": failing}))
    send(queues, json.dumps({"events": after}))

    try:
        _, answer = deliver(queues)
    finally:
        db.execute("DROP TRIGGER refuse_user_x ON events")
        db.execute("DROP FUNCTION refuse_user_x()")

    assert answer["batchItemFailures"] == [{"itemIdentifier": failing_id}]
    stored = {row[0] for row in db.execute("SELECT user_id FROM events")}
    assert stored == {"user-1", "user-3"}  # the failing message's transaction stored nothing of it
    [logged] = [r for r in caplog.records if r.getMessage().startswith("queue message failed")]
    assert logged.levelname == "ERROR" and logged.message_id == failing_id
    assert "refused by the database" in str(logged.exc_info[1])

    _, answer = deliver(queues)
    assert answer["batchItemFailures"] == []
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 4
