"""In the cloud the cursors' HMAC keys are the current and previous versions of the Secrets Manager secret
FEED_CURSOR_SECRET_ARN names, so that rotating it breaks no page in flight (moto stands in for Secrets Manager)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws
from moto.core.botocore_stubber import MockRawResponse

from feedcore import aws_calls, settings
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
    rotate(cursor_secret_arn, "second key")

    assert cursor_keys(read_at + timedelta(seconds=299)) == keys  # not read again: the new key is unknown
    assert cursor_keys(read_at + timedelta(seconds=300)).also_verifying == (b"second key",)


def test_a_new_key_signs_only_a_minute_after_every_container_has_read_it_for_clocks_that_differ(
    cursor_secret_arn: str,
) -> None:
    rotated = rotate(cursor_secret_arn, "second key")

    # 330 s after the rotation every container has read the new key (within 300 s), by its own clock
    assert cursor_keys(rotated + timedelta(seconds=330)).signing == b"first key"


def test_a_container_reads_the_keys_again_when_the_new_key_starts_signing(cursor_secret_arn: str) -> None:
    rotated = rotate(cursor_secret_arn, "second key")
    cursor_keys(rotated + timedelta(seconds=250))  # the new key signs from about 360 s after the rotation

    assert cursor_keys(rotated + timedelta(seconds=370)).signing == b"second key"


def test_an_unreadable_cursor_secret_is_a_configuration_error(cursor_secret_arn: str) -> None:
    secrets_manager().delete_secret(SecretId=cursor_secret_arn, ForceDeleteWithoutRecovery=True)

    with pytest.raises(ConfigurationError, match="cannot read the cursor secret"):
        cursor_keys(datetime.now(UTC))


class SecretsManagerOutage:
    """Stands between the service's Secrets Manager client and moto: while `failing`, the calls fail (as when the
    endpoint cannot be reached, or with AccessDenied for `denied_stage`); counts the attempts made meanwhile."""

    def __init__(self) -> None:
        self.failing = False
        self.denied_stage: str | None = None
        self.attempts = 0

    def __call__(self, request: AWSPreparedRequest, **_: object) -> AWSResponse | None:
        if self.denied_stage is not None and self.denied_stage.encode() in request.body:
            body = b'{"__type": "AccessDeniedException", "message": "not authorized"}'
            return AWSResponse(request.url, 400, {}, MockRawResponse(body))
        if not self.failing:
            return None
        self.attempts += 1
        raise EndpointConnectionError(endpoint_url=request.url)


@pytest.fixture
def outage(cursor_secret_arn: str) -> Iterator[SecretsManagerOutage]:
    outage = SecretsManagerOutage()
    aws_calls._secrets_manager.cache_clear()
    aws_calls._secrets_manager().meta.events.register_first("before-send.secrets-manager.GetSecretValue", outage)
    yield outage
    aws_calls._secrets_manager.cache_clear()


def test_an_unreachable_secrets_manager_is_tried_twice_per_read(outage: SecretsManagerOutage) -> None:
    outage.failing = True

    with pytest.raises(ConfigurationError, match="cannot read the cursor secret"):
        cursor_keys(datetime.now(UTC))
    assert outage.attempts == 2  # one retry: each attempt may wait a second for the endpoint


def test_a_container_that_never_read_the_keys_tries_again_30_s_after_a_failure_not_on_each_request(
    outage: SecretsManagerOutage,
) -> None:
    failed_at = datetime.now(UTC)
    outage.failing = True
    with pytest.raises(ConfigurationError):
        cursor_keys(failed_at)

    with pytest.raises(ConfigurationError, match="cannot read the cursor secret"):
        cursor_keys(failed_at + timedelta(seconds=29))  # the feed is degraded at once
    assert outage.attempts == 2
    outage.failing = False
    assert cursor_keys(failed_at + timedelta(seconds=30)) == CursorKeys(b"first key")


def test_when_the_secret_cannot_be_read_again_the_keys_read_before_serve_for_a_cursors_life(
    outage: SecretsManagerOutage, caplog: pytest.LogCaptureFixture
) -> None:
    read_at = datetime.now(UTC)
    keys = cursor_keys(read_at)
    due_at = read_at + timedelta(seconds=300)
    outage.failing = True

    assert cursor_keys(due_at) == keys
    assert "the keys read before serve on" in caplog.text
    assert cursor_keys(due_at + timedelta(seconds=29)) == keys and outage.attempts == 2
    assert cursor_keys(due_at + timedelta(seconds=30)) == keys and outage.attempts == 4
    snapshot_ttl = timedelta(seconds=settings.feed_settings().snapshot_ttl_s)
    assert cursor_keys(due_at + snapshot_ttl - timedelta(seconds=1)) == keys
    with pytest.raises(ConfigurationError, match="cannot read the cursor secret"):
        cursor_keys(due_at + snapshot_ttl)
    outage.failing = False
    assert cursor_keys(due_at + snapshot_ttl + timedelta(seconds=30)) == keys  # read again


def test_an_unreadable_previous_key_leaves_a_current_key_that_signs_alone_and_is_read_again_soon(
    cursor_secret_arn: str, outage: SecretsManagerOutage, caplog: pytest.LogCaptureFixture
) -> None:
    rotated = rotate(cursor_secret_arn, "second key")
    outage.denied_stage = "AWSPREVIOUS"
    now = rotated + timedelta(seconds=370)  # the new key signs

    assert cursor_keys(now) == CursorKeys(b"second key")
    assert "cannot read the previous cursor key" in caplog.text
    outage.denied_stage = None
    assert cursor_keys(now + timedelta(seconds=30)) == CursorKeys(b"second key", (b"first key",))


def test_an_unreadable_previous_key_while_it_still_signs_is_a_configuration_error(
    cursor_secret_arn: str, outage: SecretsManagerOutage
) -> None:
    rotated = rotate(cursor_secret_arn, "second key")
    outage.denied_stage = "AWSPREVIOUS"

    with pytest.raises(ConfigurationError, match="AccessDenied"):
        cursor_keys(rotated + timedelta(seconds=100))
