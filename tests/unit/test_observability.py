"""Metrics go to CloudWatch (EMF) by default and to Datadog when METRICS_PROVIDER=datadog, with the same calls."""

from __future__ import annotations

import json
import sys

import pytest
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from feedcore import observability
from feedcore.observability import METRICS_NAMESPACE, service_metrics
from feedcore.settings import ObservabilitySettings


def emitted(capsys: pytest.CaptureFixture[str], provider: str) -> list[dict]:
    metrics = service_metrics(provider)  # type: ignore[arg-type]
    metrics.clear_metrics()  # instances of a provider share one metric set; other tests may have left some
    metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=3)
    metrics.flush_metrics()
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_cloudwatch_metrics_are_emf_lines(capsys: pytest.CaptureFixture[str]) -> None:
    (line,) = emitted(capsys, "cloudwatch")
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == METRICS_NAMESPACE
    assert directive["Metrics"] == [{"Name": "EventsAccepted", "Unit": "Count"}]
    assert line["EventsAccepted"] == [3.0]


def test_datadog_metrics_take_the_same_call_and_drop_the_unit(capsys: pytest.CaptureFixture[str]) -> None:
    (line,) = emitted(capsys, "datadog")
    # The Datadog Forwarder's log format: metric, value, timestamp, tags.
    assert line["m"] == f"{METRICS_NAMESPACE}.EventsAccepted"
    assert line["v"] == 3
    assert not any("unit" in tag.lower() for tag in line["t"])


def test_the_provider_is_a_typed_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_PROVIDER", "datadog")
    assert ObservabilitySettings().metrics_provider == "datadog"
    monkeypatch.setenv("METRICS_PROVIDER", "statsd")
    with pytest.raises(ValidationError):
        ObservabilitySettings()


