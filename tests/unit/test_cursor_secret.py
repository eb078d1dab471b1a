"""In the cloud the cursors' HMAC key is the text of the Secrets Manager secret FEED_CURSOR_SECRET_ARN names
(moto stands in for Secrets Manager)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from feedcore import settings
from feedcore.errors import ConfigurationError
from feedcore.feed.cursors import cursor_key


@pytest.fixture
def cursor_secret_arn(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """FEED_CURSOR_SECRET_ARN names a moto secret that holds a cursor key."""
    monkeypatch.delenv("FEED_CURSOR_SECRET", raising=False)
    with mock_aws():
        secret = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="feed-assembly/cursor-key", SecretString="a cursor key from Secrets Manager"
        )
        monkeypatch.setenv("FEED_CURSOR_SECRET_ARN", secret["ARN"])
        settings.feed_settings.cache_clear()
        yield secret["ARN"]
    settings.feed_settings.cache_clear()


def test_the_cursor_key_is_the_text_of_the_configured_secret(cursor_secret_arn: str) -> None:
    assert cursor_key() == b"a cursor key from Secrets Manager"


def test_an_unreadable_cursor_secret_is_a_configuration_error(cursor_secret_arn: str) -> None:
    boto3.client("secretsmanager", region_name="us-east-1").delete_secret(
        SecretId=cursor_secret_arn, ForceDeleteWithoutRecovery=True
    )

    with pytest.raises(ConfigurationError, match="cannot read the cursor secret"):
        cursor_key()
