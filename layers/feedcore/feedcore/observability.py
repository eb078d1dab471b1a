"""One Logger, Tracer and Metrics for the whole service, created once and imported everywhere.

The service name comes from POWERTOOLS_SERVICE_NAME (set per function in template.yaml). Metrics go to
CloudWatch as EMF log lines, or through Powertools' Datadog provider when METRICS_PROVIDER=datadog. The X-Ray
SDK is imported only where the Tracer records subsegments (in Lambda, unless POWERTOOLS_TRACE_DISABLED).
"""

from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import formatter as log_formatter
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.constants import MAX_METRICS
from aws_lambda_powertools.metrics.provider.datadog import DatadogMetrics

from feedcore.settings import MetricsProvider, ObservabilitySettings, observability_settings

# The namespace (CloudWatch) or metric name prefix (Datadog) of every metric the service emits.
METRICS_NAMESPACE = "FeedAssembly"

# Log records and EMF documents are encoded by msgspec rather than the json module (~10 µs less each on a feed page):
# the same keys and values, non-ASCII text as is and str() of what neither knows, as Powertools' default does.
# Datetimes, sets and enums, which no record of the service carries, would be written as msgspec writes them (ISO 8601,
# arrays, values), not str().
_json_encoder = msgspec.json.Encoder(enc_hook=str)


def _json(document: dict[str, Any]) -> str:
    return _json_encoder.encode(document).decode()


class EMFProvider(AmazonCloudWatchEMFProvider):
    """Powertools' CloudWatch provider, its metric set printed through msgspec (see _json)."""

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        if not self.metric_set or is_metrics_disabled():  # Powertools' warning, error or silence
            super().flush_metrics(raise_on_empty_metrics)
            return
        print(_json(self.serialize_metric_set()))
        self.clear_metrics()


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
    cloudwatch = Metrics(namespace=METRICS_NAMESPACE)
    cloudwatch.provider = EMFProvider(
        namespace=METRICS_NAMESPACE,
        metric_set=cloudwatch.metric_set,
        dimension_set=cloudwatch.dimension_set,
        metadata_set=cloudwatch.metadata_set,
        default_dimensions=cloudwatch.default_dimensions,
    )
    return cloudwatch


class Untraced:
    """Stands in for the Tracer where it would not trace (outside Lambda, or POWERTOOLS_TRACE_DISABLED): a
    disabled Tracer still imports the X-Ray SDK, whose recorder builds botocore clients at import (~0.4 s of a
    cold start)."""

    def capture_lambda_handler(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        return handler


def service_tracer(settings: ObservabilitySettings) -> Tracer | Untraced:
    """Powertools' Tracer (X-Ray subsegments and annotations) where it traces, else a stand-in."""
    return Tracer() if settings.xray_sdk_tracing else Untraced()


# Powertools' formatter tests every attribute of each log record, and each of its own keys, for membership of its
# reserved names, a tuple of 24 (~800 string comparisons a record: ~25 of the ~60 µs of the feed's log line). The same
# names as a frozenset: its pinned version (3.37) only tests membership (`in`, `not in`), so records keep their keys.
log_formatter.RESERVED_LOG_ATTRS = frozenset(log_formatter.RESERVED_LOG_ATTRS)
logger = Logger(json_serializer=_json)
tracer = service_tracer(observability_settings())
metrics = service_metrics(observability_settings().metrics_provider)


def add_metrics(values: Sequence[tuple[str, MetricUnit, float]]) -> None:
    """Add (name, unit, value) metrics to the service's metric set, emitted with it when the invocation ends (in
    the same EMF record on CloudWatch), as `metrics.add_metric` would add each. On CloudWatch they go straight into
    the metric set: add_metric's checks and debug message cost ~10 µs a metric, a tenth of a feed page's metrics;
    the names here are the service's own, the units members of MetricUnit, the resolution the standard one."""
    if isinstance(metrics, DatadogServiceMetrics) or len(metrics.metric_set) + len(values) >= MAX_METRICS:
        for name, unit, value in values:  # Datadog's points; or a set that add_metric flushes when full
            metrics.add_metric(name=name, unit=unit, value=value)
        return
    metric_set = metrics.metric_set
    for name, unit, value in values:
        metric = metric_set.get(name)
        if metric is None:
            metric_set[name] = {"Unit": unit.value, "StorageResolution": 60, "Value": [float(value)]}
        else:
            metric["Unit"] = unit.value
            metric["Value"].append(float(value))


def count(name: str, **dimensions: str) -> None:
    """Count one occurrence of `name` under its own dimensions (e.g. the experiment variant): a single EMF
    record on CloudWatch (as Powertools' single_metric writes it, without making a provider for it: ~0.1 ms),
    a tagged point on Datadog."""
    if isinstance(metrics, DatadogServiceMetrics):
        metrics.add_metric(name=name, value=1, **dimensions)
        return
    provider = metrics.provider
    if provider.service:
        dimensions["service"] = provider.service
    record = provider.serialize_metric_set(
        metrics={name: {"Unit": MetricUnit.Count.value, "StorageResolution": 60, "Value": [1.0]}},
        dimensions=dimensions,
        metadata={},
    )
    print(_json(record))
