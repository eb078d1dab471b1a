"""ingest_events invoked with API Gateway REST events against the real database."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from tests.aws_events import LambdaContext, api_gateway_rest_event, response_headers
from tests.conftest import load_function, use_database
from tests.factories import event, purchase

ingest = load_function("ingest_events")


def post_events(
    body: Any = None, raw_body: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], dict]:
    response = ingest.lambda_handler(
        api_gateway_rest_event(
            "POST", "/v1/events", resource="/v1/events", body=body, raw_body=raw_body, headers=headers
        ),
        LambdaContext(function_name="ingest_events"),
    )
    return response["statusCode"], response_headers(response), json.loads(response["body"])


def count(conn: psycopg.Connection, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_batch_is_stored_with_purchase_lines_and_users(db: psycopg.Connection) -> None:
    batch = [
        purchase("user-1", items=("milk", "eggs")),
        event("add_to_cart", "user-1", item_id="coffee", quantity=2),
        event("click", "user-2", item_id="milk", feed_id="f1", section="trending", position=3),
        event("impression", "user-2", item_id="eggs", feed_id="f1", section="trending", position=4),
        event("hide", "user-2", item_id="wine"),
    ]
    status, _, body = post_events({"events": batch})

    assert status == 200
    assert body == {"received": 5, "accepted": 5, "duplicates": 0}
    assert count(db, "events") == 5
    lines = db.execute("SELECT item_id, quantity FROM purchase_lines ORDER BY line_no").fetchall()
    assert lines == [("milk", 1), ("eggs", 1)]
    assert db.execute("SELECT feed_id, section, position FROM events WHERE event_type = 'click'").fetchone() == (
        "f1",
        "trending",
        3,
    )
    assert {row[0] for row in db.execute("SELECT user_id FROM users")} == {"user-1", "user-2"}


def test_same_batch_twice_is_stored_once(db: psycopg.Connection) -> None:
    batch = {"events": [purchase("user-1", items=("milk", "eggs")), event("click", item_id="coffee")]}

    first = post_events(batch)
    second = post_events(batch)

    assert first[2] == {"received": 2, "accepted": 2, "duplicates": 0}
    assert second[0] == 200
    assert second[2] == {"received": 2, "accepted": 0, "duplicates": 2}
    assert count(db, "events") == 2
    assert count(db, "purchase_lines") == 2


def test_event_repeated_inside_one_batch_is_stored_once(db: psycopg.Connection) -> None:
    repeated = purchase("user-1", items=("milk",))
    status, _, body = post_events({"events": [repeated, repeated, event("click", item_id="eggs")]})

    assert status == 200
    assert body == {"received": 3, "accepted": 2, "duplicates": 1}
    assert count(db, "purchase_lines") == 1


@pytest.mark.parametrize(
    ("raw_body", "status", "field"),
    [
        ('{"events": [', 400, "body"),
        ("not json at all", 400, "body"),
        (json.dumps({"events": [event("teleport", item_id="milk")]}), 422, "events[0].type"),
        (
            json.dumps({"events": [{k: v for k, v in event("click", item_id="milk").items() if k != "user_id"}]}),
            422,
            "events[0].user_id",
        ),
        (json.dumps({"events": [event("click", item_id=42)]}), 422, "events[0].item_id"),
        (
            json.dumps({"events": [purchase(items=("milk",)) | {"items": [{"item_id": "milk", "quantity": -1}]}]}),
            422,
            "events[0].items[0].quantity",
        ),
        (
            json.dumps({"events": [event("click", item_id="milk", occurred_at="2026-11-26T10:00:00")]}),
            422,
            "events[0].occurred_at",
        ),
        (json.dumps({"events": [event("click", item_id="x" * 10_000)]}), 422, "events[0].item_id"),
        (json.dumps({"events": []}), 422, "events"),
        (json.dumps({"events": "everything"}), 422, "events"),
        (json.dumps({"wrong": []}), 422, "events"),
    ],
    ids=[
        "truncated-json",
        "not-json",
        "unknown-type",
        "missing-user",
        "wrong-type",
        "negative-quantity",
        "naive-timestamp",
        "huge-string",
        "empty-batch",
        "events-not-a-list",
        "missing-events",
    ],
)
def test_bad_input_gets_problem_json_naming_the_field(
    db: psycopg.Connection, raw_body: str, status: int, field: str
) -> None:
    got_status, headers, body = post_events(raw_body=raw_body)

    assert got_status == status
    assert headers["Content-Type"] == "application/problem+json"
    assert body["status"] == status
    assert field in {error["field"] for error in body["errors"]}, body
    assert count(db, "events") == 0


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data", "APPLICATION/JSON"]
)
def test_body_that_is_not_json_gets_415(db: psycopg.Connection, content_type: str) -> None:
    batch = json.dumps({"events": [purchase("user-1")]})
    status, headers, body = post_events(raw_body=batch, headers={"Content-Type": content_type})

    assert status == 415
    assert headers["Content-Type"] == "application/problem+json"
    assert body["errors"][0]["field"] == "content-type"
    assert count(db, "events") == 0


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", None])
def test_json_body_with_charset_or_without_content_type_is_read(db: psycopg.Connection, content_type) -> None:
    batch = json.dumps({"events": [purchase("user-1")]})
    headers = {"Content-Type": content_type} if content_type else {}
    event = api_gateway_rest_event("POST", "/v1/events", resource="/v1/events", raw_body=batch, headers=headers)
    if content_type is None:
        del event["headers"]["Content-Type"], event["multiValueHeaders"]["Content-Type"]

    response = ingest.lambda_handler(event, LambdaContext())

    assert response["statusCode"] == 200, response["body"]
    assert count(db, "events") == 1


def test_batch_over_the_limit_is_rejected_whole(db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_MAX_EVENTS_PER_BATCH", "2")
    use_database(db.info.dsn)
    status, headers, body = post_events({"events": [event("click", item_id="milk") for _ in range(3)]})

    assert status == 413
    assert headers["Content-Type"] == "application/problem+json"
    assert body["limit"] == 2
    assert count(db, "events") == 0


def test_unreachable_database_gives_retryable_503_and_retry_stores_once(
    db: psycopg.Connection, database_url: str, tmp_path
) -> None:
    batch = {"events": [purchase("user-1", items=("milk",))]}
    # A socket directory where no server listens: the connection attempt fails at once.
    use_database(f"postgresql:///postgres?host={tmp_path}&connect_timeout=1")

    status, headers, body = post_events(batch)

    assert status == 503
    assert headers["Retry-After"] == "2"
    assert body["status"] == 503
    assert count(db, "events") == 0

    use_database(database_url)
    assert post_events(batch)[2] == {"received": 1, "accepted": 1, "duplicates": 0}
    assert post_events(batch)[2] == {"received": 1, "accepted": 0, "duplicates": 1}
    assert count(db, "events") == 1


def test_unknown_route_is_a_problem_json_404(db: psycopg.Connection) -> None:
    response = ingest.lambda_handler(
        api_gateway_rest_event("GET", "/v1/nothing", resource="/v1/nothing"), LambdaContext()
    )
    assert response["statusCode"] == 404
    assert response_headers(response)["Content-Type"] == "application/problem+json"
