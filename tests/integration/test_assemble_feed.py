"""assemble_feed invoked with API Gateway REST events against the real database."""

from __future__ import annotations

import json
from datetime import timedelta

import psycopg
import pytest

from feedcore.api.models import EventBatch
from feedcore.db.connection import transaction
from feedcore.db.events import store_events
from feedcore.scoring.service import RecomputeRequest, recompute_scores
from tests.aws_events import LambdaContext, api_gateway_rest_event, response_headers
from tests.conftest import load_function
from tests.factories import NOW, STORE, create_catalog, event, purchase

assemble = load_function("assemble_feed")


def get_feed(user_id: str, query: dict[str, str] | None) -> tuple[int, dict[str, str], dict]:
    response = assemble.lambda_handler(
        api_gateway_rest_event(
            "GET",
            f"/v1/users/{user_id}/feed",
            resource="/v1/users/{user_id}/feed",
            path_parameters={"user_id": user_id},
            query=query,
        ),
        LambdaContext(function_name="assemble_feed"),
    )
    return response["statusCode"], response_headers(response), json.loads(response["body"])


def sections(feed: dict) -> dict[str, list[str]]:
    return {section["id"]: [item["item_id"] for item in section["items"]] for section in feed["sections"]}


@pytest.fixture
def shopping_history(db: psycopg.Connection) -> None:
    """user-1 buys milk weekly and coffee once; others make milk, eggs, bananas, wine popular at store-a."""
    create_catalog(db)
    history = [purchase("user-1", items=("milk",), at=NOW - timedelta(days=7 * week)) for week in range(1, 5)]
    history += [
        purchase("user-1", items=("coffee", "only-b", "discontinued"), at=NOW - timedelta(days=20)),
        purchase("user-2", items=("eggs", "bananas", "wine")),
        purchase("user-3", items=("eggs", "bananas")),
        purchase("user-4", items=("eggs",)),
        purchase("user-5", items=("only-b", "discontinued")),
    ]
    with transaction() as conn:
        store_events(conn, EventBatch.model_validate({"events": history}).events)
    recompute_scores(RecomputeRequest())


def test_feed_has_buy_again_then_trending_with_store_prices_and_reasons(shopping_history: None) -> None:
    status, headers, feed = get_feed("user-1", {"store_id": STORE})

    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert [s["id"] for s in feed["sections"]] == ["buy_again", "trending"]
    got = sections(feed)
    assert got["buy_again"] == ["milk", "coffee"]  # weekly milk outranks one coffee
    # Popular at store-a, without what buy_again already shows.
    assert got["trending"][:2] == ["eggs", "bananas"]
    assert not set(got["buy_again"]) & set(got["trending"])
    milk = feed["sections"][0]["items"][0]
    assert milk["price"] == 3.19  # the store's shelf price, not the catalog's 3.49
    assert milk["name"] == "Whole Milk 1 gal"
    assert milk["reason"].startswith("You bought this 4 times")
    assert milk["score"] > 0
    assert feed["sections"][1]["items"][0]["reason"] == "Popular at your store"
    assert len(feed["feed_id"]) == 32


def test_feed_shows_only_active_items_the_store_sells(shopping_history: None) -> None:
    _, _, feed = get_feed("user-1", {"store_id": STORE})
    shown = {item for items in sections(feed).values() for item in items}

    assert "only-b" not in shown  # not sold at store-a
    assert "discontinued" not in shown  # inactive in the catalog


def test_hidden_item_leaves_every_section(shopping_history: None) -> None:
    with transaction() as conn:
        store_events(
            conn,
            EventBatch.model_validate(
                {"events": [event("hide", "user-1", item_id="milk"), event("hide", "user-1", item_id="eggs")]}
            ).events,
        )
    recompute_scores(RecomputeRequest())

    _, _, feed = get_feed("user-1", {"store_id": STORE})
    shown = {item for items in sections(feed).values() for item in items}

    assert {"milk", "eggs"}.isdisjoint(shown)
    assert "eggs" in sections(get_feed("someone-new", {"store_id": STORE})[2])["trending"]  # hides are per user


def test_new_user_gets_trending_only(shopping_history: None) -> None:
    status, _, feed = get_feed("someone-new", {"store_id": STORE})

    assert status == 200
    assert list(sections(feed)) == ["trending"]
    assert sections(feed)["trending"][:2] == ["eggs", "bananas"]


def test_limit_caps_each_section(shopping_history: None) -> None:
    _, _, feed = get_feed("user-1", {"store_id": STORE, "limit": "1"})
    assert {k: len(v) for k, v in sections(feed).items()} == {"buy_again": 1, "trending": 1}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (None, "store_id"),
        ({"store_id": "bad store!"}, "store_id"),
        ({"store_id": STORE, "limit": "0"}, "limit"),
        ({"store_id": STORE, "limit": "many"}, "limit"),
    ],
    ids=["missing-store", "invalid-store", "limit-zero", "limit-not-a-number"],
)
def test_bad_query_gets_problem_json_naming_the_parameter(db: psycopg.Connection, query, field) -> None:
    status, headers, body = get_feed("user-1", query)

    assert status == 422
    assert headers["Content-Type"] == "application/problem+json"
    assert field in {error["field"] for error in body["errors"]}
