"""assemble_feed: GET /v1/users/{user_id}/feed."""

import gc

# What the imports below make lives as long as the container: the collector would only scan it, again and again while
# it loads (~5 % of a cold start: README, Measured), and in each full collection after (frozen below).
gc.disable()

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from feedcore.api import feed
from feedcore.api.resolvers import lambda_resolver
from feedcore.observability import logger, metrics, tracer
from feedcore.snapstart import register_snapstart_hooks

app = lambda_resolver(feed.router)
register_snapstart_hooks(app, feed.REJECTED_REQUEST)
gc.freeze()
gc.enable()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
