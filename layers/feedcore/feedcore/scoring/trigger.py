"""The recompute function's scheduled invocations: what the task is, and running it. EventBridge Scheduler passes
its configured input as the event; an EventBridge rule passes an envelope whose `detail` holds it. The input asks
for a score refresh (`{"mode": …}`) or for the event log's retention (`{"keep_days": N}`)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import TypeAdapter

from feedcore.ingestion.retention import RetentionRequest, RetentionResult, apply_retention
from feedcore.scoring.service import RecomputeRequest, RecomputeResult, refresh_scores

_SCHEDULED_TASK = TypeAdapter(RecomputeRequest | RetentionRequest)
# Time kept back from the invocation's remaining time to commit, record the run and flush metrics.
SAFETY_MARGIN_MS = 10_000


def scheduled_task_from_event(event: Any) -> RecomputeRequest | RetentionRequest:
    """The task in a Scheduler input or an EventBridge event; raises ValidationError when malformed."""
    if isinstance(event, dict) and "detail-type" in event:  # Scheduler's input may be any JSON: 5 is refused too
        envelope = parse(event=event, model=EventBridgeModel)
        return _SCHEDULED_TASK.validate_python(envelope.detail or {})
    return _SCHEDULED_TASK.validate_python(event)


def run_scheduled_task(event: Any, remaining_ms: int) -> RecomputeResult | RetentionResult:
    """Run the task the event asks for within the invocation's `remaining_ms`, less SAFETY_MARGIN_MS; its result.
    Raises ValidationError when the event is malformed."""
    task = scheduled_task_from_event(event)
    budget_ms = remaining_ms - SAFETY_MARGIN_MS
    if isinstance(task, RetentionRequest):
        return apply_retention(task.keep_days, time_budget_ms=budget_ms)
    return refresh_scores(task, time_budget_ms=budget_ms)
