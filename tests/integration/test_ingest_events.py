"""ingest_events invoked with API Gateway REST events against the real database."""

from __future__ import annotations

import base64
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import ModuleType
from typing import Any

import psycopg
import pytest

from feedcore.api.event_fast_path import usual_event_batch
from feedcore.api.models import Problem
from feedcore.db.connection import reset_cached_connection
from tests.aws_events import SERVICE_CLAIMS, LambdaContext, api_gateway_rest_event, response_headers
from tests.conftest import load_function, silent_server, use_database
from tests.factories import BAD_INPUT, BAD_INPUT_IDS, NOW, create_catalog, event, purchase

ingest = load_function("ingest_events")


def post_events(
    body: Any = None,
    raw_body: str | None = None,
    headers: dict[str, str] | None = None,
    base64_encoded: bool = False,
    function: ModuleType = ingest,
) -> tuple[int, dict[str, str], dict]:
    # Sent by a service identity, so one batch may hold several users' events (tests/integration/
    # test_authorization.py covers users sending their own).
    request = api_gateway_rest_event(
        "POST",
        "/v1/events",
        resource="/v1/events",
        body=body,
        raw_body=raw_body,
        headers=headers,
        claims=SERVICE_CLAIMS,
    )
    request["isBase64Encoded"] = base64_encoded
    response = function.lambda_handler(request, LambdaContext(function_name="ingest_events"))
    return response["statusCode"], response_headers(response), json.loads(response["body"])


