"""The settings models and the stack's environment agree: every variable template.yaml gives a function is read by a
settings field (or by a library), and each function's environment is valid for the settings it reads."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from feedcore import settings
from feedcore.settings import DatabaseSettings, FeedSettings, IngestSettings, ModelScoreSettings, ProxyProbeSettings
from tests.infra.support import stack_template

SETTINGS_MODELS = [
    model for model in vars(settings).values()
    if isinstance(model, type) and issubclass(model, BaseSettings) and model is not BaseSettings
]  # fmt: skip
# Read by libraries, not by a settings model: Powertools' service name and log level, pydantic's plugin scan.
READ_BY_LIBRARIES = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_LOG_LEVEL", "PYDANTIC_DISABLE_PLUGINS"}


def variable_of(model: type[BaseSettings], name: str) -> str:
    """The environment variable a field is read from: its alias, or the model's prefix and the field's name."""
    alias = model.model_fields[name].validation_alias
    return (alias if isinstance(alias, str) else model.model_config["env_prefix"] + name).upper()


SETTINGS_VARIABLES = {variable_of(model, name) for model in SETTINGS_MODELS for name in model.model_fields}


def function_environments() -> dict[str, dict[str, str]]:
    """Each function's environment in the stack (Globals and its own), as deployed with the parameters' defaults;
    a value another resource gives is a placeholder."""
    template = stack_template()
    defaults = {name: str(spec["Default"]) for name, spec in template["Parameters"].items() if "Default" in spec}

    def value(node: object) -> str:
        if isinstance(node, dict):
            return defaults.get(node.get("Ref"), "set-by-cloudformation")
        return str(node)

    shared = template["Globals"]["Function"]["Environment"]["Variables"]
    return {
        name: {
            variable: value(node)
            for variable, node in (shared | resource["Properties"].get("Environment", {}).get("Variables", {})).items()
        }
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


@pytest.mark.parametrize("function", sorted(function_environments()))
def test_every_variable_the_stack_gives_a_function_is_read_by_a_setting(function: str) -> None:
    unread = set(function_environments()[function]) - SETTINGS_VARIABLES - READ_BY_LIBRARIES
    assert not unread, f"{function}: no setting reads {unread} (a misspelt or renamed variable keeps its default)"


@pytest.mark.parametrize("function", sorted(function_environments()))
def test_each_function_starts_with_the_environment_the_stack_gives_it(
    function: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings' own rules (DB_IAM_AUTH names its endpoint, a Lambda signs cursors with a real key, no development
    tokens, each value in its range) hold for what the stack sets; FeedSettings is the feed function's alone."""
    for variable in SETTINGS_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    for variable, value in function_environments()[function].items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", function)
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")

    for model in SETTINGS_MODELS:
        if model is not FeedSettings or function == "AssembleFeedFunction":
            model()  # raises ValidationError


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [("INGEST_MAX_EVENTS_PER_BATCH", "0", "max_events_per_batch"), ("DB_PORT", "port", "db_port"),
     ("MODEL_SCORES_PREFIX", "model-scores", "model_scores_prefix")],
)  # fmt: skip
def test_an_invalid_value_fails_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)
    model = {"INGEST": IngestSettings, "DB": DatabaseSettings, "MODEL": ModelScoreSettings}[variable.split("_")[0]]
    with pytest.raises(ValidationError, match=field):
        model()


def test_secrets_stay_hidden_and_cross_field_rules_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2@h/db")
    assert "hunter2" not in repr(DatabaseSettings())
    monkeypatch.setenv("DB_IAM_AUTH", "1")
    monkeypatch.setenv("DB_HOST", "proxy")
    with pytest.raises(ValidationError, match="DB_IAM_AUTH needs"):
        DatabaseSettings()


def test_the_proxy_login_check_is_configured_whole_or_not_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset (a local run) it is skipped, and says so (feedcore.db.proxy_probe); half set it would be skipped silently
    or sign tokens for no user."""
    assert not ProxyProbeSettings().enabled
    monkeypatch.setenv("DB_PROXY_PROBE_HOST", "feed-db.proxy-c1abcdefgh2i.us-east-1.rds.amazonaws.com")
    with pytest.raises(ValidationError, match="together, or neither"):
        ProxyProbeSettings()
    monkeypatch.setenv("DB_PROXY_PROBE_USER", "feed_probe")
    assert ProxyProbeSettings().enabled


def test_erasure_waits_that_leave_no_time_for_the_deletes_are_refused_naming_both_settings() -> None:
    # These validated: an erasure would have waited 8 s for locks within a limit of 1 s in all.
    with pytest.raises(ValidationError, match=r"INGEST_ERASURE_WAIT_MS \(8000\) leaves no time of "
                       r"INGEST_ERASURE_TIMEOUT_MS \(1000\) for the deletes"):  # fmt: skip
        IngestSettings(erasure_wait_ms=8000, erasure_timeout_ms=1000)
    assert IngestSettings(erasure_wait_ms=700, erasure_timeout_ms=1000).erasure_wait_ms == 700
