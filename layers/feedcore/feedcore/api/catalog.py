"""Admin routes of the ingest_events function: catalog, store availability and user erasure."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from feedcore.api.authorization import ADMIN_SECURITY
from feedcore.api.catalog_models import AvailabilityUpdate, CatalogResult, CatalogUpdate, UserDeletion
from feedcore.api.models import Identifier
from feedcore.api.problems import BODY_ROUTE_ERRORS, route_responses
from feedcore.ingestion.catalog import update_availability, upsert_catalog
from feedcore.ingestion.privacy import delete_user

router = APIGatewayRouter()


@router.put(
    "/v1/items",
    summary="Insert or update catalog products",
    description="All or nothing; items are matched by item_id.",
    tags=["admin"],
    responses=route_responses(CatalogResult, *BODY_ROUTE_ERRORS),
    security=ADMIN_SECURITY,
)
def put_items(update: CatalogUpdate) -> CatalogResult:
    return upsert_catalog(update)


@router.put(
    "/v1/stores/<store_id>/availability",
    summary="Set what a store carries and its shelf prices",
    description="All or nothing; every item must already be in the catalog. Creates the store if it is new.",
    tags=["admin"],
    responses=route_responses(CatalogResult, *BODY_ROUTE_ERRORS),
    security=ADMIN_SECURITY,
)
def put_availability(
    store_id: Annotated[Identifier, Path(description="The store")], update: AvailabilityUpdate
) -> CatalogResult:
    return update_availability(store_id, update)


@router.delete(
    "/v1/users/<user_id>",
    summary="Erase a user's events, scores and profile",
    description="Idempotent: deleting an unknown or already deleted user succeeds with zero counts.",
    tags=["admin"],
    responses=route_responses(
        UserDeletion,
        HTTPStatus.UNAUTHORIZED,
        HTTPStatus.FORBIDDEN,
        HTTPStatus.UNPROCESSABLE_ENTITY,
        HTTPStatus.SERVICE_UNAVAILABLE,
    ),
    security=ADMIN_SECURITY,
)
def delete_user_data(user_id: Annotated[Identifier, Path(description="The user")]) -> UserDeletion:
    return delete_user(user_id, invocation_left_ms=router.lambda_context.get_remaining_time_in_millis())
