"""recompute_scores: invoked by EventBridge Scheduler (or an EventBridge rule) to refresh the scores."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from feedcore.observability import logger, metrics, tracer
from feedcore.scoring.service import recompute_scores
from feedcore.scoring.trigger import recompute_request_from_event


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return recompute_scores(recompute_request_from_event(event)).model_dump(mode="json")
