"""Routes of the assemble_feed function."""

# Annotations are evaluated as the route is declared (no `from __future__ import annotations`): Powertools would
# compile and evaluate each parameter's from its text on the first request (README: Measured > Cold start).

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from feedcore.api.models import TAG_PATTERN, Feed, Identifier
from feedcore.api.problems import route_responses
from feedcore.feed.service import FeedRequest, assemble_feed

router = APIGatewayRouter()

# Longer than any cursor the feed issues: one for a 64-character user id and store id and the longest exclude_tags
# has 830 characters (tests/unit/test_openapi.py checks).
MAX_CURSOR_LENGTH = 1024


@router.get(
    "/v1/users/<user_id>/feed",
    summary="A page of the user's home feed at a store",
    description="Ordered sections of items available at the store, each item with a reason and a tracking "
    "token. The first page ranks the whole feed and keeps it for FEED_SNAPSHOT_TTL_S seconds; `next_cursor` "
    "pages through that same ranking, so pages never repeat or skip an item. A tampered cursor gets 400, an "
    "expired one 410. When the database fails, the answer is still 200, with cached popular items and "
    "`degraded: true`.",
    tags=["feed"],
    # The page comes as JSON text written by the feed service (feedcore.feed.service); the Feed model documents
    # it here rather than in the return type, which would have Powertools validate and serialize it again. No
    # 503: a failing database gives a degraded 200.
    responses=route_responses(
        Feed,
        HTTPStatus.BAD_REQUEST,
        HTTPStatus.UNAUTHORIZED,
        HTTPStatus.FORBIDDEN,
        HTTPStatus.GONE,
        HTTPStatus.UNPROCESSABLE_ENTITY,
    ),
)
def get_feed(
    user_id: Annotated[Identifier, Path(description="The user whose feed this is")],
    store_id: Annotated[Identifier, Query(description="The store the user shops at")],
    limit: Annotated[int | None, Query(ge=1, le=30, description="Sections per page (default 4)")] = None,
    cursor: Annotated[
        str | None, Query(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page")
    ] = None,
    exclude_tags: Annotated[
        str | None,
        Query(
            max_length=400,
            pattern=f"^{TAG_PATTERN}(,{TAG_PATTERN})*$",
            description="Comma-separated catalog tags to leave out, in any case, e.g. `alcohol,tobacco`",
        ),
    ] = None,  # fmt: skip
    debug: Annotated[bool, Query(description="Add each item's score breakdown and the removed candidates")] = False,
):  # no return type: it would be validated as the response (see responses)
    page = assemble_feed(
        FeedRequest(
            user_id=user_id,
            store_id=store_id,
            page_sections=limit,
            cursor=cursor,
            # lowered as catalog tags are stored: `Alcohol` excludes `alcohol`
            exclude_tags=frozenset(exclude_tags.lower().split(",")) if exclude_tags else frozenset(),
            debug=debug,
        )
    )
    return Response(200, content_type="application/json", body=page.body)


# A request of this route that validation turns away (store_id breaks the Identifier pattern), which warms the
# route's validation without a database or AWS call (feedcore.snapstart).
REJECTED_REQUEST = {
    "resource": "/v1/users/{user_id}/feed", "path": "/v1/users/snapshot/feed", "httpMethod": "GET",
    "headers": {}, "multiValueHeaders": {}, "queryStringParameters": {"store_id": "!"},
    "multiValueQueryStringParameters": {"store_id": ["!"]}, "pathParameters": {"user_id": "snapshot"},
    "body": None, "isBase64Encoded": False,
    "requestContext": {"resourcePath": "/v1/users/{user_id}/feed", "httpMethod": "GET", "requestId": "snapshot",
                       "authorizer": {"claims": {"sub": "snapshot"}}},
}  # fmt: skip
