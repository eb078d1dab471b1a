"""Routes of the ingest_events function."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from feedcore.api.models import EventBatch, IngestResult
from feedcore.ingestion.service import ingest_batch

router = APIGatewayRouter()


@router.post(
    "/v1/events",
    summary="Record a batch of interaction events",
    description="Stores each event once by event_id; retrying the same batch is safe. "
    "The counts cover only what was committed.",
    tags=["events"],
)
def post_events(batch: EventBatch) -> IngestResult:
    return ingest_batch(batch)
