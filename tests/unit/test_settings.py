"""Settings are read from the environment by pydantic-settings: prefix + field name or the field's
alias, in any case, keyword arguments first, validated (a bad value fails at start, naming the field)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from feedcore.settings import DatabaseSettings, FanoutSettings, FeedSettings, IngestSettings, ObservabilitySettings


def test_a_field_is_read_from_its_prefixed_variable_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_MAX_EVENTS_PER_BATCH", "250")
    monkeypatch.setenv("feed_ranking_config_file", "/tmp/ranking.json")
    assert IngestSettings().max_events_per_batch == 250
    assert FeedSettings().ranking_config_file == Path("/tmp/ranking.json")


def test_a_field_with_an_alias_is_read_from_the_alias_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("TRACE_DISABLED", "false")
    assert ObservabilitySettings().trace_disabled is True


def test_keyword_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORING_FANOUT_SHARDS", "8")
    assert FanoutSettings().shards == 8
    assert FanoutSettings(shards=16).shards == 16


def test_other_variables_and_prefixes_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARDS", "99")
    monkeypatch.setenv("FEED_SHARDS", "99")
    assert FanoutSettings().shards == 4


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [("INGEST_MAX_EVENTS_PER_BATCH", "0", "max_events_per_batch"), ("DB_PORT", "port", "db_port")],
)
def test_an_invalid_value_fails_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=field):
        IngestSettings() if variable.startswith("INGEST_") else DatabaseSettings()


def test_secrets_stay_hidden_and_cross_field_rules_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2@h/db")
    assert "hunter2" not in repr(DatabaseSettings())
    monkeypatch.setenv("DB_IAM_AUTH", "1")
    monkeypatch.setenv("DB_HOST", "proxy")
    with pytest.raises(ValidationError, match="DB_IAM_AUTH needs"):
        DatabaseSettings()
