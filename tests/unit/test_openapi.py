"""The committed OpenAPI document is the one the routes generate."""

from pathlib import Path

from feedcore.api.resolvers import openapi_document

COMMITTED = Path(__file__).resolve().parents[2] / "openapi.json"


def test_committed_openapi_document_is_current():
    assert COMMITTED.read_text() == openapi_document(), "openapi.json is stale: run `.venv/bin/feedctl openapi`"


def test_a_routes_parameter_types_are_inspected_once_not_on_every_request(monkeypatch):
    """Powertools' validation asks for each query parameter whether its type is a scalar on every request; the
    resolvers answer each field once, with the same answers: the same request gets the same 4xx both times."""
    from aws_lambda_powertools.event_handler.openapi.compat import is_scalar_field

    from feedcore.api import feed, resolvers

    asked = []
    monkeypatch.setattr(resolvers, "is_scalar_field", lambda field: asked.append(field) or is_scalar_field(field))
    app = resolvers.lambda_resolver(feed.router)
    context = type("Context", (), {"aws_request_id": "test"})()

    first = app.resolve(feed.REJECTED_REQUEST, context)
    inspected = len(asked)
    second = app.resolve(feed.REJECTED_REQUEST, context)

    assert first["statusCode"] == 422 and "store_id" in first["body"] and second == first
    assert inspected == 5 and len(asked) == inspected  # store_id, limit, cursor, exclude_tags, debug: once each
