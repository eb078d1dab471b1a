"""What invoked the recompute: EventBridge Scheduler passes its configured input as the event;
an EventBridge rule passes an envelope whose `detail` holds it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel

from feedcore.scoring.service import RecomputeRequest


def recompute_request_from_event(event: dict[str, Any]) -> RecomputeRequest:
    """The request in a Scheduler input or an EventBridge event; raises ValidationError when malformed."""
    if "detail-type" in event:
        envelope = parse(event=event, model=EventBridgeModel)
        return RecomputeRequest.model_validate(envelope.detail or {})
    return RecomputeRequest.model_validate(event)
