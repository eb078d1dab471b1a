from __future__ import annotations

from pathlib import Path

import pytest
from cfnlint.decode import decode_str

from .support import TEMPLATE, require_sam_cli


@pytest.fixture(scope="session")
def sam_cli() -> Path:
    return require_sam_cli()


@pytest.fixture(scope="session")
def template() -> dict:
    """template.yaml as CloudFormation reads it (short-form tags such as !Ref become dicts)."""
    decoded, matches = decode_str(TEMPLATE.read_text())
    assert not matches, "template.yaml does not parse:\n" + "\n".join(str(m) for m in matches)
    return decoded