def count(conn: psycopg.Connection, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_batch_is_stored_with_purchase_lines_and_tracking(db: psycopg.Connection) -> None:
    create_catalog(db)
    batch = [
        purchase("user-1", items=("milk", "eggs")),
        event("add_to_cart", "user-1", item_id="coffee", quantity=2),
        event("remove_from_cart", "user-1", item_id="coffee", quantity=1),
        event("click", "user-2", item_id="milk", feed_id="f1", section="trending", position=3),
        event("impression", "user-2", item_id="eggs", feed_id="f1", section="trending", position=4),
        event("hide", "user-2", item_id="wine"),
    ]
    status, _, body = post_events({"events": batch})

    assert status == 200
    assert body == {
        "received": 6, "accepted": 6, "duplicates": 0, "rejected": 0, "unknown_items": 0,
        "duplicate_indexes": [], "rejections": [],
    }  # fmt: skip
    assert count(db, "events") == 6
    assert db.execute(
        "SELECT line_item_ids, line_quantities, line_unit_prices::float8[] FROM events WHERE event_type = 'purchase'"
    ).fetchone() == (["milk", "eggs"], [1, 1], [1.5, 1.5])
    assert db.execute("SELECT quantity FROM events WHERE event_type = 'add_to_cart'").fetchone() == (2,)
    assert db.execute("SELECT feed_id, section, position FROM events WHERE event_type = 'click'").fetchone() == (
        "f1",
        "trending",
        3,
    )


def test_same_batch_twice_is_stored_once_and_reported_as_duplicates(db: psycopg.Connection) -> None:
    batch = {"events": [purchase("user-1", items=("milk", "eggs")), event("click", item_id="coffee")]}

    first = post_events(batch)
    second = post_events(batch)

    assert (first[2]["accepted"], first[2]["duplicates"]) == (2, 0)
    assert second[0] == 200
    assert (second[2]["accepted"], second[2]["duplicates"], second[2]["duplicate_indexes"]) == (0, 2, [0, 1])
    assert count(db, "events") == 2


def test_batch_holding_stored_and_new_events_stores_only_the_new_ones(db: psycopg.Connection) -> None:
    stored_before = purchase("user-1", items=("milk", "eggs"))
    post_events({"events": [stored_before]})
    new = [event("click", item_id="coffee"), purchase("user-2", items=("eggs",))]

    _, _, body = post_events({"events": [new[0], stored_before, new[1]]})

    assert (body["accepted"], body["duplicates"], body["duplicate_indexes"]) == (2, 1, [1])
    rows = db.execute("SELECT event_id::text, line_item_ids FROM events ORDER BY received_at, event_id").fetchall()
    assert {event_id for event_id, _ in rows} == {stored_before["event_id"], new[0]["event_id"], new[1]["event_id"]}
    assert dict(rows)[new[1]["event_id"]] == ["eggs"]


def test_rows_are_the_same_whether_stored_by_copy_or_after_a_duplicate(db: psycopg.Connection) -> None:
    # A new batch goes by COPY; one holding a stored event_id goes again by INSERT … ON CONFLICT.
    shapes = [
        purchase("user-1", items=("milk", "NULL", "eggs")),
        event("add_to_cart", "user-1", item_id="coffee", quantity=2, feed_id="f1", section="trending", position=0),
        event("click", "user-2", item_id="milk"),
        event("impression", "user-2", item_id="eggs", feed_id="f1", section="trending", position=4),
        event("hide", "user-2", item_id="wine"),
    ]
    shapes[0]["items"][1]["unit_price"] = 0.1
    by_copy = {"events": shapes}
    again = [shape | {"event_id": str(uuid.uuid4())} for shape in shapes]
    assert post_events(by_copy)[2]["accepted"] == 5
    assert post_events({"events": [shapes[0], *again]})[2]["accepted"] == 5

    columns = (
        "occurred_at, event_type, user_id, store_id, item_id, quantity, order_id, line_item_ids, line_quantities, "
        "line_unit_prices, feed_id, section, position"
    )
    rows = {event_id: row for event_id, *row in db.execute(f"SELECT event_id::text, {columns} FROM events").fetchall()}
    assert [rows[shape["event_id"]] for shape in shapes] == [rows[shape["event_id"]] for shape in again]
    assert rows[shapes[0]["event_id"]][7] == ["milk", "NULL", "eggs"]
    assert rows[shapes[0]["event_id"]][9] == [Decimal("1.50"), Decimal("0.10"), Decimal("1.50")]
    assert count(db, "event_ids") == 10


def test_event_repeated_inside_one_batch_is_stored_once(db: psycopg.Connection) -> None:
    repeated = purchase("user-1", items=("milk",))
    _, _, body = post_events({"events": [repeated, event("click", item_id="eggs"), repeated]})

    assert (body["accepted"], body["duplicates"], body["duplicate_indexes"]) == (2, 1, [2])
    assert count(db, "events") == 2


def test_same_event_id_with_another_timestamp_is_still_a_duplicate(db: psycopg.Connection) -> None:
    original = purchase("user-1", items=("milk",))
    post_events({"events": [original]})
    later = original | {"occurred_at": (NOW - timedelta(minutes=30)).isoformat()}

    _, _, body = post_events({"events": [later]})

    assert (body["accepted"], body["duplicates"]) == (0, 1)
    assert count(db, "events") == 1


def test_mixed_batch_stores_exactly_the_valid_events_and_reports_the_others(db: psycopg.Connection) -> None:
    valid = [purchase("user-1", items=("milk",)), event("click", "user-2", item_id="eggs")]
    invalid_quantity = purchase("user-3") | {"items": [{"item_id": "milk", "quantity": 0, "unit_price": 1}]}
    status, _, body = post_events(
        {"events": [valid[0], invalid_quantity, "not an event", valid[1], event("teleport", item_id="x")]}
    )

    assert status == 200
    assert (body["accepted"], body["rejected"]) == (2, 3)
    rejected = {r["index"]: r for r in body["rejections"]}
    assert set(rejected) == {1, 2, 4}
    assert rejected[1]["event_id"] == invalid_quantity["event_id"]
    assert {e["field"] for e in rejected[1]["errors"]} == {"events[1].items[0].quantity"}
    assert rejected[2]["errors"][0]["field"] == "events[2]"
    assert rejected[4]["errors"][0]["field"] == "events[4].type"
    stored = {row[0] for row in db.execute("SELECT event_id::text FROM events")}
    assert stored == {valid[0]["event_id"], valid[1]["event_id"]}


def test_a_well_formed_batch_with_events_the_service_rejects_stores_exactly_the_others(db: psycopg.Connection) -> None:
    # Read by the fast path (every event well formed), then screened event by event: outside the time window, an
    # item twice in one purchase, an offset PostgreSQL cannot read (stored, in UTC).
    valid = [purchase("user-1", items=("milk", "eggs")), event("click", "user-2", item_id="eggs")]
    too_old = event("click", "user-3", item_id="milk", at=NOW - timedelta(days=31))
    repeated_line = purchase("user-3", items=("milk", "milk"))
    far_offset = event(
        "hide", "user-4", item_id="milk", occurred_at=NOW.astimezone(timezone(timedelta(hours=18))).isoformat()
    )
    batch = {"events": [valid[0], too_old, repeated_line, valid[1], far_offset]}
    assert len(usual_event_batch(json.dumps(batch)).structs) == 5  # the fast path reads all five

    status, _, body = post_events(batch)

    assert (status, body["accepted"], body["rejected"]) == (200, 3, 2)
    assert {r["index"]: r["errors"][0]["type"] for r in body["rejections"]} == {1: "time_window", 2: "repeated_item"}
    rows = db.execute("SELECT event_id::text, occurred_at, line_item_ids FROM events").fetchall()
    stored = {event_id: (occurred_at, items) for event_id, occurred_at, items in rows}
    assert set(stored) == {valid[0]["event_id"], valid[1]["event_id"], far_offset["event_id"]}
    assert stored[valid[0]["event_id"]][1] == ["milk", "eggs"]
    assert stored[far_offset["event_id"]][0] == NOW


def test_items_unknown_to_the_catalog_are_accepted_and_counted(db: psycopg.Connection) -> None:
    create_catalog(db)
    _, _, body = post_events(
        {"events": [purchase("user-1", items=("milk", "mystery-1")), event("click", item_id="mystery-2")]}
    )
    assert (body["accepted"], body["unknown_items"]) == (2, 2)


def test_unknown_items_count_follows_the_catalog_and_ignores_duplicates(db: psycopg.Connection) -> None:
    create_catalog(db)
    known_then_unknown = [purchase("user-1", items=("milk", "mystery-1")), event("click", item_id="mystery-1")]
    assert post_events({"events": known_then_unknown})[2]["unknown_items"] == 2
    # A retry stores nothing new, so it counts nothing.
    assert post_events({"events": known_then_unknown})[2]["unknown_items"] == 0
    # Once the catalog has the item, new events naming it count as known, also for a container that had
    # looked it up before.
    db.execute(
        "INSERT INTO items (item_id, name, department, aisle, price) VALUES ('mystery-1', 'Mystery', 'Pantry', 'x', 1)"
    )
    body = post_events({"events": [event("click", item_id="mystery-1"), event("click", item_id="milk")]})[2]
    assert (body["accepted"], body["unknown_items"]) == (2, 0)


def test_unknown_items_count_holds_when_the_catalog_cache_starts_over(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_catalog(db)
    monkeypatch.setenv("INGEST_CATALOG_ITEM_CACHE_SIZE", "3")
    use_database(db.info.dsn)
    first = [event("click", item_id=item) for item in ("milk", "eggs", "coffee")]
    assert post_events({"events": first})[2]["unknown_items"] == 0
    # bananas does not fit: the cache starts over while milk, found before, is not looked up again.
    body = post_events({"events": [event("click", item_id="milk"), event("click", item_id="bananas")]})[2]
    assert (body["accepted"], body["unknown_items"]) == (2, 0)
    assert (
        post_events({"events": [event("click", item_id="milk"), event("click", item_id="x")]})[2]["unknown_items"] == 1
    )


def test_events_of_different_months_land_in_their_partitions(db: psycopg.Connection) -> None:
    month_start = NOW.replace(day=1, hour=0, minute=0, second=0)
    batch = [event("click", item_id="milk", at=month_start - timedelta(minutes=5)), event("click", item_id="milk")]
    if month_start > NOW - timedelta(minutes=10):  # only minutes into a month: both fall in the previous one
        batch = batch[:1]
    assert post_events({"events": batch})[2]["accepted"] == len(batch)

    partitions = {
        row[0]: row[1]
        for row in db.execute("SELECT tableoid::regclass::text, count(*) FROM events GROUP BY 1").fetchall()
    }
    assert partitions[f"events_{month_start - timedelta(days=1):%Y_%m}"] == 1
    assert sum(partitions.values()) == len(batch)


def test_racing_identical_batches_store_each_event_once(db: psycopg.Connection, database_url: str) -> None:
    batch = {"events": [purchase(f"user-{i}", items=("milk", "eggs")) for i in range(200)]}

    def post_from_own_container(_: int) -> dict:
        try:  # its own resolver and connection, like a separate Lambda container
            return post_events(batch, function=load_function("ingest_events"))[2]
        finally:
            reset_cached_connection()

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(post_from_own_container, range(6)))

    assert sum(r["accepted"] for r in results) == 200
    assert all(r["accepted"] + r["duplicates"] == 200 for r in results)
    assert count(db, "events") == 200


def test_overlapping_batches_in_opposite_orders_do_not_deadlock(db: psycopg.Connection) -> None:
    events = [event("click", f"user-{i}", item_id="milk") for i in range(300)]
    batches = [{"events": events}, {"events": events[::-1]}] * 4

    def post_from_own_container(batch: dict) -> int:
        try:
            return post_events(batch, function=load_function("ingest_events"))[0]
        finally:
            reset_cached_connection()

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(post_from_own_container, batches))

    assert statuses == [200] * 8
    assert count(db, "events") == 300


