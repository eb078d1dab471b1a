"""The request path's calls to AWS: a secret's versions from Secrets Manager (the cursor keys) and a
configuration profile from AppConfig (the ranking config, through Powertools). Short timeouts and two attempts in all
(one retry), so an endpoint that does not answer costs a call about two seconds (two one-second timeouts; the
standard mode's backoff before the retry is at most 50 ms, 1 s after throttling), never the Lambda's whole timeout.
The callers decide how long a value, or a failure, is cached. `client_config` is the retry configuration of these
clients, of the shard queue's and of the model score files' S3 client (longer timeouts: a score run's import, not a
request, waits for it; feedcore.db.model_files).

botocore and the Powertools utilities are imported on first use: a function starts without them (cold start).
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from msgspec import Struct

from feedcore.errors import ConfigurationError


def client_config(*, connect_timeout_s: float, read_timeout_s: float, attempts: int):
    """The botocore configuration of a service client: its timeouts, and `attempts` in all in the standard retry
    mode (total_max_attempts counts the first attempt; the legacy `max_attempts` counts retries only, so 3 there
    is four attempts)."""
    from botocore.config import Config

    return Config(
        connect_timeout=connect_timeout_s, read_timeout=read_timeout_s,
        retries={"total_max_attempts": attempts, "mode": "standard"},
    )  # fmt: skip


@lru_cache(maxsize=1)
def _request_path_calls():
    return client_config(connect_timeout_s=1, read_timeout_s=1, attempts=2)


@lru_cache(maxsize=1)
def _secrets_manager():
    import boto3

    return boto3.client("secretsmanager", config=_request_path_calls())


class SecretVersion(Struct, frozen=True):
    text: str
    created: datetime  # when this version was stored (a rotation's put-secret-value)


def secret_version(secret_arn: str, stage: str, what: str) -> SecretVersion | None:
    """The version of the Secrets Manager secret `secret_arn` that holds the label `stage` (AWSCURRENT,
    AWSPREVIOUS), read now: the caller caches it. None when no version holds the label (AWSPREVIOUS before the
    first rotation) or there is no such secret. `what` names the secret in errors. Raises ConfigurationError when
    the secret cannot be read.

    Not through Powertools' SecretsProvider: its cache is keyed by the secret's name alone, whatever the version
    asked, and it caches no answer for a label that no version holds, so AWSPREVIOUS would be read on every call
    until the first rotation."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        value = _secrets_manager().get_secret_value(SecretId=secret_arn, VersionStage=stage)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise ConfigurationError(f"cannot read {what} ({stage}): {exc}") from exc
    except BotoCoreError as exc:
        raise ConfigurationError(f"cannot read {what} ({stage}): {exc}") from exc
    if "SecretString" not in value:
        raise ConfigurationError(f"{what} holds binary data, not text")
    return SecretVersion(value["SecretString"], value["CreatedDate"])


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
