"""The request path's calls to AWS, through Powertools: a secret's text from Secrets Manager (the cursor key) and
a configuration profile from AppConfig (the ranking config). Short timeouts and one retry, so a slow endpoint
costs a request about a second, never the Lambda's whole timeout. The callers decide how long a value is cached.

botocore and the Powertools utilities are imported on first use: a function starts without them (cold start).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from feedcore.errors import ConfigurationError


@lru_cache(maxsize=1)
def _request_path_calls():
    from botocore.config import Config

    return Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 2})


@lru_cache(maxsize=1)
def _secrets():
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto_config=_request_path_calls())


def secret_text(secret_arn: str, what: str, *, max_age_s: int) -> str:
    """The text of the Secrets Manager secret `secret_arn`, fetched again after `max_age_s`; `what` names it in
    errors. Raises ConfigurationError when it cannot be read."""
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    try:
        return str(_secrets().get(secret_arn, max_age=max_age_s))
    except GetParameterError as exc:
        raise ConfigurationError(f"cannot read {what}: {exc}") from exc


@lru_cache(maxsize=1)
def _appconfig_store(application: str, environment: str, profile: str, max_age_s: int):
    from aws_lambda_powertools.utilities.feature_flags import AppConfigStore

    return AppConfigStore(
        environment=environment, application=application, name=profile, max_age=max_age_s,
        boto_config=_request_path_calls(),
    )  # fmt: skip


def appconfig_document(application: str, environment: str, profile: str, *, max_age_s: int) -> Any:
    """The JSON document of an AppConfig configuration profile, fetched again after `max_age_s`. Raises
    ConfigurationError when it cannot be read (throttling, network, access denied) or is not JSON."""
    from aws_lambda_powertools.utilities.feature_flags.exceptions import (
        ConfigurationStoreError,
        SchemaValidationError,
        StoreClientError,
    )

    try:
        return _appconfig_store(application, environment, profile, max_age_s).get_configuration()
    except (ConfigurationStoreError, StoreClientError, SchemaValidationError) as exc:
        raise ConfigurationError(f"cannot read the AppConfig profile {profile}: {exc}") from exc
