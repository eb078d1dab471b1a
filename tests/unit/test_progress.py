"""Long local commands report progress on stderr, never on stdout (which carries their JSON line)."""

from __future__ import annotations

import pytest

from feedlocal import progress as progress_module
from feedlocal.progress import progress


def test_progress_yields_everything_and_reports_on_stderr(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress_module, "_EVERY_S", 0.0)  # a line after every item

    assert list(progress(iter(range(3)), 3, "loading", "rows")) == [0, 1, 2]

    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[:3] == [line for line in lines[:3] if line.startswith("loading: ")]
    assert "3/3 rows (100%" in lines[2]
    assert lines[-1].startswith("loading: 3 rows in ")