@pytest.mark.parametrize(("raw_body", "status", "field"), BAD_INPUT, ids=BAD_INPUT_IDS)
def test_bad_input_gets_a_problem_json_4xx_naming_the_field(
    db: psycopg.Connection, raw_body: str, status: int, field: str
) -> None:
    got_status, headers, body = post_events(raw_body=raw_body)

    assert got_status == status, body
    assert headers["Content-Type"] == "application/problem+json"
    assert Problem.model_validate(body).status == status  # the document the OpenAPI document publishes
    assert body["detail"]
    assert field in {error["field"] for error in body["errors"]}, body
    assert count(db, "events") == 0


@pytest.mark.parametrize(
    "encoded_body",
    [base64.b64encode(b'{"events": [{"user_id": "\xff\xfe"}]}').decode(), "%%% not base64 %%%"],
    ids=["non-utf8", "invalid-base64"],
)
def test_body_that_is_not_utf8_text_gets_400(db: psycopg.Connection, encoded_body: str) -> None:
    status, headers, body = post_events(raw_body=encoded_body, base64_encoded=True)

    assert status == 400
    assert headers["Content-Type"] == "application/problem+json"
    assert body["errors"][0]["field"] == "body"


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data", "application/jsonl"]
)
def test_body_that_is_not_json_gets_415(db: psycopg.Connection, content_type: str) -> None:
    batch = json.dumps({"events": [purchase("user-1")]})
    status, headers, body = post_events(raw_body=batch, headers={"Content-Type": content_type})

    assert status == 415
    assert headers["Content-Type"] == "application/problem+json"
    assert body["errors"][0]["field"] == "content-type"
    assert count(db, "events") == 0


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON", None])
def test_json_body_with_charset_or_without_content_type_is_read(db: psycopg.Connection, content_type) -> None:
    batch = json.dumps({"events": [purchase("user-1")]})
    headers = {"Content-Type": content_type} if content_type else {}
    request = api_gateway_rest_event(
        "POST", "/v1/events", resource="/v1/events", raw_body=batch, headers=headers, claims=SERVICE_CLAIMS
    )
    if content_type is None:
        del request["headers"]["Content-Type"], request["multiValueHeaders"]["Content-Type"]

    response = ingest.lambda_handler(request, LambdaContext())

    assert response["statusCode"] == 200, response["body"]
    assert count(db, "events") == 1


