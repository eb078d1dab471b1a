"""Routes of the assemble_feed function."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from feedcore.api.models import Feed, Identifier
from feedcore.feed.service import assemble_feed
from feedcore.settings import feed_settings

router = APIGatewayRouter()


@router.get(
    "/v1/users/<user_id>/feed",
    summary="The user's home feed at a store",
    description="Ordered sections of items available at the store, each with a reason.",
    tags=["feed"],
)
def get_feed(
    user_id: Annotated[Identifier, Path(description="The user whose feed this is")],
    store_id: Annotated[Identifier, Query(description="The store the user shops at")],
    limit: Annotated[int | None, Query(ge=1, le=50, description="Items per section")] = None,
) -> Feed:
    return assemble_feed(user_id, store_id, limit or feed_settings().section_size)
