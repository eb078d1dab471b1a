"""recompute_scores: invoked by EventBridge Scheduler (or an EventBridge rule) to refresh the scores and
import new model score files, or daily to apply the event log's retention; and, as the shard consumer, by SQS
with user shards of a fanned-out chunk."""

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from feedcore.ingestion.retention import RetentionRequest, apply_retention
from feedcore.observability import logger, metrics, tracer
from feedcore.scoring.service import refresh_scores
from feedcore.scoring.shard_consumer import score_shard_record, shard_processor
from feedcore.scoring.trigger import scheduled_task_from_event

# Time kept back from the invocation's remaining time to commit, record the run and flush metrics.
SAFETY_MARGIN_MS = 10_000


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    task = scheduled_task_from_event(event)
    budget_ms = context.get_remaining_time_in_millis() - SAFETY_MARGIN_MS
    if isinstance(task, RetentionRequest):
        return apply_retention(task.keep_days, time_budget_ms=budget_ms).model_dump(mode="json")
    return refresh_scores(task, time_budget_ms=budget_ms).model_dump(mode="json")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def shard_handler(event: dict, context: LambdaContext) -> dict:
    """SQS trigger: each message is one user shard; failed messages are returned for redelivery (then the DLQ)."""
    return process_partial_response(
        event=event, record_handler=score_shard_record, processor=shard_processor, context=context
    )