def test_batch_over_the_configured_limit_is_rejected_whole(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INGEST_MAX_EVENTS_PER_BATCH", "2")
    use_database(db.info.dsn)
    status, headers, body = post_events({"events": [event("click", item_id="milk") for _ in range(3)]})

    assert status == 413
    assert headers["Content-Type"] == "application/problem+json"
    assert body["limit"] == 2
    assert body["errors"][0]["field"] == "events"
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
    assert post_events(batch)[2]["accepted"] == 1
    assert post_events(batch)[2]["duplicates"] == 1
    assert count(db, "events") == 1


def test_a_database_that_stops_answering_gives_503_and_the_retry_stores_each_event_once(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = {"events": [purchase("user-1", items=("milk",)), event("click", item_id="eggs")]}
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "200")  # the client waits for an answer up to 0.2 + 1 s
    use_database(database_url)
    with silent_server():
        status, headers, body = post_events(batch)

    assert (status, headers["Retry-After"], body["status"]) == (503, "2", 503)
    retried = post_events(batch)[2]
    assert retried["accepted"] + retried["duplicates"] == 2  # whatever the stopped server did when it went on
    assert count(db, "events") == 2


def test_a_database_that_cannot_write_gives_503_and_the_retry_stores_each_event_once(
    db: psycopg.Connection, database_url: str
) -> None:
    batch = {"events": [purchase("user-1", items=("milk",)), event("click", item_id="eggs")]}
    database = db.info.dbname
    db.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')  # a replica, a demoted writer
    try:
        use_database(database_url)  # a new connection, which takes the setting
        status, headers, body = post_events(batch)
    finally:
        db.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')

    assert (status, headers["Retry-After"], body["status"]) == (503, "2", 503)
    assert count(db, "events") == 0
    use_database(database_url)
    assert post_events(batch)[2]["accepted"] == 2
    assert count(db, "events") == 2


# What Lambda returns of a synchronous invocation: past it API Gateway answers 502.
LAMBDA_RESPONSE_LIMIT_BYTES = 6 * 1024 * 1024
BODY_LIMIT_BYTES = 1024 * 1024


def batch_within_the_body_limit(make_event: Any) -> str:
    """As many events from `make_event()` as a body within the limit holds (at most the 500 of a batch)."""
    each = len(json.dumps(make_event())) + len(", ")  # the events it makes are all of one size
    fitting = (BODY_LIMIT_BYTES - len(json.dumps({"events": []}))) // each
    body = json.dumps({"events": [make_event() for _ in range(min(500, fitting))]})
    assert len(body) <= BODY_LIMIT_BYTES
    return body


def one_event_within_the_body_limit(**fields: Any) -> str:
    """One click whose `fields` fill the body up to its limit in non-ASCII text (2 bytes a character in the
    body, 6 as a JSON escape in an answer)."""
    body = json.dumps({"events": [event("click", item_id="milk") | fields]}, ensure_ascii=False)
    assert len(body.encode()) <= BODY_LIMIT_BYTES
    return body


def purchase_of_lines_in_tenths_of_cents() -> dict[str, Any]:
    lines = [{"item_id": f"i{n}", "unit_price": 0.001} for n in range(200)]
    return purchase() | {"items": lines}


@pytest.mark.parametrize(
    ("raw_body", "field", "listed", "longest"),
    [
        (batch_within_the_body_limit(lambda: event("click", item_id="milk") | {f"k{n}": 1 for n in range(2000)}),
         "events[0].k0", 10, len("Extra inputs are not permitted")),
        (batch_within_the_body_limit(purchase_of_lines_in_tenths_of_cents), "events[0].items[0].unit_price", 10, None),
        (one_event_within_the_body_limit(**{"é" * 500_000: 1}), "events[0].", 1, 200),
        (one_event_within_the_body_limit(type="é" * 500_000), "events[0].type", 1, 200),
    ],
    ids=["2000-unknown-fields-an-event", "200-bad-prices-a-purchase", "a-500k-character-key", "a-500k-character-type"],
)  # fmt: skip
def test_an_answer_naming_every_wrong_field_of_a_body_within_the_limit_fits_a_lambda_response(
    db: psycopg.Connection, raw_body: str, field: str, listed: int, longest: int | None
) -> None:
    request = api_gateway_rest_event(
        "POST", "/v1/events", resource="/v1/events", raw_body=raw_body, claims=SERVICE_CLAIMS
    )

    response = ingest.lambda_handler(request, LambdaContext(function_name="ingest_events"))

    assert len(json.dumps(response).encode()) <= LAMBDA_RESPONSE_LIMIT_BYTES
    body = json.loads(response["body"])
    assert response["statusCode"] == 422, body
    assert body["rejections"][0]["errors"][0]["field"].startswith(field)
    # the first 10 errors of the batch and of each event, each text at most 200 characters
    assert len(body["errors"]) == len(body["rejections"][0]["errors"]) == listed
    texts = [text for error in body["errors"] for text in (error["field"], error["message"])]
    assert max(len(text) for text in texts) == (longest or max(len(text) for text in texts)) <= 200
    assert count(db, "events") == 0


def test_unknown_route_is_a_problem_json_404(db: psycopg.Connection) -> None:
    response = ingest.lambda_handler(
        api_gateway_rest_event("GET", "/v1/nothing", resource="/v1/nothing", claims=SERVICE_CLAIMS), LambdaContext()
    )
    assert response["statusCode"] == 404
    assert response_headers(response)["Content-Type"] == "application/problem+json"


def test_a_partition_dropped_behind_the_process_back_is_made_again(db: psycopg.Connection) -> None:
    assert post_events({"events": [event("click", item_id="milk")]})[0] == 200
    db.execute(f"DROP TABLE events_{NOW:%Y_%m}")  # the process still believes it exists

    status, _, body = post_events({"events": [event("click", item_id="eggs")]})

    assert (status, body["accepted"]) == (200, 1)
    assert count(db, "events") == 1


def test_instants_are_stored_as_the_fast_path_reads_them_in_every_spelling(db: psycopg.Connection) -> None:
    # The fast path hands each instant to COPY as the client wrote it: PostgreSQL must read the same instant.
    at = NOW.replace(microsecond=123_456)
    spellings = [
        at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        at.strftime("%Y-%m-%dT%H:%M:%S.%f-00:00"),
        at.astimezone(timezone(timedelta(hours=-3))).isoformat(),
        at.astimezone(timezone(timedelta(hours=15, minutes=59))).isoformat(),
        at.replace(microsecond=500_000).strftime("%Y-%m-%dT%H:%M:%S.5Z"),
        at.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ"),
    ]
    events = [event("click", item_id="milk", occurred_at=spelling) for spelling in spellings]
    assert usual_event_batch(json.dumps({"events": events})) is not None  # the path under test

    assert post_events({"events": events})[2]["accepted"] == len(spellings)
    stored = dict(db.execute("SELECT event_id::text, occurred_at FROM events").fetchall())
    assert [stored[e["event_id"]] for e in events] == [datetime.fromisoformat(s) for s in spellings]


def test_a_connection_the_server_dropped_between_batches_is_replaced_and_the_batch_stored_once(
    db: psycopg.Connection,
) -> None:
    assert post_events({"events": [event("click", item_id="milk")]})[2]["accepted"] == 1
    db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'feed-assembly'")
    batch = {"events": [purchase("user-1", items=("milk", "eggs")), event("click", item_id="eggs")]}

    status, _, body = post_events(batch)

    assert (status, body["accepted"]) == (200, 2)
    assert post_events(batch)[2]["duplicates"] == 2
    assert (count(db, "events"), count(db, "event_ids")) == (3, 3)


@pytest.mark.parametrize(
    ("hours", "minutes"),
    [(18, 0), (-23, -59), (16, 0), (15, 59), (5, 30), (-9, 0)],  # beyond PostgreSQL's ±15:59, then within it
)
def test_any_offset_python_accepts_is_stored_as_the_same_instant(
    db: psycopg.Connection, hours: int, minutes: int
) -> None:
    offset = timedelta(hours=hours, minutes=minutes)
    local = (NOW + offset).replace(tzinfo=timezone(offset)).isoformat()
    status, _, body = post_events({"events": [event("click", item_id="milk", occurred_at=local)]})

    assert (status, body["accepted"]) == (200, 1)
    assert db.execute("SELECT occurred_at FROM events").fetchone() == (NOW,)


def emf_metrics(capsys: pytest.CaptureFixture[str]) -> dict[str, list[float]]:
    """The metrics of the EMF records printed since the last call: name → values, and each name's unit."""
    values: dict[str, list[float]] = {}
    for line in capsys.readouterr().out.splitlines():
        if line.startswith('{"_aws"'):
            record = json.loads(line)
            for directive in record["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    values.setdefault(f"{metric['Name']}/{metric['Unit']}", []).extend(record[metric["Name"]])
    return values


def test_a_batch_reports_its_counts_and_latency_as_metrics(
    db: psycopg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    sent_before = event("click", "user-1", item_id="milk")
    post_events({"events": [sent_before]})
    capsys.readouterr()
    invalid = event("add_to_cart", "user-2", item_id="eggs", quantity=0)

    batch = [purchase("user-1", items=("milk",)), sent_before, invalid, event("click", "user-2", item_id="eggs")]

    status, _, body = post_events({"events": batch})
    metrics = emf_metrics(capsys)

    assert (status, body["accepted"], body["duplicates"], body["rejected"]) == (200, 2, 1, 1)
    assert {name: values for name, values in metrics.items() if name.startswith("Events")} == {
        "EventsAccepted/Count": [2.0], "EventsDuplicate/Count": [1.0], "EventsRejected/Count": [1.0],
    }  # fmt: skip
    (latency,) = metrics["IngestBatchLatency/Milliseconds"]
    assert 0 < latency < 10_000


def test_a_batch_with_no_valid_event_reports_only_its_rejections(
    db: psycopg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    invalid = [event("teleport", item_id="milk"), event("add_to_cart", item_id="eggs", quantity=0), "not an event"]

    status, _, body = post_events({"events": invalid})
    metrics = emf_metrics(capsys)

    assert (status, len(body["rejections"])) == (422, 3)
    assert metrics == {"EventsRejected/Count": [3.0]}  # nothing was stored: no accepted, duplicate or latency
    assert count(db, "events") == 0
