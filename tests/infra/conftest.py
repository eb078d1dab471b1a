from __future__ import annotations

from pathlib import Path

import pytest

from .support import require_sam_cli, stack_template


@pytest.fixture(scope="session")
def sam_cli() -> Path:
    return require_sam_cli()


@pytest.fixture(scope="session")
def template() -> dict:
    return stack_template()
