"""The committed OpenAPI document is the one the routes generate."""

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

from feedcore.api.resolvers import openapi_document
from feedcore.feed.cursors import PagePosition, encode_cursor, request_scope

COMMITTED = Path(__file__).resolve().parents[2] / "openapi.json"


def test_committed_openapi_document_is_current():
    assert COMMITTED.read_text() == openapi_document(), "openapi.json is stale: run `.venv/bin/feedctl openapi`"


# The errors each route answers (README, Errors): the feed answers 200 when the database fails (degraded).
ERROR_STATUSES = {
    ("post", "/v1/events"): {"400", "401", "403", "413", "415", "422", "503"},
    ("put", "/v1/items"): {"400", "401", "403", "413", "415", "422", "503"},
    ("put", "/v1/stores/{store_id}/availability"): {"400", "401", "403", "413", "415", "422", "503"},
    ("delete", "/v1/users/{user_id}"): {"401", "403", "422", "503"},
    ("get", "/v1/users/{user_id}/feed"): {"400", "401", "403", "410", "422"},
}


def test_every_error_a_route_answers_is_published_as_a_problem_json_document():
    document = json.loads(openapi_document())
    routes = {(method, path) for path, operations in document["paths"].items() for method in operations}
    assert routes == set(ERROR_STATUSES)
    for (method, path), statuses in ERROR_STATUSES.items():
        responses = document["paths"][path][method]["responses"]
        errors = {status: response for status, response in responses.items() if int(status) >= 400}
        assert set(errors) == statuses, (method, path)
        assert "200" in responses
        for response in errors.values():
            assert response["content"] == {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            }
    assert {"type", "title", "status", "detail", "errors"} <= set(
        document["components"]["schemas"]["Problem"]["properties"]
    )


