"""recompute_scores: invoked by EventBridge Scheduler (or an EventBridge rule) to refresh the scores and
import new model score files, or daily to apply the event log's retention; and, as the shard consumer, by SQS
with user shards of a fanned-out chunk."""

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from feedcore.observability import logger, metrics, tracer
from feedcore.scoring.shard_consumer import score_shard_record, shard_processor
from feedcore.scoring.trigger import run_scheduled_task


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return run_scheduled_task(event, context.get_remaining_time_in_millis()).model_dump(mode="json")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def shard_handler(event: dict, context: LambdaContext) -> dict:
    """SQS trigger: each message is one user shard; failed messages are returned for redelivery (then the DLQ)."""
    return process_partial_response(
        event=event, record_handler=score_shard_record, processor=shard_processor, context=context
    )
