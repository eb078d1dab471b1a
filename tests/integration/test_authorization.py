"""Who may touch what: the caller is the token's `sub` (claims from API Gateway's Cognito authorizer); a
user reads only their own feed and sends only their own events; admin routes need the admin group."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from pydantic import ValidationError

from feedcore import settings
from tests.aws_events import (
    SERVICE_CLAIMS,
    LambdaContext,
    api_gateway_rest_event,
    cognito_claims,
    response_headers,
)
from tests.conftest import load_function
from tests.factories import STORE, create_catalog, event, purchase

ingest = load_function("ingest_events")
assemble = load_function("assemble_feed")
ALICE = cognito_claims("alice")
BOB = "bob"


def call(
    function,
    method: str,
    path: str,
    resource: str,
    claims: dict[str, str] | None,
    *,
    body: Any = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    **path_parameters: str,
) -> tuple[int, dict[str, str], dict]:
    request = api_gateway_rest_event(
        method,
        path,
        resource=resource,
        body=body,
        query=query,
        headers=headers,
        path_parameters=path_parameters or None,
        claims=claims,
    )
    response = function.lambda_handler(request, LambdaContext())
    return response["statusCode"], response_headers(response), json.loads(response["body"])


def get_feed(user_id: str, claims: dict[str, str] | None, headers: dict[str, str] | None = None):
    path = f"/v1/users/{user_id}/feed"
    return call(
        assemble, "GET", path, "/v1/users/{user_id}/feed", claims, query={"store_id": STORE}, headers=headers,
        user_id=user_id,
    )  # fmt: skip


def post_events(events: list[dict], claims: dict[str, str] | None):
    return call(ingest, "POST", "/v1/events", "/v1/events", claims, body={"events": events})


def count_events(db: psycopg.Connection) -> int:
    return db.execute("SELECT count(*) FROM events").fetchone()[0]


def assert_problem(status: int, headers: dict[str, str], body: dict, expected: int) -> None:
    assert status == expected, body
    assert headers["Content-Type"] == "application/problem+json"
    assert body["status"] == expected


def test_a_user_reads_their_own_feed_but_not_another_users(db: psycopg.Connection) -> None:
    create_catalog(db)
    assert get_feed("alice", ALICE)[0] == 200

    status, headers, body = get_feed(BOB, ALICE)

    assert_problem(status, headers, body, 403)
    assert "bob" in body["detail"]


def test_a_user_sends_their_own_events_but_not_another_users(db: psycopg.Connection) -> None:
    create_catalog(db)
    assert post_events([purchase("alice", items=("milk",))], ALICE)[2]["accepted"] == 1

    status, headers, body = post_events([event("click", user_id=BOB, item_id="milk")], ALICE)
    assert_problem(status, headers, body, 403)
    # One foreign event refuses the whole batch: nothing of it is stored.
    mixed = [event("click", user_id="alice", item_id="eggs"), event("click", user_id=BOB, item_id="milk")]
    status, headers, body = post_events(mixed, ALICE)
    assert_problem(status, headers, body, 403)
    assert "events[1]" in body["detail"]
    assert count_events(db) == 1


def test_a_foreign_event_that_is_otherwise_invalid_is_still_refused(db: psycopg.Connection) -> None:
    invalid_for_bob = {"event_id": "not-a-uuid", "type": "click", "user_id": BOB}
    status, headers, body = post_events([invalid_for_bob], ALICE)
    assert_problem(status, headers, body, 403)


MILK = {"item_id": "milk", "name": "Whole Milk 1 gal", "department": "Dairy & Eggs", "aisle": "Milk",
        "brand": "Dairy Farm", "price": 3.49, "tags": []}  # fmt: skip
# Valid requests, so that the admin group's goes through.
ADMIN_ROUTES = [
    ("PUT", "/v1/items", "/v1/items", {"items": [MILK]}, {}),
    ("PUT", "/v1/stores/store-a/availability", "/v1/stores/{store_id}/availability",
     {"items": [{"item_id": "milk", "available": True}]}, {"store_id": "store-a"}),
    # Not even for themself: erasure is an operator's action.
    ("DELETE", "/v1/users/alice", "/v1/users/{user_id}", None, {"user_id": "alice"}),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "resource", "body", "path_parameters"), ADMIN_ROUTES)
def test_admin_routes_refuse_users_outside_the_admin_group(
    db: psycopg.Connection, method, path, resource, body, path_parameters
) -> None:
    create_catalog(db)
    status, headers, problem = call(ingest, method, path, resource, ALICE, body=body, **path_parameters)
    assert_problem(status, headers, problem, 403)
    in_another_group = cognito_claims("alice", "analysts")
    assert call(ingest, method, path, resource, in_another_group, body=body, **path_parameters)[0] == 403
    # The same request from the admin group goes through.
    assert call(ingest, method, path, resource, SERVICE_CLAIMS, body=body, **path_parameters)[0] == 200


# Invalid requests of each admin route: a bad body, or a bad path parameter for the erasure.
INVALID_ADMIN_REQUESTS = [
    ("PUT", "/v1/items", "/v1/items", {"items": [MILK | {"price": "free"}]}, {}),
    ("PUT", "/v1/stores/store-a/availability", "/v1/stores/{store_id}/availability", {"items": "all"},
     {"store_id": "store-a"}),
    ("DELETE", "/v1/users/-alice", "/v1/users/{user_id}", None, {"user_id": "-alice"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "resource", "body", "path_parameters"), INVALID_ADMIN_REQUESTS, ids=["items", "availability",
    "erasure"]
)  # fmt: skip
def test_a_caller_who_may_not_use_an_admin_route_is_refused_before_the_request_is_validated(
    db: psycopg.Connection, method, path, resource, body, path_parameters
) -> None:
    # A 422 would describe the admin contract to anyone, and have the function validate their body first.
    refused = call(ingest, method, path, resource, ALICE, body=body, **path_parameters)
    unauthenticated = call(ingest, method, path, resource, None, body=body, **path_parameters)

    assert_problem(*refused, 403)
    assert_problem(*unauthenticated, 401)
    assert call(ingest, method, path, resource, SERVICE_CLAIMS, body=body, **path_parameters)[0] == 422


def test_another_users_feed_is_refused_before_its_query_is_validated(db: psycopg.Connection) -> None:
    path, resource = f"/v1/users/{BOB}/feed", "/v1/users/{user_id}/feed"
    query = {"store_id": STORE, "limit": "many"}

    assert_problem(*call(assemble, "GET", path, resource, ALICE, query=query, user_id=BOB), 403)
    assert call(assemble, "GET", path, resource, cognito_claims(BOB), query=query, user_id=BOB)[0] == 422


def test_admin_routes_accept_the_admin_group(db: psycopg.Connection) -> None:
    create_catalog(db)
    assert call(ingest, "DELETE", "/v1/users/bob", "/v1/users/{user_id}", SERVICE_CLAIMS, user_id=BOB)[0] == 200
    # API Gateway may pass several groups as one bracketed string.
    several = cognito_claims("operator") | {"cognito:groups": "[analysts admin]"}
    assert call(ingest, "DELETE", "/v1/users/bob", "/v1/users/{user_id}", several, user_id=BOB)[0] == 200


def test_the_admin_group_name_is_a_setting(db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_ADMIN_GROUP", "operators")
    settings.auth_settings.cache_clear()
    try:
        assert call(ingest, "DELETE", "/v1/users/bob", "/v1/users/{user_id}", SERVICE_CLAIMS, user_id=BOB)[0] == 403
        operator = cognito_claims("op", "operators")
        assert call(ingest, "DELETE", "/v1/users/bob", "/v1/users/{user_id}", operator, user_id=BOB)[0] == 200
    finally:
        settings.auth_settings.cache_clear()


def test_an_admin_may_read_any_feed_and_send_any_users_events(db: psycopg.Connection) -> None:
    create_catalog(db)
    assert get_feed(BOB, SERVICE_CLAIMS)[0] == 200
    assert post_events([purchase(BOB, items=("milk",))], SERVICE_CLAIMS)[2]["accepted"] == 1


def test_a_request_without_a_verified_caller_is_401(db: psycopg.Connection) -> None:
    status, headers, body = get_feed("alice", None)
    assert_problem(status, headers, body, 401)
    assert headers["WWW-Authenticate"] == "Bearer"
    assert_problem(*post_events([purchase("alice")], None), 401)
    assert_problem(*post_events([purchase("alice")], {"email": "alice@example.com"}), 401)  # claims, no sub


def test_development_tokens_are_refused_unless_enabled(db: psycopg.Connection, monkeypatch) -> None:
    create_catalog(db)
    dev_alice = {"Authorization": "Bearer dev:alice"}
    assert get_feed("alice", None, headers=dev_alice)[0] == 401

    monkeypatch.setenv("AUTH_DEV_TOKENS", "true")
    settings.auth_settings.cache_clear()
    try:
        assert get_feed("alice", None, headers=dev_alice)[0] == 200
        assert get_feed(BOB, None, headers=dev_alice)[0] == 403
        assert get_feed(BOB, None, headers={"Authorization": "Bearer dev:alice:admin"})[0] == 200
        assert get_feed("alice", None, headers={"Authorization": "Bearer dev:alice:root"})[0] == 401
        # Verified claims win over a development token.
        assert get_feed(BOB, ALICE, headers={"Authorization": "Bearer dev:bob"})[0] == 403
    finally:
        settings.auth_settings.cache_clear()


def test_development_tokens_cannot_be_enabled_in_a_deployed_function(monkeypatch) -> None:
    monkeypatch.setenv("AUTH_DEV_TOKENS", "true")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "assemble_feed")
    with pytest.raises(ValidationError, match="local runs only"):
        settings.AuthSettings()
    monkeypatch.setenv("AWS_SAM_LOCAL", "true")  # `sam local start-api` runs the functions locally
    assert settings.AuthSettings().dev_tokens
