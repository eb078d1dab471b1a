"""What invoked the recompute function on a schedule: EventBridge Scheduler passes its configured input as the
event; an EventBridge rule passes an envelope whose `detail` holds it. The input asks for a score refresh
(`{"mode": …}`) or for the event log's retention (`{"keep_days": N}`)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import TypeAdapter

from feedcore.ingestion.retention import RetentionRequest
from feedcore.scoring.service import RecomputeRequest

_SCHEDULED_TASK = TypeAdapter(RecomputeRequest | RetentionRequest)


def scheduled_task_from_event(event: dict[str, Any]) -> RecomputeRequest | RetentionRequest:
    """The task in a Scheduler input or an EventBridge event; raises ValidationError when malformed."""
    if "detail-type" in event:
        envelope = parse(event=event, model=EventBridgeModel)
        return _SCHEDULED_TASK.validate_python(envelope.detail or {})
    return _SCHEDULED_TASK.validate_python(event)
