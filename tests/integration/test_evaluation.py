"""feedctl eval-instacart on the synthetic dataset shipped in tests/data (the Instacart file format)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FEEDCTL = str(Path(sys.executable).parent / "feedctl")
DATA = Path(__file__).resolve().parents[1] / "data" / "instacart_synthetic"


def test_buy_again_beats_the_frequency_baselines_on_the_synthetic_baskets(database_url: str) -> None:
    result = subprocess.run(
        [FEEDCTL, "eval-instacart", str(DATA), "--k", "10"],
        env=os.environ | {"DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    metrics = json.loads(result.stdout.strip().splitlines()[-1])

    assert (metrics["users"], metrics["k"]) == (60, 10)
    assert metrics["events"] == 796  # every prior order replayed through ingestion
    for name in ("buy_again", "feed", "p_topfreq", "g_topfreq"):
        assert 0 <= metrics[name]["recall"] <= 1 and 0 <= metrics[name]["ndcg"] <= 1
    assert metrics["buy_again"]["recall"] >= metrics["p_topfreq"]["recall"]
    assert metrics["buy_again"]["ndcg"] > metrics["p_topfreq"]["ndcg"]
    assert metrics["p_topfreq"]["recall"] > 3 * metrics["g_topfreq"]["recall"]
