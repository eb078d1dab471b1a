"""The committed OpenAPI document is the one the routes generate."""

from pathlib import Path

from feedcore.api.resolvers import openapi_document

COMMITTED = Path(__file__).resolve().parents[2] / "openapi.json"


def test_committed_openapi_document_is_current():
    assert COMMITTED.read_text() == openapi_document(), "openapi.json is stale: run `.venv/bin/feedctl openapi`"
