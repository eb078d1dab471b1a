"""In the cloud the cursors' HMAC keys are the current and previous versions of the Secrets Manager secret
FEED_CURSOR_SECRET_ARN names, so that rotating it breaks no page in flight (moto stands in for Secrets Manager)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from feedcore import settings
from feedcore.errors import ConfigurationError, InvalidCursor
from feedcore.feed import cursors
from feedcore.feed.cursors import CursorKeys, PagePosition, cursor_keys, decode_cursor, encode_cursor

SCOPE = "store-1|"


@pytest.fixture
def cursor_secret_arn(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """FEED_CURSOR_SECRET_ARN names a moto secret that holds a cursor key; the container has read no key yet."""
    monkeypatch.delenv("FEED_CURSOR_SECRET", raising=False)
    monkeypatch.setattr(cursors, "_keys_read", {})
    with mock_aws():
        secret = secrets_manager().create_secret(Name="feed-assembly/cursor-key", SecretString="first key")
        monkeypatch.setenv("FEED_CURSOR_SECRET_ARN", secret["ARN"])
        settings.feed_settings.cache_clear()
        yield secret["ARN"]
    settings.feed_settings.cache_clear()


def secrets_manager():
    return boto3.client("secretsmanager", region_name="us-east-1")


def rotate(secret_arn: str, key: str) -> datetime:
    """Rotates as the README's command does (the new version becomes AWSCURRENT, the old one AWSPREVIOUS);
    returns when."""
    secrets_manager().put_secret_value(SecretId=secret_arn, SecretString=key)
    return datetime.now(UTC)


def new_container(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cursors, "_keys_read", {})


def a_cursor(keys: CursorKeys, now: datetime) -> str:
    return encode_cursor(PagePosition("0" * 32, "u1", 2, now + timedelta(minutes=30), SCOPE), keys.signing)


def follows(cursor: str, keys: CursorKeys, now: datetime) -> bool:
    try:
        decode_cursor(cursor, keys, "u1", SCOPE, now)
    except InvalidCursor:
        return False
    return True


def test_before_any_rotation_the_key_is_the_text_of_the_configured_secret(cursor_secret_arn: str) -> None:
    assert cursor_keys(datetime.now(UTC)) == CursorKeys(b"first key")


def test_a_rotation_breaks_no_page_in_flight_on_any_container(
    cursor_secret_arn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = datetime.now(UTC)
    old_container = cursor_keys(before)  # a container that read the key just before the rotation
    issued_before = a_cursor(old_container, before)

    rotated = rotate(cursor_secret_arn, "second key")
    new_container(monkeypatch)
    fresh = cursor_keys(rotated)  # knows the new key, but signs with the previous one until every container knows it

    assert fresh == CursorKeys(b"first key", (b"second key",))
    assert follows(issued_before, fresh, rotated) and follows(a_cursor(fresh, rotated), old_container, rotated)

    later = rotated + timedelta(minutes=6)  # every container has read the keys again since the rotation
    assert cursor_keys(later) == CursorKeys(b"second key", (b"first key",))
    assert follows(issued_before, cursor_keys(later), later)  # the previous key still verifies
    assert follows(a_cursor(cursor_keys(later), later), cursor_keys(later), later)


def test_a_cursor_signed_with_a_key_the_secret_never_held_is_invalid(
    cursor_secret_arn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rotated = rotate(cursor_secret_arn, "second key")
    keys = cursor_keys(rotated)

    assert not follows(a_cursor(CursorKeys(b"a key of our own"), rotated), keys, rotated)


def test_a_key_two_rotations_old_no_longer_verifies(cursor_secret_arn: str) -> None:
    first = cursor_keys(datetime.now(UTC))
    rotate(cursor_secret_arn, "second key")
    rotated = rotate(cursor_secret_arn, "third key")
    later = rotated + timedelta(minutes=6)

    assert not follows(a_cursor(first, rotated), cursor_keys(later), later)


def test_the_keys_are_read_once_per_five_minutes_not_per_request(cursor_secret_arn: str) -> None:
    read_at = datetime.now(UTC)
    keys = cursor_keys(read_at)
    secrets_manager().delete_secret(SecretId=cursor_secret_arn, ForceDeleteWithoutRecovery=True)

    assert cursor_keys(read_at + timedelta(seconds=299)) == keys  # no call: the secret is gone
    with pytest.raises(ConfigurationError, match="cannot read the cursor secret"):
        cursor_keys(read_at + timedelta(seconds=300))


def test_a_container_reads_the_keys_again_when_the_new_key_starts_signing(cursor_secret_arn: str) -> None:
    rotated = rotate(cursor_secret_arn, "second key")
    cursor_keys(rotated + timedelta(seconds=250))  # the new key signs from about 360 s after the rotation

    assert cursor_keys(rotated + timedelta(seconds=370)).signing == b"second key"


def test_an_unreadable_cursor_secret_is_a_configuration_error(cursor_secret_arn: str) -> None:
    secrets_manager().delete_secret(SecretId=cursor_secret_arn, ForceDeleteWithoutRecovery=True)

    with pytest.raises(ConfigurationError, match="cannot read the cursor secret"):
        cursor_keys(datetime.now(UTC))
