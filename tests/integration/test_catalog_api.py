"""Admin routes of ingest_events: catalog upserts, store availability and user erasure."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import sql

from feedcore import settings
from feedcore.api.catalog_models import UserDeletion
from feedcore.api.models import Problem
from feedcore.api.resolvers import local_resolver
from feedcore.db.connection import confirm_sent
from feedcore.db.models import ERASURE_LOCK_KEY
from feedcore.db.scores import RECOMPUTE_LOCK_KEY
from feedcore.errors import ConfigurationError, ErasureBusy
from feedcore.ingestion.privacy import delete_user
from feedcore.scoring.service import RecomputeRequest, recompute_scores
from tests.aws_events import SERVICE_CLAIMS, LambdaContext, api_gateway_rest_event, response_headers
from tests.conftest import load_function, use_database, wait_until_blocked_by
from tests.factories import STORE, create_catalog, event, purchase, record
from tests.integration.test_assemble_feed import get_feed

ingest = load_function("ingest_events")

MILK = {"item_id": "milk", "name": "Whole Milk 1 gal", "department": "Dairy & Eggs", "aisle": "Milk",
        "brand": "Dairy Farm", "price": 3.49, "tags": ["organic"]}  # fmt: skip


def call(method: str, path: str, resource: str, body: Any = None, **path_parameters: str) -> tuple[int, dict, dict]:
    response = ingest.lambda_handler(
        api_gateway_rest_event(
            method, path, resource=resource, body=body, path_parameters=path_parameters or None, claims=SERVICE_CLAIMS
        ),
        LambdaContext(function_name="ingest_events"),
    )
    return response["statusCode"], response_headers(response), json.loads(response["body"])


def put_items(items: list[dict]) -> tuple[int, dict, dict]:
    return call("PUT", "/v1/items", "/v1/items", {"items": items})


def put_availability(store_id: str, body: dict) -> tuple[int, dict, dict]:
    path = f"/v1/stores/{store_id}/availability"
    return call("PUT", path, "/v1/stores/{store_id}/availability", body, store_id=store_id)


def test_items_are_inserted_then_updated(db: psycopg.Connection) -> None:
    assert put_items([MILK, MILK | {"item_id": "eggs", "name": "Eggs 12 ct", "tags": []}])[2] == {"upserted": 2}
    status, _, body = put_items([MILK | {"price": 2.99, "active": False}])

    assert (status, body) == (200, {"upserted": 1})
    rows = db.execute("SELECT item_id, price::float8, active, tags FROM items ORDER BY item_id").fetchall()
    assert rows == [("eggs", 3.49, True, []), ("milk", 2.99, False, ["organic"])]


def test_tags_are_stored_in_lower_case(db: psycopg.Connection) -> None:
    # so that the feed's exclude_tags, lowered too, leaves them out whatever case either was written in
    assert put_items([MILK | {"tags": ["Organic", "GLUTEN-free", "local_2"]}])[0] == 200

    assert db.execute("SELECT tags FROM items").fetchone() == (["organic", "gluten-free", "local_2"],)


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([MILK | {"price": -1}], "items[0].price"),
        ([MILK | {"price": 1.001}], "items[0].price"),
        ([{k: v for k, v in MILK.items() if k != "name"}], "items[0].name"),
        ([MILK, MILK], "items"),
        ([MILK | {"name": "Milk\u0000"}], "items[0].name"),
        ([MILK | {"tags": ["a\u0000"]}], "items[0].tags[0]"),
        ([MILK | {"tags": ["organic", "gluten free"]}], "items[0].tags[1]"),
        ([], "items"),
    ],
    ids=[
        "negative-price",
        "fractional-cents",
        "missing-name",
        "repeated-item",
        "nul-in-name",
        "nul-in-tag",
        "tag-not-excludable",
        "empty",
    ],  # fmt: skip
)
def test_invalid_items_change_nothing(db: psycopg.Connection, items: list[dict], field: str) -> None:
    status, headers, body = put_items(items)

    assert status == 422
    assert headers["Content-Type"] == "application/problem+json"
    assert field in {error["field"] for error in body["errors"]}
    assert db.execute("SELECT count(*) FROM items").fetchone()[0] == 0


def test_availability_sets_what_a_new_store_sells_and_at_what_price(db: psycopg.Connection) -> None:
    put_items([MILK, MILK | {"item_id": "eggs", "name": "Eggs"}])
    status, _, body = put_availability(
        "store-9", {"store_name": "Ninth Street", "items": [{"item_id": "milk", "price": 3.19}, {"item_id": "eggs"}]}
    )
    put_availability("store-9", {"items": [{"item_id": "eggs", "available": False}]})

    assert (status, body) == (200, {"upserted": 2})
    assert db.execute("SELECT name FROM stores WHERE store_id = 'store-9'").fetchone() == ("Ninth Street",)
    rows = db.execute("SELECT item_id, available, price::float8 FROM store_availability ORDER BY item_id").fetchall()
    assert rows == [("eggs", False, None), ("milk", True, 3.19)]


def test_availability_of_items_missing_from_the_catalog_is_refused_whole(db: psycopg.Connection) -> None:
    put_items([MILK])
    status, _, body = put_availability("store-9", {"items": [{"item_id": "milk"}, {"item_id": "caviar"}]})

    assert status == 422
    assert [error["field"] for error in body["errors"]] == ["items[1].item_id"]
    assert db.execute("SELECT count(*) FROM store_availability").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM stores").fetchone()[0] == 0


def test_an_availability_update_of_many_unknown_items_names_the_first_ten(db: psycopg.Connection) -> None:
    put_items([MILK])
    status, _, body = put_availability("store-9", {"items": [{"item_id": f"caviar-{n}"} for n in range(25)]})

    assert (status, body["detail"]) == (422, "25 items are not in the catalog; nothing was changed")
    assert [error["field"] for error in body["errors"]] == [f"items[{n}].item_id" for n in range(10)]


def test_user_deletion_leaves_nothing_of_the_user_and_can_be_repeated(db: psycopg.Connection) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("milk", "eggs")), event("hide", "user-1", item_id="wine"),
           purchase("user-2", items=("milk",)))  # fmt: skip
    recompute_scores(RecomputeRequest())
    db.execute("INSERT INTO model_scores VALUES ('picked_for_you', 'user-1', 'milk', 0.9)")
    # An aisle row as code from before migration 0096 writes it (this code stores none).
    db.execute("INSERT INTO user_category_affinity VALUES ('user-1', 'aisle', 'Milk', 5, now())")

    status, _, body = call("DELETE", "/v1/users/user-1", "/v1/users/{user_id}", user_id="user-1")
    again = call("DELETE", "/v1/users/user-1", "/v1/users/{user_id}", user_id="user-1")

    # Scores: milk, eggs and wine; the orders; one model score; the aisle row older code wrote.
    assert (status, body) == (200, {"user_id": "user-1", "events_deleted": 2, "scores_deleted": 6})
    assert again[:1] == (200,) and again[2]["events_deleted"] == 0
    for table in ("events", "user_item_affinity", "user_category_affinity", "user_orders", "model_scores", "users"):
        remaining = db.execute(f"SELECT count(*) FROM {table} WHERE user_id = 'user-1'").fetchone()[0]
        assert remaining == 0, table
    assert db.execute("SELECT count(*) FROM events WHERE user_id = 'user-2'").fetchone()[0] == 1


def test_an_erasure_waits_for_a_running_score_run_longer_than_a_request_then_answers_503(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("milk",)))
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "300")
    monkeypatch.setenv("INGEST_ERASURE_WAIT_MS", "1500")
    use_database(database_url)
    delete = ("DELETE", "/v1/users/user-1", "/v1/users/{user_id}")

    with psycopg.connect(database_url) as run_in_progress:  # a recompute chunk holds the lock
        run_in_progress.execute("SELECT pg_advisory_xact_lock(%s)", (RECOMPUTE_LOCK_KEY,))
        started = time.monotonic()
        status, headers, problem = call(*delete, user_id="user-1")
        waited = time.monotonic() - started
        # The run ends while a second erasure waits for it (once it waits: whatever the machine's speed).
        run_ends = threading.Thread(target=lambda: (wait_until_blocked_by(run_in_progress), run_in_progress.commit()))
        run_ends.start()
        after_the_run = call(*delete, user_id="user-1")
        run_ends.join()

    assert (status, headers["Retry-After"]) == (503, "30")
    # It waited its INGEST_ERASURE_WAIT_MS, more than a request's 300 ms statement timeout, and gave up well before the
    # default wait (5 s): the bound is the setting.
    assert "score recomputation" in problem["detail"] and 1.5 <= waited < 5
    assert after_the_run[:1] == (200,) and after_the_run[2]["events_deleted"] == 1
    assert db.execute("SELECT count(*) FROM events WHERE user_id = 'user-1'").fetchone()[0] == 0


@contextmanager
def slow_deletes(db: psycopg.Connection, seconds: float, *tables: str) -> Iterator[None]:
    """Each DELETE on `tables` takes `seconds` longer (a trigger), as a user of millions of rows does."""
    db.execute(
        sql.SQL("CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS {}").format(
            sql.Literal(f"BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END")
        )
    )
    for table in tables:
        db.execute(sql.SQL("CREATE TRIGGER slow_delete BEFORE DELETE ON {} FOR EACH STATEMENT "
                           "EXECUTE FUNCTION slow_delete()").format(sql.Identifier(table)))  # fmt: skip
    try:
        yield
    finally:
        db.execute("DROP FUNCTION slow_delete() CASCADE")


def test_the_erasure_of_a_user_whose_events_take_longer_than_a_statement_timeout_to_delete_succeeds(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user of millions of events takes seconds to delete (2,000,000 events, 3 s, past the stack's 2 s statement
    # timeout); bound by the statement timeout, their erasure answered 503 at every retry. A trigger stands in for
    # the slow delete.
    record(*[event("impression", "heavy", item_id="milk", feed_id="f1", section="trending", position=n)
             for n in range(3)])  # fmt: skip
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "200")
    use_database(database_url)
    with slow_deletes(db, 0.5, "events"):
        status, _, deletion = call("DELETE", "/v1/users/heavy", "/v1/users/{user_id}", user_id="heavy")

    assert (status, deletion.get("events_deleted")) == (200, 3), deletion
    assert db.execute("SELECT count(*) FROM events WHERE user_id = 'heavy'").fetchone() == (0,)


def test_an_erasure_ends_within_its_timeout_in_all_and_then_answers_503_having_deleted_nothing(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The timeout bounded each statement, not the erasure: three deletes of 0.7 s each under a 1 s limit answered 200
    # after 2.1 s (the function's 10 s timeout would be passed the same way by slow deletes under the 8 s default).
    create_catalog(db)
    record(purchase("user-1", items=("milk",)))
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "200")
    monkeypatch.setenv("INGEST_ERASURE_WAIT_MS", "500")
    monkeypatch.setenv("INGEST_ERASURE_TIMEOUT_MS", "1000")
    use_database(database_url)

    with slow_deletes(db, 0.7, "events", "user_item_affinity", "feeds"):
        started = time.monotonic()
        status, headers, problem = call("DELETE", "/v1/users/user-1", "/v1/users/{user_id}", user_id="user-1")
        took = time.monotonic() - started

    assert (status, headers["Retry-After"]) == (503, "30"), problem
    assert "did not finish within 1000 ms; nothing was deleted" in problem["detail"]
    assert took < 1.4, took
    assert db.execute("SELECT count(*) FROM events WHERE user_id = 'user-1'").fetchone() == (1,)


def test_an_erasure_ends_before_the_invocation_does(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With 1.6 s of the invocation left, the default 8 s would outlive it: the erasure keeps 1 s of it to answer.
    create_catalog(db)
    record(purchase("user-1", items=("milk",)))
    use_database(database_url)
    event = api_gateway_rest_event("DELETE", "/v1/users/user-1", resource="/v1/users/{user_id}",
                                   path_parameters={"user_id": "user-1"}, claims=SERVICE_CLAIMS)  # fmt: skip

    with slow_deletes(db, 2, "events"):
        started = time.monotonic()
        response = ingest.lambda_handler(event, LambdaContext(function_name="ingest_events", remaining_time_ms=1600))
        took = time.monotonic() - started

    assert response["statusCode"] == 503 and "within 600 ms" in json.loads(response["body"])["detail"]
    assert took < 1.2, took
    assert db.execute("SELECT count(*) FROM events WHERE user_id = 'user-1'").fetchone() == (1,)


def test_erasure_settings_whose_waits_leave_the_deletes_less_than_a_statement_timeout_are_refused(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "2000")
    monkeypatch.setenv("INGEST_ERASURE_WAIT_MS", "7000")
    use_database(database_url)

    refused = (
        r"^INGEST_ERASURE_WAIT_MS \(7000\) and DB_STATEMENT_TIMEOUT_MS \(2000\) leave the deletes less than a "
        r"statement timeout of INGEST_ERASURE_TIMEOUT_MS \(8000\)"
    )
    with pytest.raises(ConfigurationError, match=refused):
        delete_user("user-1")


@pytest.mark.parametrize("held_lock", [RECOMPUTE_LOCK_KEY, ERASURE_LOCK_KEY], ids=["score-run", "model-import"])
def test_an_erasure_kept_waiting_past_its_limit_raises_erasure_busy_and_deletes_nothing(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch, held_lock: int
) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("milk",)))
    monkeypatch.setenv("INGEST_ERASURE_WAIT_MS", "200")
    settings.ingest_settings.cache_clear()

    with psycopg.connect(database_url) as holder:  # a score run or a model import holds its lock
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (held_lock,))
        with pytest.raises(ErasureBusy):
            delete_user("user-1")

    assert db.execute("SELECT count(*) FROM events WHERE user_id = 'user-1'").fetchone() == (1,)


def test_an_erasure_waits_at_most_its_limit_in_all_for_the_locks_it_takes_one_after_another(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("milk",)))
    monkeypatch.setenv("INGEST_ERASURE_WAIT_MS", "1500")
    settings.ingest_settings.cache_clear()

    # A score run ends after 1 s; a model import holds its lock throughout. Each wait given the whole limit
    # would take 1 s + 1.5 s; the erasure gives up when its 1.5 s are spent.
    with psycopg.connect(database_url) as score_run, psycopg.connect(database_url) as model_import:
        score_run.execute("SELECT pg_advisory_xact_lock(%s)", (RECOMPUTE_LOCK_KEY,))
        model_import.execute("SELECT pg_advisory_xact_lock(%s)", (ERASURE_LOCK_KEY,))
        threading.Timer(1.0, score_run.commit).start()
        started = time.monotonic()
        with pytest.raises(ErasureBusy):
            delete_user("user-1")
        waited = time.monotonic() - started

    assert waited < 2.4, waited
    assert db.execute("SELECT count(*) FROM events WHERE user_id = 'user-1'").fetchone() == (1,)


def test_every_table_an_erasure_deletes_from_is_indexed_by_user(db: psycopg.Connection) -> None:
    leading_user_id = {
        table
        for (table,) in db.execute(
            """
            SELECT i.indrelid::regclass::text FROM pg_index i
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
            WHERE a.attname = 'user_id'
            """
        )
    }

    assert {"events", "user_item_affinity", "user_category_affinity", "user_orders", "model_scores", "feeds",
            "feed_snapshots", "users"} <= leading_user_id  # fmt: skip


def test_an_answer_naming_the_wrong_fields_of_a_large_catalog_update_fits_a_lambda_response(
    db: psycopg.Connection,
) -> None:
    # 1,000 items (the most a call may hold) of 50 unknown fields each: a body of ~1.7 MB (API Gateway takes 10).
    items = [MILK | {"item_id": f"item-{n}"} | {f"colour_{k}": "red" for k in range(50)} for n in range(1000)]

    response = ingest.lambda_handler(
        api_gateway_rest_event("PUT", "/v1/items", resource="/v1/items", body={"items": items}, claims=SERVICE_CLAIMS),
        LambdaContext(function_name="ingest_events"),
    )

    assert len(json.dumps(response).encode()) <= 6 * 1024 * 1024  # Lambda's limit: past it API Gateway answers 502
    body = json.loads(response["body"])
    assert (response["statusCode"], body["errors"][0]["field"]) == (422, "items[0].colour_0")
    assert db.execute("SELECT count(*) FROM items").fetchone() == (0,)


def test_admin_routes_are_marked_in_the_openapi_document() -> None:
    document = json.loads(local_resolver().get_openapi_json_schema())
    operations = {
        (method.upper(), path): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }

    admin = {key for key, operation in operations.items() if operation.get("security") == [{"admin": []}]}
    assert admin == {("PUT", "/v1/items"), ("PUT", "/v1/stores/{store_id}/availability"),
                     ("DELETE", "/v1/users/{user_id}")}  # fmt: skip
    assert document["components"]["securitySchemes"]["admin"]["scheme"] == "bearer"


def test_an_erasure_leaves_no_row_of_the_user_in_any_table_but_the_erasure_record(db: psycopg.Connection) -> None:
    create_catalog(db)
    record(purchase("user-2", items=("milk", "eggs")))
    recompute_scores(RecomputeRequest())
    get_feed("user-1", {"store_id": STORE, "limit": "1"})  # a feed and its snapshot, before any history
    batch = [purchase("user-1", items=("milk", "eggs")), event("add_to_cart", "user-1", item_id="coffee"),
             event("click", "user-1", item_id="bananas"), event("hide", "user-1", item_id="wine"),
             purchase("user-2", items=("coffee",))]  # fmt: skip
    assert call("POST", "/v1/events", "/v1/events", {"events": batch})[2]["accepted"] == 5
    recompute_scores(RecomputeRequest())
    db.execute("INSERT INTO user_category_affinity VALUES ('user-1', 'aisle', 'Milk', 5, now())")  # as older code
    get_feed("user-1", {"store_id": STORE, "limit": "1"})
    confirm_sent()  # both feeds' recordings have committed
    tables = [
        table
        for (table,) in db.execute(
            "SELECT table_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND column_name = 'user_id' ORDER BY table_name"
        )
    ]

    def rows_of(user_id: str) -> dict[str, int]:
        return {
            table: db.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE user_id = %s").format(sql.Identifier(table)), (user_id,)
            ).fetchone()[0]
            for table in tables
        }

    before = rows_of("user-1")
    status, _, _ = call("DELETE", "/v1/users/user-1", "/v1/users/{user_id}", user_id="user-1")
    after = rows_of("user-1")

    assert status == 200
    # Every kind of row the user had: events (in their month's partition), scores, orders, feeds, the profile.
    had = {"events", "user_item_affinity", "user_category_affinity", "user_orders", "feeds", "feed_snapshots",
           "users"}  # fmt: skip
    assert all(before[table] > 0 for table in had), before
    assert sum(count for table, count in before.items() if table.startswith("events_")) == before["events"] == 4
    assert after == {table: 1 if table == "user_erasures" else 0 for table in tables}
    assert db.execute("SELECT user_id FROM user_erasures").fetchall() == [("user-1",)]
    assert rows_of("user-2")["events"] == 2  # another user's rows stay


ADMIN_ROUTES = {
    "items": ("/v1/items", "/v1/items", None),
    "availability": ("/v1/stores/store-9/availability", "/v1/stores/{store_id}/availability", {"store_id": "store-9"}),
}
NON_UTF8 = base64.b64encode(b'{"items": [{"item_id": "\xff\xfe"}]}').decode()


def item_lines(route: str, count: int) -> str:
    if route == "items":
        return json.dumps({"items": [MILK | {"item_id": f"item-{n}"} for n in range(count)]})
    return json.dumps({"items": [{"item_id": f"item-{n}"} for n in range(count)]})


# (route, raw body, content type, base64-encoded, status, field named)
ADMIN_BAD_INPUT = [
    ("items", '{"items": [', "application/json", False, 400, "body"),
    ("availability", '{"items": [', "application/json", False, 400, "body"),
    ("items", NON_UTF8, "application/json", True, 400, "body"),
    ("availability", NON_UTF8, "application/json", True, 400, "body"),
    ("items", json.dumps({"items": [MILK]}), "text/plain", False, 415, "content-type"),
    ("availability", json.dumps({"items": [{"item_id": "milk"}]}), "application/x-www-form-urlencoded", False, 415,
     "content-type"),
    ("items", item_lines("items", 1001), "application/json", False, 413, "items"),
    ("availability", item_lines("availability", 1001), "application/json", False, 413, "items"),
    ("items", json.dumps({"items": [MILK | {"price": "cheap"}]}), "application/json", False, 422, "items[0].price"),
    ("items", json.dumps({"items": [MILK | {"price": True}]}), "application/json", False, 422, "items[0].price"),
    ("items", json.dumps({"items": [MILK | {"price": "2.39"}]}), "application/json", False, 422, "items[0].price"),
    ("items", json.dumps({"items": [MILK | {"active": "perhaps"}]}), "application/json", False, 422, "items[0].active"),
    ("availability", json.dumps({"items": [{"item_id": "milk", "price": True}]}), "application/json", False, 422,
     "items[0].price"),
    ("items", json.dumps({"items": MILK}), "application/json", False, 422, "items"),
    ("availability", json.dumps({"items": [{"item_id": 42}]}), "application/json", False, 422, "items[0].item_id"),
    ("availability", json.dumps({"items": [{"item_id": "milk", "available": "yes please"}]}), "application/json",
     False, 422, "items[0].available"),
    ("availability", json.dumps({"store_name": 9, "items": [{"item_id": "milk"}]}), "application/json", False, 422,
     "store_name"),
]  # fmt: skip
ADMIN_BAD_INPUT_IDS = [
    "items-truncated-json", "availability-truncated-json", "items-non-utf8", "availability-non-utf8",
    "items-text-plain", "availability-form", "items-1001", "availability-1001", "items-price-string",
    "items-price-boolean", "items-price-numeric-string", "items-active-string", "availability-price-boolean",
    "items-not-a-list", "availability-numeric-item-id", "availability-available-string",
    "availability-numeric-store-name",
]  # fmt: skip


@pytest.mark.parametrize(
    ("route", "raw_body", "content_type", "encoded", "status", "field"), ADMIN_BAD_INPUT, ids=ADMIN_BAD_INPUT_IDS
)
def test_bad_input_to_an_admin_route_gets_a_problem_json_4xx_and_changes_nothing(
    db: psycopg.Connection, route: str, raw_body: str, content_type: str, encoded: bool, status: int, field: str
) -> None:
    create_catalog(db)
    before = db.execute("SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM store_availability)").fetchone()
    path, resource, parameters = ADMIN_ROUTES[route]
    request = api_gateway_rest_event(
        "PUT", path, resource=resource, raw_body=raw_body, path_parameters=parameters,
        headers={"Content-Type": content_type}, claims=SERVICE_CLAIMS,
    )  # fmt: skip
    request["isBase64Encoded"] = encoded

    response = ingest.lambda_handler(request, LambdaContext(function_name="ingest_events"))
    body = json.loads(response["body"])

    assert response["statusCode"] == status, body
    assert response_headers(response)["Content-Type"] == "application/problem+json"
    assert Problem.model_validate(body).status == status and body["detail"]
    assert field in {error["field"] for error in body["errors"]}, body
    if status == 413:
        assert body["limit"] == 1000
    after = db.execute("SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM store_availability)").fetchone()
    assert after == before
    assert db.execute("SELECT count(*) FROM stores WHERE store_id = 'store-9'").fetchone() == (0,)


@contextmanager
def user_1_erasure_under_way(database_url: str, deletions: list[UserDeletion]) -> Iterator[psycopg.Connection]:
    """Within the block, an erasure of user-1 has taken the user's locks, deleted the user's feeds and waits for the
    user's profile row, which the connection given holds; it goes on and commits (into `deletions`) as the block
    ends."""
    with psycopg.connect(database_url) as blocker:
        blocker.execute("SELECT FROM users WHERE user_id = 'user-1' FOR UPDATE")
        erasure = threading.Thread(target=lambda: deletions.append(delete_user("user-1")))
        erasure.start()
        wait_until_blocked_by(blocker)
        yield blocker
    erasure.join()


def test_a_feed_served_while_its_user_is_erased_is_not_recorded_after_the_erasure(
    db: psycopg.Connection, database_url: str
) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("milk", "eggs")))
    recompute_scores(RecomputeRequest())
    erasures: list[UserDeletion] = []
    with user_1_erasure_under_way(database_url, erasures):
        # A page of the user's feed, read before the erasure commits, is recorded meanwhile.
        status, _, feed = get_feed("user-1", {"store_id": STORE, "limit": "1"})

    def recorded() -> tuple[int, int]:
        confirm_sent()  # the last recording's outcome is in
        return db.execute(
            "SELECT (SELECT count(*) FROM feeds WHERE user_id = 'user-1'),"
            " (SELECT count(*) FROM feed_snapshots WHERE user_id = 'user-1')"
        ).fetchone()

    assert status == 200 and feed["sections"] and erasures[0].events_deleted == 1
    assert recorded() == (0, 0)
    # The user's pages are served after the erasure, and recorded from a minute after its start (migration 0121).
    assert get_feed("user-1", {"store_id": STORE, "limit": "1"})[2]["next_cursor"] and recorded() == (0, 0)
    db.execute("UPDATE user_erasures SET erased_at = erased_at - interval '61 seconds'")
    get_feed("user-1", {"store_id": STORE, "limit": "1"})
    assert recorded() == (1, 1)


def test_a_feed_recording_during_its_users_erasure_holds_back_no_page_of_the_container(
    db: psycopg.Connection, database_url: str
) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("milk", "eggs")), purchase("user-2", items=("milk", "eggs")))
    recompute_scores(RecomputeRequest())
    with user_1_erasure_under_way(database_url, []):
        # A page of user-1 is served and its recording sent; the next request on the container, another user's,
        # reads that recording's outcome first.
        get_feed("user-1", {"store_id": STORE, "limit": "1"})
        started = time.perf_counter()
        status, _, other = get_feed("user-2", {"store_id": STORE, "limit": "1"})
        elapsed = time.perf_counter() - started
    confirm_sent()

    # Before, the recording waited for the erasure until the statement timeout ended it (2 s), and the next page
    # waited for the recording (1.99 s).
    assert status == 200 and other["degraded"] is False and elapsed < 1, elapsed
    assert db.execute("SELECT user_id FROM feeds").fetchall() == [("user-2",)]  # user-1's page: not recorded


def test_an_erasure_is_remembered_as_of_its_last_statement_not_its_start(
    db: psycopg.Connection, database_url: str
) -> None:
    # Migration 0121 leaves out the feeds made from a minute before the erasure's time: that time must be close to its
    # commit, however long its deletes took (each may take the statement timeout, up to 300 s), not its start.
    create_catalog(db)
    record(purchase("user-1", items=("milk", "eggs")))
    recompute_scores(RecomputeRequest())
    with user_1_erasure_under_way(database_url, []) as blocker:
        (deletes_went_on_at,) = blocker.execute("SELECT clock_timestamp()").fetchone()

    (erased_at,) = db.execute("SELECT erased_at FROM user_erasures WHERE user_id = 'user-1'").fetchone()
    assert erased_at > deletes_went_on_at
