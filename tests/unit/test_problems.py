"""The problem+json answers: each written from the Problem model the OpenAPI document publishes; a 415 only from
the routes that read a body."""

import json
from http import HTTPStatus

import pytest
from pydantic import ValidationError

from feedcore.api import catalog, feed
from feedcore.api.catalog_models import UserDeletion
from feedcore.api.models import EventRejection, FieldError, Problem
from feedcore.api.problems import problem
from feedcore.api.resolvers import lambda_resolver, openapi_document
from feedcore.feed.service import FeedPage
from feedcore.settings import api_settings
from tests.aws_events import SERVICE_CLAIMS, LambdaContext, api_gateway_rest_event, cognito_claims


def test_a_problem_answer_is_the_published_document_and_leaves_out_the_members_it_lacks():
    error = FieldError(field="events[0].type", message="unknown event type", type="union_tag_invalid")
    rejection = EventRejection(index=0, event_id=None, errors=[error])

    response = problem(
        HTTPStatus.UNPROCESSABLE_ENTITY, "all 1 events were rejected", errors=[error], rejections=[rejection]
    )

    body = json.loads(response.body)
    assert body == {
        "type": "https://feed-assembly.dev/problems/unprocessable-entity",
        "title": "Unprocessable Entity",
        "status": 422,
        "detail": "all 1 events were rejected",
        "errors": [error.model_dump()],
        "rejections": [{"index": 0, "event_id": None, "errors": [error.model_dump()]}],  # a rejection's null is kept
    }
    assert Problem.model_validate(body).model_dump(exclude_unset=True) == body


@pytest.mark.parametrize(
    "members",
    [{"retry_after": 2}, {"limit": "many"}, {"errors": [{"field": "store_id"}]}],
    ids=["unpublished", "limit", "errors"],
)
def test_a_problem_answer_holds_only_what_the_published_problem_document_allows(members: dict) -> None:
    with pytest.raises(ValidationError):
        problem(HTTPStatus.BAD_REQUEST, "bad request", **members)


# A body that is not JSON, on a route that reads none.
TEXT_BODY = {"raw_body": "x", "headers": {"Content-Type": "text/plain"}}


def _feed_request(store_id: str) -> dict:
    return api_gateway_rest_event(
        "GET",
        "/v1/users/user-1/feed",
        resource="/v1/users/{user_id}/feed",
        path_parameters={"user_id": "user-1"},
        query={"store_id": store_id},
        claims=cognito_claims("user-1"),
        **TEXT_BODY,
    )


def _erasure_request(user_id: str) -> dict:
    return api_gateway_rest_event(
        "DELETE",
        f"/v1/users/{user_id}",
        resource="/v1/users/{user_id}",
        path_parameters={"user_id": user_id},
        claims=SERVICE_CLAIMS,
        **TEXT_BODY,
    )


@pytest.mark.parametrize(
    ("router", "event", "field"),
    [(feed.router, _feed_request("!"), "store_id"), (catalog.router, _erasure_request("!"), "user_id")],
    ids=["feed", "erasure"],
)
def test_a_route_without_a_body_answers_a_bad_parameter_with_422_naming_it_not_415(router, event, field) -> None:
    response = lambda_resolver(router).resolve(event, LambdaContext())

    assert response["statusCode"] == 422, response["body"]
    assert [error["field"] for error in json.loads(response["body"])["errors"]] == [field]


def test_a_route_without_a_body_ignores_one(monkeypatch) -> None:
    monkeypatch.setattr(feed, "assemble_feed", lambda request: FeedPage(repr(request), "control", None, []))
    erased = UserDeletion(user_id="user-1", events_deleted=0, scores_deleted=0)
    monkeypatch.setattr(catalog, "delete_user", lambda user_id, **_: erased)

    page = lambda_resolver(feed.router).resolve(_feed_request("store-1"), LambdaContext())
    erasure = lambda_resolver(catalog.router).resolve(_erasure_request("user-1"), LambdaContext())

    assert (page["statusCode"], erasure["statusCode"]) == (200, 200), (page["body"], erasure["body"])


def test_a_web_app_of_the_allowed_origin_may_read_the_headers_the_answers_carry(monkeypatch) -> None:
    """A browser shows a script of another origin only the CORS-safelisted headers of an answer and those it
    exposes: without Access-Control-Expose-Headers the web app cannot read a 401's WWW-Authenticate or a 503's
    Retry-After, which the OpenAPI document publishes."""
    origin = "https://app.example.com"
    monkeypatch.setenv("CORS_ALLOW_ORIGIN", origin)
    api_settings.cache_clear()
    try:
        unauthenticated = api_gateway_rest_event(
            "GET", "/v1/users/user-1/feed", resource="/v1/users/{user_id}/feed", path_parameters={"user_id": "user-1"},
            query={"store_id": "store-1"}, headers={"Origin": origin},
        )  # fmt: skip
        response = lambda_resolver(feed.router).resolve(unauthenticated, LambdaContext())
    finally:
        api_settings.cache_clear()

    headers = response["multiValueHeaders"]
    assert (response["statusCode"], headers["Access-Control-Allow-Origin"]) == (401, [origin])
    (exposed,) = headers.get("Access-Control-Expose-Headers", [""])
    published = {
        header
        for path in json.loads(openapi_document())["paths"].values()
        for operation in path.values()
        for answer in operation["responses"].values()
        for header in answer.get("headers", {})
    }
    assert published == {"WWW-Authenticate", "Retry-After"}
    assert published <= set(exposed.split(","))
