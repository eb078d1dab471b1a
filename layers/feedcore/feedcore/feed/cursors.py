"""Opaque, signed page cursors: which feed snapshot, whose, from which section on, and until when."""

from __future__ import annotations

import base64
import hmac
import json
import re
from datetime import UTC, datetime

from msgspec import Struct

from feedcore.aws_calls import secret_text
from feedcore.errors import FeedExpired, InvalidCursor
from feedcore.settings import feed_settings

# Bytes of the HMAC-SHA256 kept in a cursor: 128 bits cannot be guessed.
_MAC_BYTES = 16
# A feed id as the service makes it (uuid4().hex): the one part of a cursor that reaches a query unchecked otherwise.
_FEED_ID = re.compile("[0-9a-f]{32}")
# Signs cursors of local runs only: settings refuse to start in Lambda without a configured key.
_LOCAL_DEVELOPMENT_KEY = b"feedctl local development only"
# Seconds a container keeps the key read from Secrets Manager: a rotated key is in use everywhere within them.
_CURSOR_SECRET_MAX_AGE_S = 300


class PagePosition(Struct, frozen=True):
    """Where the next page of a feed starts."""

    feed_id: str
    user_id: str
    offset: int
    expires_at: datetime
    scope: str  # the first page's store and excluded tags (request_scope): later pages must ask the same


def request_scope(store_id: str, exclude_tags: frozenset[str]) -> str:
    return f"{store_id}|{','.join(sorted(exclude_tags))}"


def cursor_key() -> bytes:
    """The HMAC key of cursors: FEED_CURSOR_SECRET, the secret FEED_CURSOR_SECRET_ARN names, or the local
    development key. Raises ConfigurationError when the secret cannot be read."""
    settings = feed_settings()
    if settings.cursor_secret is not None:
        return settings.cursor_secret.get_secret_value().encode()
    if settings.cursor_secret_arn is None:
        return _LOCAL_DEVELOPMENT_KEY
    return secret_text(settings.cursor_secret_arn, "the cursor secret", max_age_s=_CURSOR_SECRET_MAX_AGE_S).encode()


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


def decode_cursor(cursor: str, key: bytes, user_id: str, scope: str, now: datetime) -> PagePosition:
    """The position a cursor from encode_cursor holds.

    Raises InvalidCursor when it was altered, forged, issued to another user or for another store or
    excluded tags (`scope`), and FeedExpired when its snapshot's time is up.
    """
    try:
        encoded_payload, encoded_mac = cursor.split(".")
        payload, mac = _unb64(encoded_payload), _unb64(encoded_mac)
    except ValueError:  # also binascii.Error
        raise InvalidCursor("is malformed; pass next_cursor exactly as received") from None
    if not hmac.compare_digest(mac, _mac(key, payload)):
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
