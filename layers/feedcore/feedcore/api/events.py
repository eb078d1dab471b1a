"""Routes of the ingest_events function: events, and the catalog, availability and privacy endpoints."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import ValidationError

from feedcore.api.authorization import authorize_events
from feedcore.api.event_fast_path import usual_event_batch
from feedcore.api.event_models import EventBatch, IngestResult
from feedcore.api.problems import BODY_ROUTE_ERRORS, JSON, route_responses
from feedcore.errors import RequestTooLarge
from feedcore.ingestion.service import ingest_batch
from feedcore.settings import ingest_settings

router = APIGatewayRouter()


def event_batch_from_body(app: ApiGatewayResolver, next_middleware: NextMiddleware):
    """The events route's request validation, in place of Powertools' (turned off for the route): the usual body
    is read by the compiled fast path (feedcore.api.event_fast_path) into a UsualEventBatch, which ingestion stores
    from its Structs; any other by pydantic-core from its JSON text in one pass into an EventBatch, where
    Powertools would parse it into Python objects and then validate those (README, Measured). The route's
    signature still declares EventBatch, the published contract, so the OpenAPI document publishes it; the batch
    reaches the route as Powertools' validation passes it (its route arguments in the context), and bad input
    raises the errors Powertools raises, mapped to the same problem+json."""
    event = app.current_event
    content_type = event.headers.get("content-type", "")
    if content_type and content_type.split(";")[0].strip().lower() != JSON:  # media types ignore case
        message = f"Unsupported content type: {content_type}"
        error = {"type": "unsupported_content_type", "loc": ("body",), "msg": message}
        raise RequestUnsupportedContentType("Unsupported content type", errors=[error])
    body = event.decoded_body
    if not body:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    limit = ingest_settings().max_body_bytes
    if (size := len(body.encode())) > limit:  # before reading it
        raise RequestTooLarge("bytes", size, limit, field="body")
    batch = usual_event_batch(body)
    if batch is None:  # some event is malformed, or spelled other than the fast path reads: pydantic decides
        try:
            batch = EventBatch.model_validate_json(body)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
            ) from exc
    app.append_context(_route_args={**app.context.get("_route_args", {}), "batch": batch})
    return next_middleware(app)


@router.post(
    "/v1/events",
    summary="Record a batch of interaction events",
    description="Stores each valid event once by event_id, so retrying a batch is safe; reports each "
    "duplicate and each rejected event by its index. The counts cover only what was committed. A batch in "
    "which no event is valid gets 422 and stores nothing.",
    tags=["events"],
    responses=route_responses(IngestResult, *BODY_ROUTE_ERRORS),
    enable_validation=False,
    middlewares=[event_batch_from_body],
)
def post_events(batch: EventBatch) -> IngestResult:
    authorize_events(router.current_event, batch)
    return ingest_batch(batch)
