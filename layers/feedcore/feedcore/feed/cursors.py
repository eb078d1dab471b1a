"""Opaque, signed page cursors: which feed snapshot, whose, from which section on, and until when."""

from __future__ import annotations

import base64
import hmac
import json
import re
from datetime import UTC, datetime, timedelta

from msgspec import Struct

from feedcore.aws_calls import secret_version
from feedcore.errors import ConfigurationError, FeedExpired, InvalidCursor
from feedcore.observability import logger
from feedcore.settings import feed_settings

# Bytes of the HMAC-SHA256 kept in a cursor: 128 bits cannot be guessed.
_MAC_BYTES = 16
# A feed id as the service makes it (uuid4().hex): the one part of a cursor that reaches a query unchecked otherwise.
_FEED_ID = re.compile("[0-9a-f]{32}")
# How long a container keeps the keys read from Secrets Manager: every container knows a new key within it.
_CURSOR_SECRET_MAX_AGE = timedelta(seconds=300)
# A new key signs only once every container knows it (it verifies at once): so long after it was stored, which is
# the containers' cache and a margin for clocks. Until then the previous key signs.
_NEW_KEY_SIGNS_AFTER = _CURSOR_SECRET_MAX_AGE + timedelta(seconds=60)
# After a failed read the secret is read again only so long after, so that the requests in between do not each wait
# for Secrets Manager's timeouts (about 2 s when it does not answer).
_CURSOR_SECRET_RETRY = timedelta(seconds=30)
_CURSOR_SECRET = "the cursor secret"


class PagePosition(Struct, frozen=True):
    """Where the next page of a feed starts."""

    feed_id: str
    user_id: str
    offset: int
    expires_at: datetime
    scope: str  # the first page's store and excluded tags (request_scope): later pages must ask the same


def request_scope(store_id: str, exclude_tags: frozenset[str]) -> str:
    return f"{store_id}|{','.join(sorted(exclude_tags))}"


class CursorKeys(Struct, frozen=True):
    """`signing` signs new cursors; a cursor verifies with it or one of `also_verifying` (across a rotation of the
    key, the other of the current and the previous key)."""

    signing: bytes
    also_verifying: tuple[bytes, ...] = ()


# Signs cursors of local runs only: settings refuse to start in Lambda without a configured key.
_LOCAL_DEVELOPMENT_KEYS = CursorKeys(b"feedctl local development only")


class _KeysRead(Struct, frozen=True):
    """What a container knows of the secret: the `keys` last read (None before a read succeeds), and when to read it
    again. After a failed read (`failure`, its message), the keys serve on until `held_until`; then the failure
    is raised."""

    keys: CursorKeys | None
    read_again_at: datetime
    failure: str | None = None
    held_until: datetime | None = None


# What each container knows of the secrets, by secret ARN.
_keys_read: dict[str, _KeysRead] = {}


def cursor_keys(now: datetime) -> CursorKeys:
    """The HMAC keys of cursors at `now`: FEED_CURSOR_SECRET, the current and previous versions of the secret
    FEED_CURSOR_SECRET_ARN names (read again every 5 minutes), or the local development key. Raises
    ConfigurationError when the secret cannot be read and no keys read before may serve: none were read, or reads
    have failed for FEED_SNAPSHOT_TTL_S since they were due. After a failed read the secret is read again 30 s
    later, not on each request."""
    settings = feed_settings()
    if settings.cursor_secret is not None:
        return CursorKeys(settings.cursor_secret.get_secret_value().encode())
    if settings.cursor_secret_arn is None:
        return _LOCAL_DEVELOPMENT_KEYS
    read = _keys_read.get(settings.cursor_secret_arn)
    if read is None or now >= read.read_again_at:
        held_for = timedelta(seconds=settings.snapshot_ttl_s)
        read = _keys_read[settings.cursor_secret_arn] = _read_again(settings.cursor_secret_arn, read, held_for, now)
    if read.keys is not None and (read.held_until is None or now < read.held_until):
        return read.keys
    raise ConfigurationError(read.failure)


def _read_again(secret_arn: str, held: _KeysRead | None, held_for: timedelta, now: datetime) -> _KeysRead:
    """The secret's keys read now or, when that fails, the keys `held` from before while they may serve: for
    `held_for` since they were due to be read again. Cursors signed with a key this container has not read fail
    here meanwhile, so the bound is that of a cursor's life."""
    try:
        return _read_keys(secret_arn, now)
    except ConfigurationError as exc:
        retry_at = now + _CURSOR_SECRET_RETRY
        if held is None or held.keys is None:
            return _KeysRead(None, retry_at, str(exc))
        held_until = held.held_until or held.read_again_at + held_for
        if now < held_until:
            logger.warning(
                "cannot read the cursor secret; the keys read before serve on",
                extra={"error": str(exc), "held_until": held_until.isoformat()},
            )
        return _KeysRead(held.keys, retry_at, str(exc), held_until)


