from __future__ import annotations

from pathlib import Path

import pytest

from .support import TEMPLATE, require_sam_cli, stack_template, translate


@pytest.fixture(scope="session")
def sam_cli() -> Path:
    return require_sam_cli()


@pytest.fixture(scope="session")
def template() -> dict:
    return stack_template()


@pytest.fixture(scope="session")
def transformed(sam_cli) -> dict:
    """template.yaml after the SAM transform."""
    return translate(sam_cli, TEMPLATE)
