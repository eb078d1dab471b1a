"""One Logger, Tracer and Metrics for the whole service, created once and imported everywhere.

The service name comes from POWERTOOLS_SERVICE_NAME (set per function in template.yaml). Metrics go to
CloudWatch as EMF log lines, or through Powertools' Datadog provider when METRICS_PROVIDER=datadog.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.provider.datadog import DatadogMetrics

from feedcore.settings import MetricsProvider, observability_settings

# The namespace (CloudWatch) or metric name prefix (Datadog) of every metric the service emits.
METRICS_NAMESPACE = "FeedAssembly"


class DatadogServiceMetrics(DatadogMetrics):
    """Datadog's provider, called like the CloudWatch one (`add_metric(name=, unit=, value=)`). Datadog keeps a
    metric's unit in its metadata, not on each point, so the unit is dropped rather than sent as a tag."""

    def add_metric(
        self, name: str, value: float, timestamp: int | None = None, unit: MetricUnit | None = None, **tags: Any
    ) -> None:
        super().add_metric(name=name, value=value, timestamp=timestamp, **tags)


def service_metrics(provider: MetricsProvider) -> Metrics | DatadogServiceMetrics:
    """The metrics object of the chosen provider; both take `add_metric(name=, unit=, value=)` and
    `@log_metrics`. Without the Datadog Lambda extension's library, Datadog metrics are written to the logs
    in the format the Datadog Forwarder reads."""
    if provider == "datadog":
        return DatadogServiceMetrics(namespace=METRICS_NAMESPACE)
    return Metrics(namespace=METRICS_NAMESPACE)


logger = Logger()
tracer = Tracer()
metrics = service_metrics(observability_settings().metrics_provider)


def count(name: str, **dimensions: str) -> None:
    """Count one occurrence of `name` under its own dimensions (e.g. the experiment variant): a single EMF
    record on CloudWatch, a tagged point on Datadog."""
    if isinstance(metrics, DatadogServiceMetrics):
        metrics.add_metric(name=name, value=1, **dimensions)
        return
    with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=METRICS_NAMESPACE) as metric:
        for dimension, value in dimensions.items():
            metric.add_dimension(name=dimension, value=value)
