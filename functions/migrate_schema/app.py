"""migrate_schema: the CloudFormation custom resource that applies the schema migrations on deploy."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from feedcore.cloudformation import answer_custom_resource
from feedcore.observability import logger, tracer
from feedcore.schema import apply_schema


# Not log_event: CloudFormation's request holds a presigned URL that answers for the stack (feedcore.cloudformation).
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return answer_custom_resource(event, context.get_remaining_time_in_millis(), context.log_stream_name, apply_schema)
