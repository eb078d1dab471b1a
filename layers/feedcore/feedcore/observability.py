"""One Logger, Tracer and Metrics for the whole service, created once and imported everywhere.

The service name comes from POWERTOOLS_SERVICE_NAME (set per function in template.yaml).
"""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
# The CloudWatch namespace of every metric the service emits.
metrics = Metrics(namespace="FeedAssembly")