def test_the_longest_cursor_the_feed_issues_is_within_the_bound_the_route_sets_on_cursors():
    parameters = json.loads(openapi_document())["paths"]["/v1/users/{user_id}/feed"]["get"]["parameters"]
    longest = {}
    for parameter in parameters:
        for schema in parameter["schema"].get("anyOf", [parameter["schema"]]):
            if "maxLength" in schema:
                longest[parameter["name"]] = schema["maxLength"]
    # Distinct tags of 39 characters (and a comma) up to the longest exclude_tags.
    tags = frozenset(f"{n:039d}" for n in range((longest["exclude_tags"] + 1) // 40))
    position = PagePosition(
        feed_id=uuid.uuid4().hex,
        user_id="u" * longest["user_id"],
        offset=999,
        expires_at=datetime(2100, 1, 1, tzinfo=UTC),
        scope=request_scope("s" * longest["store_id"], tags),
    )

    assert len(encode_cursor(position, b"key")) <= longest["cursor"]


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


class _WatchedHeaders(dict):
    """Request headers that note when anything reads them whole (as Powertools' dicts of headers are built)."""

    def __init__(self, data: dict, reads: list[str]) -> None:
        super().__init__(data)
        self._reads = reads

    def items(self):
        self._reads.append("items")
        return super().items()


def _feed_event(query: dict[str, list[str]], user: str = "user-1") -> dict:
    """A GET of the user's feed with the query (as multiple values)."""
    from feedcore.api import feed

    return {
        **feed.REJECTED_REQUEST,
        "path": f"/v1/users/{user}/feed",
        "pathParameters": {"user_id": user},
        "queryStringParameters": {name: values[-1] for name, values in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "headers": {"Accept": "application/json"},
        "multiValueHeaders": {"Accept": ["application/json"]},
        "requestContext": {**feed.REJECTED_REQUEST["requestContext"], "authorizer": {"claims": {"sub": user}}},
    }


def _echoing_feed_resolver(monkeypatch):
    """The feed function's resolver, its route answering with the request it was given (no database)."""
    from feedcore.api import feed, resolvers
    from feedcore.feed.service import FeedPage

    monkeypatch.setattr(feed, "assemble_feed", lambda request: FeedPage(repr(request), "control", None, []))
    return resolvers.lambda_resolver(feed.router)


def test_a_route_without_header_or_cookie_parameters_is_validated_without_reading_the_headers(monkeypatch):
    reads: list[str] = []
    app = _echoing_feed_resolver(monkeypatch)
    event = _feed_event({"store_id": ["store-1"]})
    event["headers"] = _WatchedHeaders(event["headers"], reads)
    event["multiValueHeaders"] = _WatchedHeaders(event["multiValueHeaders"], reads)

    response = app.resolve(event, type("Context", (), {"aws_request_id": "test"})())

    assert response["statusCode"] == 200 and "store_id='store-1'" in response["body"]
    # once, by the response's check for gzip (Powertools' own validation builds four more dicts of them)
    assert reads == ["items"]


def test_requests_validate_as_with_powertools_own_validation(monkeypatch):
    """The same status, body and route arguments as Powertools' request validation, valid or not."""
    from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware

    queries = [
        {"store_id": ["store-1"]},
        {"store_id": ["store-1"], "limit": ["3"], "debug": ["true"], "exclude_tags": ["alcohol,tobacco"]},
        {"store_id": ["store-1"], "cursor": ["abc"], "debug": ["0"]},
        {"store_id": ["store-1"], "exclude_tags": ["alcohol", "tobacco"]},  # repeated: joined, then the pattern
        {"store_id": ["store-1", "store-2"]},
        {"store_id": ["!"]},
        {},
        {"store_id": ["store-1"], "limit": ["0"]},
        {"store_id": ["store-1"], "limit": ["many"], "debug": ["maybe"]},
        {"store_id": ["store-1"], "exclude_tags": ["a b"], "cursor": ["x" * 600]},
    ]
    context = type("Context", (), {"aws_request_id": "test"})()
    ours = _echoing_feed_resolver(monkeypatch)
    powertools = _echoing_feed_resolver(monkeypatch)
    powertools._request_validation_middleware = OpenAPIRequestValidationMiddleware()

    events = [_feed_event(query) for query in queries] + [_feed_event({"store_id": ["!"], "limit": ["0"]}, user="!")]

    answers = [(ours.resolve(event, context), powertools.resolve(event, context)) for event in events]

    assert [ours_answer for ours_answer, _ in answers] == [theirs for _, theirs in answers]
    assert sorted({ours_answer["statusCode"] for ours_answer, _ in answers}) == [200, 422]


def test_the_user_erasure_validates_as_with_powertools_own_validation(monkeypatch):
    """The other route without header, cookie or body parameters (DELETE /v1/users/{user_id}): the same answers
    as Powertools' request validation, valid or not."""
    from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware

    from feedcore.api import catalog, resolvers
    from feedcore.api.catalog_models import UserDeletion
    from tests.aws_events import SERVICE_CLAIMS, LambdaContext, api_gateway_rest_event

    erased = UserDeletion(user_id="user-1", events_deleted=3, scores_deleted=1)
    monkeypatch.setattr(catalog, "delete_user", lambda user_id, **_: erased.model_copy(update={"user_id": user_id}))
    ours, powertools = resolvers.lambda_resolver(catalog.router), resolvers.lambda_resolver(catalog.router)
    powertools._request_validation_middleware = OpenAPIRequestValidationMiddleware()
    context = LambdaContext()
    events = [
        api_gateway_rest_event(
            "DELETE",
            f"/v1/users/{user}",
            resource="/v1/users/{user_id}",
            path_parameters={"user_id": user},
            query=query,
            claims=SERVICE_CLAIMS,
        )  # fmt: skip
        for user, query in [("user-1", None), ("user-1", {"dry_run": "yes"}), ("!", None), ("u" * 300, None)]
    ]

    answers = [(ours.resolve(event, context), powertools.resolve(event, context)) for event in events]

    assert [ours_answer for ours_answer, _ in answers] == [theirs for _, theirs in answers]
    assert [ours_answer["statusCode"] for ours_answer, _ in answers] == [200, 200, 422, 422]


def _references(part: object) -> set[str]:
    """The component schemas `part` of the document references."""
    if isinstance(part, dict):
        found = {part["$ref"].removeprefix("#/components/schemas/")} if "$ref" in part else set()
        return found.union(*(_references(value) for value in part.values()))
    if isinstance(part, list):
        return set().union(*(_references(value) for value in part))
    return set()


def test_every_schema_the_document_publishes_is_used_by_a_route():
    """Powertools adds its validation-error schemas (HTTPValidationError, ValidationError, ResponseValidationError)
    though no route answers them: the document publishes only the schemas its routes reach."""
    document = json.loads(openapi_document())
    schemas = document["components"]["schemas"]
    reached, pending = set(), _references(document["paths"])
    while pending:
        name = pending.pop()
        reached.add(name)
        pending |= _references(schemas[name]) - reached

    assert set(schemas) == reached
    assert {"Problem", "FieldError", "EventRejection", "Feed"} <= reached


def test_the_problem_documents_optional_members_are_published_as_optional_not_nullable():
    """The API leaves a member out rather than sending null (feedcore.api.problems.problem)."""
    problem = json.loads(openapi_document())["components"]["schemas"]["Problem"]
    optional = set(problem["properties"]) - set(problem["required"])

    assert optional == {"errors", "rejections", "limit", "feed_id"}
    for member in optional:
        assert "null" not in json.dumps(problem["properties"][member]), member


def test_the_headers_of_401_and_503_answers_are_published():
    document = json.loads(openapi_document())
    for (method, path), statuses in ERROR_STATUSES.items():
        responses = document["paths"][path][method]["responses"]
        assert set(responses["401"]["headers"]) == {"WWW-Authenticate"}
        if "503" in statuses:
            assert responses["503"]["headers"]["Retry-After"]["schema"] == {"type": "integer"}
        assert all("headers" not in responses[status] for status in statuses - {"401", "503"})
