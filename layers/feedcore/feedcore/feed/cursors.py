"""Opaque, signed page cursors: which feed snapshot, whose, from which section on, and until when."""

from __future__ import annotations

import base64
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from feedcore.errors import ConfigurationError, FeedExpired, InvalidCursor
from feedcore.settings import feed_settings

# Bytes of the HMAC-SHA256 kept in a cursor: 128 bits cannot be guessed.
_MAC_BYTES = 16
# Signs cursors of local runs only: settings refuse to start in Lambda without a configured key.
_LOCAL_DEVELOPMENT_KEY = b"feedctl local development only"


@dataclass(frozen=True)
class PagePosition:
    """Where the next page of a feed starts."""

    feed_id: str
    user_id: str
    offset: int
    expires_at: datetime
    scope: str  # the first page's store and excluded tags (request_scope): later pages must ask the same


def request_scope(store_id: str, exclude_tags: frozenset[str]) -> str:
    return f"{store_id}|{','.join(sorted(exclude_tags))}"


@lru_cache(maxsize=1)
def _secrets():
    # Imported here: only deployed functions read the key from Secrets Manager (cold start).
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    from feedcore.aws_calls import REQUEST_PATH_CALLS

    return SecretsProvider(boto_config=REQUEST_PATH_CALLS)


def cursor_key() -> bytes:
    """The HMAC key of cursors: FEED_CURSOR_SECRET, the secret FEED_CURSOR_SECRET_ARN names (cached five
    minutes), or the local development key. Raises ConfigurationError when the secret cannot be read."""
    settings = feed_settings()
    if settings.cursor_secret is not None:
        return settings.cursor_secret.get_secret_value().encode()
    if settings.cursor_secret_arn is None:
        return _LOCAL_DEVELOPMENT_KEY
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    try:
        return str(_secrets().get(settings.cursor_secret_arn, max_age=300)).encode()
    except GetParameterError as exc:
        raise ConfigurationError(f"cannot read the cursor secret: {exc}") from exc


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
    fields = json.loads(payload)
    position = PagePosition(
        feed_id=fields["f"],
        user_id=fields["u"],
        offset=fields["o"],
        expires_at=datetime.fromtimestamp(fields["e"], UTC),
        scope=fields["s"],
    )
    if position.user_id != user_id:
        raise InvalidCursor("belongs to another user's feed")
    if position.scope != scope:
        raise InvalidCursor("was issued for another store_id or exclude_tags; repeat those of the first page")
    if position.expires_at <= now:
        raise FeedExpired(position.feed_id)
    return position
