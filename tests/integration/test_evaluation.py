"""feedctl eval-instacart on the synthetic dataset shipped in tests/data (the Instacart file format)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import feedctl_json

DATA = Path(__file__).resolve().parents[1] / "data" / "instacart_synthetic"


def test_the_harness_ranks_buy_again_at_least_as_well_as_the_baselines(database_url: str) -> None:
    # 60 users only: this guards the harness and against a broken buy-again; the comparison that counts is
    # `make eval` on real baskets (README, Measured).
    metrics = feedctl_json(database_url, "eval-instacart", str(DATA), "--k", "10")

    assert (metrics["users"], metrics["k"]) == (60, 10)
    assert metrics["events"] == 796  # every prior order replayed through ingestion
    for name in ("buy_again", "feed", "p_topfreq", "g_topfreq", "tifu_knn"):
        assert 0 <= metrics[name]["recall"] <= 1 and 0 <= metrics[name]["ndcg"] <= 1
    assert metrics["buy_again"]["ndcg"] >= metrics["p_topfreq"]["ndcg"]
    assert metrics["buy_again"]["recall"] >= 0.95 * metrics["p_topfreq"]["recall"]
    assert metrics["p_topfreq"]["recall"] > 3 * metrics["g_topfreq"]["recall"]
    assert metrics["tifu_knn"]["recall"] > 3 * metrics["g_topfreq"]["recall"]  # a repeat-driven baseline
    halves = metrics["halves"]  # choose settings on one half of the users, report on the other
    assert sorted(halves) == ["a", "b"] and halves["a"]["users"] + halves["b"]["users"] == 60
    for name in ("buy_again", "feed", "p_topfreq", "g_topfreq", "tifu_knn"):
        overall = (
            halves["a"][name]["recall"] * halves["a"]["users"] + halves["b"][name]["recall"] * halves["b"]["users"]
        ) / 60
        assert overall == pytest.approx(metrics[name]["recall"], abs=1e-3)  # the halves make up the whole
