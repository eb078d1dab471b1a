"""The benchmark commands run end to end on a small dataset and print their figures as a final JSON line.
(Their speed is measured by running them, not asserted here.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FEEDCTL = str(Path(sys.executable).parent / "feedctl")


def test_bench_ingest_prints_its_figures(database_url: str) -> None:
    result = subprocess.run(
        [FEEDCTL, "bench", "ingest", "--events", "3000", "--workers", "2"],
        env=os.environ | {"DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])

    assert figures["events"] == 3000
    assert figures["workers"] == 2
    assert figures["events_per_s"] > 0 and figures["copy_events_per_s"] > 0
    assert abs(figures["ratio"] - figures["events_per_s"] / figures["copy_events_per_s"]) < 0.01