@pytest.mark.parametrize("provider", ["cloudwatch", "datadog"])
def test_a_count_carries_its_own_dimensions_with_either_provider(
    provider: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    provided = service_metrics(provider)  # type: ignore[arg-type]
    provided.clear_metrics()
    monkeypatch.setattr(observability, "metrics", provided)

    observability.count("FeedServed", variant="control", fallback="none")
    provided.flush_metrics(raise_on_empty_metrics=False)

    (line,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    if provider == "cloudwatch":
        assert line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][:2] == ["variant", "fallback"]
        assert (line["variant"], line["fallback"], line["FeedServed"]) == ("control", "none", [1.0])
    else:
        assert line["m"] == f"{METRICS_NAMESPACE}.FeedServed"
        assert {"variant:control", "fallback:none"} <= set(line["t"])


@pytest.mark.parametrize("provider", ["cloudwatch", "datadog"])
def test_metrics_added_together_are_emitted_as_add_metric_emits_them(
    provider: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    provided = service_metrics(provider)  # type: ignore[arg-type]
    provided.clear_metrics()
    monkeypatch.setattr(observability, "metrics", provided)
    provided.add_metric(name="FeedItems", unit=MetricUnit.Count, value=2)

    observability.add_metrics([("FeedItems", MetricUnit.Count, 3), ("FeedLatency", MetricUnit.Milliseconds, 1.5)])
    provided.flush_metrics()

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    if provider == "cloudwatch":
        (line,) = lines  # one record with the metric added before
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        assert directive["Metrics"] == [
            {"Name": "FeedItems", "Unit": "Count"},
            {"Name": "FeedLatency", "Unit": "Milliseconds"},
        ]
        assert (line["FeedItems"], line["FeedLatency"]) == ([2.0, 3.0], [1.5])
    else:
        assert [(line["m"], line["v"]) for line in lines] == [
            (f"{METRICS_NAMESPACE}.FeedItems", 2),
            (f"{METRICS_NAMESPACE}.FeedItems", 3),
            (f"{METRICS_NAMESPACE}.FeedLatency", 1.5),
        ]


def test_a_count_is_the_record_single_metric_writes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.metrics import single_metric

    provided = service_metrics("cloudwatch")
    monkeypatch.setattr(observability, "metrics", provided)
    with single_metric(name="FeedServed", unit=MetricUnit.Count, value=1, namespace=METRICS_NAMESPACE) as metric:
        metric.add_dimension(name="variant", value="control")
        metric.add_dimension(name="fallback", value="none")
    observability.count("FeedServed", variant="control", fallback="none")

    expected, line = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    del expected["_aws"]["Timestamp"], line["_aws"]["Timestamp"]
    assert line == expected


def test_the_service_log_line_has_the_keys_and_values_of_powertools_default_encoding() -> None:
    # msgspec, not the json module, encodes the service's log records: the same document, including a Counter (as
    # the feed logs its candidates), non-ASCII text, floats, and str() of a type neither encoder knows.
    from collections import Counter
    from io import StringIO
    from pathlib import PurePosixPath

    from aws_lambda_powertools import Logger

    extra = {
        "candidates": Counter({"buy_again": 40, "model:als": 200}),
        "sections": {"épicerie": 8},
        "latency": 1e-05,
        "large": 1e16,
        "key": PurePosixPath("models/als.npz"),
        "nothing": None,
        "flags": [True, False],
    }
    lines = []
    # Another service name: Loggers of one service share their handler, and so the service's serializer. It takes
    # the keys the service logger holds (an earlier test's Lambda context, the service name).
    default = Logger(service="powertools-default")
    default.append_keys(**observability.logger.get_current_keys())
    for logger in (observability.logger, default):
        stream = StringIO()
        logger.registered_handler.setStream(stream)
        try:
            logger.info("feed assembled", extra=extra)
        finally:
            logger.registered_handler.setStream(sys.stdout)
        lines.append(json.loads(stream.getvalue()))
    ours, default = lines
    for line in lines:
        del line["timestamp"]
    assert ours == default
    assert ours["candidates"] == {"buy_again": 40, "model:als": 200}
    assert ours["key"] == "models/als.npz"


def test_the_service_flush_prints_powertools_emf_document_and_keeps_its_empty_set_checks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The CloudWatch provider prints its metric set through msgspec; the document is the one Powertools serializes.
    from aws_lambda_powertools.metrics.exceptions import SchemaValidationError

    provided = service_metrics("cloudwatch")
    provided.clear_metrics()
    provided.add_metric(name="FeedLatency", unit=MetricUnit.Milliseconds, value=1e-05)
    provided.add_metric(name="FeedLatency", unit=MetricUnit.Milliseconds, value=4.25)
    provided.add_dimension(name="variant", value="contrôle")
    provided.add_metadata(key="feed_id", value="f" * 32)
    expected = json.loads(json.dumps(provided.provider.serialize_metric_set()))
    provided.flush_metrics()

    (line,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    del expected["_aws"]["Timestamp"], line["_aws"]["Timestamp"]
    assert line == expected
    assert line["FeedLatency"] == [1e-05, 4.25] and line["variant"] == "contrôle"
    assert not provided.metric_set  # flushed
    with pytest.warns(UserWarning, match="No application metrics"):
        provided.flush_metrics()
    with pytest.raises(SchemaValidationError):
        provided.flush_metrics(raise_on_empty_metrics=True)


def test_log_records_keep_the_keys_powertools_reserved_names_give_them(monkeypatch: pytest.MonkeyPatch) -> None:
    # The formatter's reserved names are a frozenset (a tuple in Powertools: a scan per record attribute); a record
    # is the same either way: reserved names among the extras are dropped, the formatter's own keys are formatted.
    from io import StringIO

    from aws_lambda_powertools.logging import formatter

    assert isinstance(formatter.RESERVED_LOG_ATTRS, frozenset)
    extra = {"feed_id": "f" * 32, "timestamp": "not this", "location": "nor this", "candidates": {"popular": 20}}
    lines = []
    for reserved in (formatter.RESERVED_LOG_ATTRS, tuple(sorted(formatter.RESERVED_LOG_ATTRS))):
        monkeypatch.setattr(formatter, "RESERVED_LOG_ATTRS", reserved)
        stream = StringIO()
        observability.logger.registered_handler.setStream(stream)
        try:
            observability.logger.info("feed assembled", extra=extra)
        finally:
            observability.logger.registered_handler.setStream(sys.stdout)
        line = json.loads(stream.getvalue())
        del line["timestamp"]
        lines.append(line)
    ours, powertools = lines
    assert ours == powertools
    assert ours["feed_id"] == "f" * 32 and ours["location"].startswith("test_log_records_keep")
    assert set(formatter.RESERVED_LOG_ATTRS) >= {"name", "msg", "levelname", "asctime", "location", "timestamp"}
