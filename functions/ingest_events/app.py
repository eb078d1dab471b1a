"""ingest_events: POST /v1/events, the admin catalog routes, and the SQS consumer of event batches."""

import gc

# What the imports below make lives as long as the container: the collector would only scan it while it loads (a
# share of the cold start, see functions/assemble_feed/app.py), and in each full collection after (frozen below).
gc.disable()

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from feedcore.api import catalog, events
from feedcore.api.resolvers import lambda_resolver
from feedcore.ingestion.queue import ingest_queue_record, queue_processor
from feedcore.observability import logger, metrics, tracer

app = lambda_resolver(events.router, catalog.router)
# 500-event batches start a full collection every 100–200 batches: without what is loaded by now, ~0.5 ms less a batch
# on average (README, Measured).
gc.freeze()
gc.enable()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def queue_handler(event: dict, context: LambdaContext) -> dict:
    """SQS trigger: each message is one batch; failed messages are returned for redelivery (then the DLQ)."""
    return process_partial_response(
        event=event, record_handler=ingest_queue_record, processor=queue_processor, context=context
    )
