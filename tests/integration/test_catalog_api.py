"""Admin routes of ingest_events: catalog upserts, store availability and user erasure."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import psycopg
import pytest

from feedcore.api.resolvers import local_resolver
from feedcore.db.scores import RECOMPUTE_LOCK_KEY
from feedcore.scoring.service import RecomputeRequest, recompute_scores
from tests.aws_events import SERVICE_CLAIMS, LambdaContext, api_gateway_rest_event, response_headers
from tests.conftest import load_function, use_database
from tests.factories import create_catalog, event, purchase, record

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


def test_user_deletion_leaves_nothing_of_the_user_and_can_be_repeated(db: psycopg.Connection) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("milk", "eggs")), event("hide", "user-1", item_id="wine"),
           purchase("user-2", items=("milk",)))  # fmt: skip
    recompute_scores(RecomputeRequest())
    db.execute("INSERT INTO model_scores VALUES ('picked_for_you', 'user-1', 'milk', 0.9)")

    status, _, body = call("DELETE", "/v1/users/user-1", "/v1/users/{user_id}", user_id="user-1")
    again = call("DELETE", "/v1/users/user-1", "/v1/users/{user_id}", user_id="user-1")

    # Scores: milk, eggs and wine; the Milk and Eggs aisles; the orders; one model score.
    assert (status, body) == (200, {"user_id": "user-1", "events_deleted": 2, "scores_deleted": 7})
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
        # The run ends while a second erasure waits (longer than a request's 300 ms statement timeout).
        threading.Timer(0.8, run_in_progress.commit).start()
        after_the_run = call(*delete, user_id="user-1")

    assert (status, headers["Retry-After"]) == (503, "30")
    assert "score recomputation" in problem["detail"] and 1.4 < waited < 3
    assert after_the_run[:1] == (200,) and after_the_run[2]["events_deleted"] == 1
    assert db.execute("SELECT count(*) FROM events WHERE user_id = 'user-1'").fetchone()[0] == 0


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
