"""Routes of the ingest_events function: events, and the catalog, availability and privacy endpoints."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from feedcore.api.authorization import authorize_events
from feedcore.api.event_models import EventBatch, IngestResult
from feedcore.ingestion.service import ingest_batch

router = APIGatewayRouter()


@router.post(
    "/v1/events",
    summary="Record a batch of interaction events",
    description="Stores each valid event once by event_id, so retrying a batch is safe; reports each "
    "duplicate and each rejected event by its index. The counts cover only what was committed. A batch in "
    "which no event is valid gets 422 and stores nothing.",
    tags=["events"],
)
def post_events(batch: EventBatch) -> IngestResult:
    authorize_events(router.current_event, batch)
    body = router.current_event.decoded_body or ""
    return ingest_batch(batch, body_bytes=len(body.encode()))
