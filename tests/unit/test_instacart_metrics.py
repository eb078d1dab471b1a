"""The offline evaluation's metrics, baselines and timeline (Instacart format)."""

from datetime import UTC, datetime

import pytest

from feedlocal.instacart import (
    Order,
    TifuKnn,
    UserHistory,
    g_topfreq,
    ndcg_at_k,
    order_times,
    p_topfreq,
    recall_at_k,
    tifu_knn,
    tifu_vector,
    user_half,
)


def test_recall_is_the_share_of_the_basket_found():
    assert recall_at_k(["a", "b", "c"], {"a", "c", "x", "y"}, k=2) == 0.25
    assert recall_at_k(["a", "b", "c"], {"a", "c", "x", "y"}, k=3) == 0.5


def test_ndcg_is_one_for_an_ideal_ranking_and_uses_min_of_k_and_basket_for_the_ideal():
    assert ndcg_at_k(["a", "b", "z"], {"a", "b"}, k=3) == pytest.approx(1.0)
    # One hit in second place against an ideal of two hits (k=2, basket of 3).
    expected = (1 / 1.584962500721156) / (1 + 1 / 1.584962500721156)
    assert ndcg_at_k(["z", "a"], {"a", "b", "c"}, k=2) == pytest.approx(expected)


def history() -> UserHistory:
    prior = [
        Order("1", "u", 1, 9, None, ["milk", "eggs"]),
        Order("2", "u", 2, 10, 7.0, ["milk", "bread"]),
        Order("3", "u", 3, 18, 3.0, ["eggs", "bread"]),
    ]
    return UserHistory("u", prior, Order("4", "u", 4, 8, 5.0, ["milk"]))


def test_p_topfreq_ranks_by_count_then_recency():
    assert p_topfreq(history(), 3) == ["bread", "eggs", "milk"]  # all bought twice; bread and eggs last in order 3


def test_g_topfreq_counts_orders_over_all_users():
    other = UserHistory("v", [Order("9", "v", 1, 9, None, ["milk"])], Order("10", "v", 2, 9, 2.0, ["x"]))
    assert g_topfreq([history(), other], 1) == ["milk"]


def test_orders_are_placed_back_from_the_train_order_at_the_evaluation_time():
    times = order_times(history(), datetime(2026, 5, 20, 12, tzinfo=UTC))
    assert times == {
        "3": datetime(2026, 5, 15, 18, tzinfo=UTC),  # 5 days before the train order's day, at 18:00
        "2": datetime(2026, 5, 12, 10, tzinfo=UTC),
        "1": datetime(2026, 5, 5, 9, tzinfo=UTC),
    }


def test_tifu_vector_decays_baskets_and_groups_by_age():
    # Three orders in three groups: weights 0.9**2 * 0.7**2, 0.9 * 0.7 and 1, each over the 3 groups.
    vector = tifu_vector(history(), TifuKnn())
    assert vector["milk"] == pytest.approx((0.81 * 0.49 + 0.9 * 0.7) / 3)
    assert vector["bread"] == pytest.approx((0.9 * 0.7 + 1.0) / 3)
    assert vector["eggs"] == pytest.approx((0.81 * 0.49 + 1.0) / 3)


def test_tifu_vector_averages_the_baskets_of_a_group_the_larger_groups_last():
    orders = [Order(str(n), "u", n, 9, 1.0, ["a"] if n == 1 else ["b"]) for n in range(1, 8)]  # groups 2, 2, 3
    vector = tifu_vector(UserHistory("u", orders, Order("8", "u", 8, 9, 1.0, ["a"])), TifuKnn(basket_decay=1.0))
    assert vector["a"] == pytest.approx(0.49 / 2 / 3)  # half of the oldest group
    assert vector["b"] == pytest.approx((0.49 / 2 + 0.7 + 1.0) / 3)


def test_tifu_knn_fills_the_list_from_the_nearest_neighbour_only():
    def user(name: str, products: list[str]) -> UserHistory:
        return UserHistory(
            name, [Order(name + "1", name, 1, 9, None, products)], Order(name + "2", name, 2, 9, 1.0, [])
        )

    users = [user("u", ["milk", "eggs"]), user("v", ["milk", "eggs", "jam"]), user("w", ["beer", "chips"])]
    ranked = tifu_knn(users, 3, TifuKnn(neighbours=1))
    assert ranked["u"] == ["eggs", "milk", "jam"]  # v is nearest; w's items never appear
    everyone = tifu_knn(users, 5, TifuKnn(neighbours=2))
    assert set(everyone["u"]) == {"milk", "eggs", "jam", "beer", "chips"}
    assert everyone["u"][:2] == ["eggs", "milk"]  # the user's own items first (alpha 0.9)


def test_users_fall_in_two_fixed_halves_by_a_hash_of_their_id():
    halves = [user_half(str(user)) for user in range(1, 201)]

    assert set(halves) == {"a", "b"} and 80 < halves.count("a") < 120
    assert halves == [user_half(str(user)) for user in range(1, 201)]  # the same on every run
