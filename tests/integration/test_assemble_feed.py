"""assemble_feed invoked with API Gateway REST events against the real database."""

from __future__ import annotations

import json
from datetime import timedelta

import psycopg
import pytest

from feedcore.scoring.service import RecomputeRequest, recompute_scores
from tests.aws_events import LambdaContext, api_gateway_rest_event, cognito_claims, response_headers
from tests.conftest import load_function, use_database
from tests.factories import NOW, STORE, create_catalog, event, purchase, record

assemble = load_function("assemble_feed")


def get_feed(user_id: str, query: dict[str, str] | None) -> tuple[int, dict[str, str], dict]:
    response = assemble.lambda_handler(
        api_gateway_rest_event(
            "GET",
            f"/v1/users/{user_id}/feed",
            resource="/v1/users/{user_id}/feed",
            path_parameters={"user_id": user_id},
            query=query,
            claims=cognito_claims(user_id),
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
    record(*history)
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
    record(event("hide", "user-1", item_id="milk"), event("hide", "user-1", item_id="eggs"))
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


def test_sections_fill_from_items_the_store_sells_even_when_top_scores_are_elsewhere(db: psycopg.Connection) -> None:
    create_catalog(db)
    # user-1's recent purchases are only sold at store-b or inactive; their milk is older but sold at store-a.
    record(
        purchase("user-1", items=("milk",), at=NOW - timedelta(days=30)),
        *[purchase("user-1", items=("only-b", "discontinued")) for _ in range(5)],
    )
    recompute_scores(RecomputeRequest())

    _, _, feed = get_feed("user-1", {"store_id": STORE, "limit": "1"})

    assert sections(feed)["buy_again"] == ["milk"]


def test_a_connection_dropped_between_calls_is_replaced_without_failing_the_call(
    shopping_history: None, db: psycopg.Connection
) -> None:
    assert get_feed("user-1", {"store_id": STORE})[0] == 200
    # The server ends the container's cached connection, as after a failover or a proxy idle timeout.
    terminated = db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'feed-assembly'"
    ).fetchall()
    assert terminated == [(True,)]

    status, _, feed = get_feed("user-1", {"store_id": STORE})

    assert status == 200
    assert sections(feed)["buy_again"] == ["milk", "coffee"]


def test_a_statement_timeout_is_a_retryable_503(
    shopping_history: None, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "200")
    use_database(database_url)
    with psycopg.connect(database_url) as blocker:
        blocker.execute("LOCK TABLE item_popularity IN ACCESS EXCLUSIVE MODE")  # held until the block ends
        status, headers, body = get_feed("user-1", {"store_id": STORE})

    assert status == 503
    assert headers["Retry-After"] == "2"
    assert body["status"] == 503
    assert get_feed("user-1", {"store_id": STORE})[0] == 200
