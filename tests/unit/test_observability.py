"""Metrics go to CloudWatch (EMF) by default and to Datadog when METRICS_PROVIDER=datadog, with the same calls."""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

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