def _read_keys(secret_arn: str, now: datetime) -> _KeysRead:
    """The secret's keys: the current one verifies at once, and signs once every container knows it (until then
    the previous key signs, and the keys are read again when the current one starts signing). Raises
    ConfigurationError when they cannot be read."""
    current = secret_version(secret_arn, "AWSCURRENT", _CURSOR_SECRET)
    if current is None:
        raise ConfigurationError(f"cannot read {_CURSOR_SECRET}: no such secret, or no current version")
    read_again_at = now + _CURSOR_SECRET_MAX_AGE
    signs_from = current.created + _NEW_KEY_SIGNS_AFTER
    try:
        previous = secret_version(secret_arn, "AWSPREVIOUS", _CURSOR_SECRET)
    except ConfigurationError as exc:
        if now < signs_from:
            raise  # the previous key still signs
        # Cursors signed with the previous key fail here until it is read: so again soon.
        logger.warning(
            "cannot read the previous cursor key; the current one alone signs and verifies", extra={"error": str(exc)}
        )
        return _KeysRead(CursorKeys(current.text.encode()), now + _CURSOR_SECRET_RETRY)
    if previous is None:
        return _KeysRead(CursorKeys(current.text.encode()), read_again_at)
    if now >= signs_from:
        return _KeysRead(CursorKeys(current.text.encode(), (previous.text.encode(),)), read_again_at)
    return _KeysRead(CursorKeys(previous.text.encode(), (current.text.encode(),)), min(read_again_at, signs_from))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.digest(key, payload, "sha256")[:_MAC_BYTES]  # one-shot: no HMAC object per cursor


def encode_cursor(position: PagePosition, key: bytes) -> str:
    fields = {
        "f": position.feed_id, "u": position.user_id, "o": position.offset,
        "e": int(position.expires_at.timestamp()), "s": position.scope,
    }  # fmt: skip
    payload = json.dumps(fields, separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_mac(key, payload))}"


def decode_cursor(cursor: str, keys: CursorKeys, user_id: str, scope: str, now: datetime) -> PagePosition:
    """The position a cursor from encode_cursor holds.

    Raises InvalidCursor when it was altered, forged, issued to another user or for another store or
    excluded tags (`scope`), and FeedExpired when its snapshot's time is up.
    """
    try:
        encoded_payload, encoded_mac = cursor.split(".")
        payload, mac = _unb64(encoded_payload), _unb64(encoded_mac)
    except ValueError:  # also binascii.Error
        raise InvalidCursor("is malformed; pass next_cursor exactly as received") from None
    if not hmac.compare_digest(mac, _mac(keys.signing, payload)) and not any(
        hmac.compare_digest(mac, _mac(key, payload)) for key in keys.also_verifying
    ):
        raise InvalidCursor("does not carry a valid signature; pass next_cursor exactly as received")
    try:  # signed yet not a position: made with a key that signs any text (the public local development key)
        fields = json.loads(payload)
        feed_id, cursor_user_id, offset, expires, cursor_scope = (fields[name] for name in "fuoes")
        if not (
            isinstance(feed_id, str)
            and _FEED_ID.fullmatch(feed_id)
            and isinstance(cursor_user_id, str)
            and type(offset) is int
            and offset >= 0
            and type(expires) is int
            and isinstance(cursor_scope, str)
        ):
            raise TypeError(fields)
        position = PagePosition(
            feed_id=feed_id,
            user_id=cursor_user_id,
            offset=offset,
            expires_at=datetime.fromtimestamp(expires, UTC),
            scope=cursor_scope,
        )
    except (ValueError, TypeError, KeyError, OverflowError, OSError):  # ValueError: also JSON and UTF-8 errors
        raise InvalidCursor("holds no page position; pass next_cursor exactly as received") from None
    if position.user_id != user_id:
        raise InvalidCursor("belongs to another user's feed")
    if position.scope != scope:
        raise InvalidCursor("was issued for another store_id or exclude_tags; repeat those of the first page")
    if position.expires_at <= now:
        raise FeedExpired(position.feed_id)
    return position
