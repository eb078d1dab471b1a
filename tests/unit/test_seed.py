"""The demo dataset generator: deterministic, internally consistent, and shaped like real shopping."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest

from feedlocal.seed import REPURCHASE_CYCLE_DAYS, SeedDataset, generate

NOW = datetime(2025, 6, 1, 15, 30, tzinfo=UTC)
SUPERMARKET_DEPARTMENTS = {
    "Dairy & Eggs",
    "Produce",
    "Bakery",
    "Meat & Seafood",
    "Pantry",
    "Breakfast",
    "Snacks",
    "Frozen",
    "Beverages",
    "Beer & Wine",
    "Household",
    "Personal Care",
    "Baby",
}


@pytest.fixture(scope="module")
def dataset() -> SeedDataset:
    """The default demo dataset, generated once for the module."""
    return generate(now=NOW)


def purchases(dataset: SeedDataset):
    return [event for event in dataset.events if event["type"] == "purchase"]


# --- determinism --------------------------------------------------------------------------------------


def test_same_arguments_give_the_same_dataset():
    first = generate(users=30, days=60, seed=11, now=NOW)
    second = generate(users=30, days=60, seed=11, now=NOW)
    assert first == second


def test_a_different_seed_gives_a_different_history_over_the_same_catalog():
    first = generate(users=30, days=60, seed=11, now=NOW)
    other = generate(users=30, days=60, seed=12, now=NOW)
    assert first.events != other.events
    assert {event["event_id"] for event in first.events}.isdisjoint(event["event_id"] for event in other.events)
    assert first.items == other.items  # item ids are stable across seeds


# --- identifiers and references ----------------------------------------------------------------------


def test_identifiers_are_unique(dataset):
    def assert_unique(values):
        values = list(values)
        assert len(values) == len(set(values))

    assert_unique(store.store_id for store in dataset.stores)
    assert_unique(item.item_id for item in dataset.items)
    assert_unique(item.name for item in dataset.items)
    assert_unique(user.user_id for user in dataset.users)
    assert_unique(event["event_id"] for event in dataset.events)
    assert_unique(event["order_id"] for event in purchases(dataset))
    assert_unique((row.store_id, row.item_id) for row in dataset.availability)


def test_every_reference_points_at_something_that_exists(dataset):
    store_ids = {store.store_id for store in dataset.stores}
    item_ids = {item.item_id for item in dataset.items}
    user_ids = {user.user_id for user in dataset.users}
    assert {user.home_store_id for user in dataset.users} <= store_ids
    assert {(row.store_id, row.item_id) for row in dataset.availability} == {
        (store_id, item_id) for store_id in store_ids for item_id in item_ids
    }
    for event in dataset.events:
        assert event["user_id"] in user_ids
        assert event["store_id"] in store_ids
        if event["type"] == "purchase":
            assert {line["item_id"] for line in event["items"]} <= item_ids
        else:
            assert event["item_id"] in item_ids


def test_every_purchased_item_is_active_and_sold_at_that_store_at_its_shelf_price(dataset):
    catalog = {item.item_id: item for item in dataset.items}
    shelf = {(row.store_id, row.item_id): row for row in dataset.availability}
    for event in purchases(dataset):
        for line in event["items"]:
            row = shelf[(event["store_id"], line["item_id"])]
            assert row.available, (event["order_id"], line["item_id"])
            assert catalog[line["item_id"]].active
            assert line["unit_price"] == (row.price or catalog[line["item_id"]].price)


def test_open_carts_and_app_events_use_items_the_store_sells(dataset):
    shelf = {(row.store_id, row.item_id) for row in dataset.availability if row.available}
    interactions = [event for event in dataset.events if event["type"] != "purchase"]
    assert {event["type"] for event in interactions} == {"add_to_cart", "click"}
    for event in interactions:
        assert (event["store_id"], event["item_id"]) in shelf


# --- time ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "now"),
    [
        (120, NOW),
        (10, NOW),
        (1, NOW),
        (30, datetime(2025, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=9)))),
    ],
)
def test_every_event_is_inside_the_window_strictly_before_now(days, now):
    dataset = generate(users=40, days=days, now=now)
    assert dataset.events
    for event in dataset.events:
        assert event["occurred_at"].utcoffset() == timedelta(0)
        assert now - timedelta(days=days) <= event["occurred_at"] < now
    times = [event["occurred_at"] for event in dataset.events]
    assert times == sorted(times)


def test_now_must_be_timezone_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        generate(now=datetime(2025, 6, 1))


@pytest.mark.parametrize("arguments", [{"stores": 0}, {"days": 0}, {"users": -1}])
def test_sizes_must_make_sense(arguments):
    with pytest.raises(ValueError):
        generate(now=NOW, **arguments)


# --- catalog and stores -------------------------------------------------------------------------------


def test_catalog_is_a_realistic_supermarket(dataset):
    items = dataset.items
    assert 250 <= len(items) <= 400
    assert 1 <= sum(not item.active for item in items) <= 10
    assert {item.department for item in items} >= SUPERMARKET_DEPARTMENTS
    assert {item.item_id for item in items if "alcohol" in item.tags} == {
        item.item_id for item in items if item.department == "Beer & Wine"
    }
    assert {"organic", "vegan", "gluten-free", "local"} <= {tag for item in items for tag in item.tags}
    assert all(round(item.price, 2) == item.price > 0 for item in items)
    assert {item.aisle for item in items} == set(REPURCHASE_CYCLE_DAYS)
    names = {item.name for item in items}
    assert {"Organic Valley Whole Milk 1 gal", "Barilla Spaghetti 16 oz", "Bananas per lb"} <= names


def test_each_store_carries_most_of_the_catalog_with_a_few_own_prices(dataset):
    for store in dataset.stores:
        rows = [row for row in dataset.availability if row.store_id == store.store_id]
        carried = sum(row.available for row in rows) / len(rows)
        assert 0.85 <= carried <= 0.98, store.store_id
        overrides = [row for row in rows if row.price is not None]
        assert overrides and all(row.available for row in overrides)
    assert [store.store_id for store in dataset.stores] == ["store-1", "store-2", "store-3"]
    assert all(store.name and store.region for store in dataset.stores)


# --- shape of the history -----------------------------------------------------------------------------


def test_default_size_is_about_twenty_orders_per_household(dataset):
    assert len(dataset.users) == 200
    orders_per_user = Counter(event["user_id"] for event in purchases(dataset))
    assert set(orders_per_user) == {user.user_id for user in dataset.users}
    assert 15 <= statistics.median(orders_per_user.values()) <= 25
    lines = sum(len(event["items"]) for event in purchases(dataset))
    interactions = len(dataset.events) - len(purchases(dataset))
    assert 0 < interactions < lines


def test_households_rebuy_their_habitual_items_on_the_item_cycle(dataset):
    aisle = {item.item_id: item.aisle for item in dataset.items}
    bought_at = defaultdict(list)
    for event in purchases(dataset):
        for line in event["items"]:
            bought_at[(event["user_id"], line["item_id"])].append(event["occurred_at"])
    on_cycle = []
    for (_, item_id), times in bought_at.items():
        if len(times) >= 4:
            intervals = [(later - earlier) / timedelta(days=1) for earlier, later in pairwise(times)]
            low, high = REPURCHASE_CYCLE_DAYS[aisle[item_id]]
            on_cycle.append(low <= statistics.median(intervals) <= high)
    assert len(on_cycle) > len(dataset.users)  # several habitual items per household
    # Trips quantize intervals and impulse runs shift them, so not every pair is on cycle, but most are.
    assert sum(on_cycle) / len(on_cycle) > 0.6


def test_popularity_is_skewed_towards_best_sellers_in_every_store(dataset):
    active = [item.item_id for item in dataset.items if item.active]
    for store in dataset.stores:
        store_purchases = [event for event in purchases(dataset) if event["store_id"] == store.store_id]
        lines = Counter(line["item_id"] for event in store_purchases for line in event["items"])
        counts = sorted((lines[item_id] for item_id in active), reverse=True)
        total = sum(counts)
        top_tenth = sum(counts[: len(counts) // 10]) / total
        bottom_half = sum(counts[len(counts) - len(counts) // 2 :]) / total
        assert top_tenth > 3 * bottom_half, (store.store_id, top_tenth, bottom_half)
