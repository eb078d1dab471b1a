"""Validation errors located the way a client would write them: `events[3].items[0].quantity`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from feedcore.api.models import FieldError
from feedcore.errors import MAX_FIELD_ERRORS

# Location kinds Powertools puts first; the client knows where the field is.
_LOCATION_KINDS = ("body", "query", "path", "header")
# Errors whose location is a character offset in the body rather than a field.
MALFORMED_BODY_ERRORS = frozenset({"json_invalid"})
# An answer cuts each text that echoes the request (an unknown key, a wrong type tag) short, as it lists only the
# first MAX_FIELD_ERRORS errors: a key of half a million characters made an answer past Lambda's 6 MB response
# limit (API Gateway then answers 502).
MAX_ERROR_TEXT = 200


def field_path(loc: Sequence[str | int]) -> str:
    """("body", "events", 0, "purchase", "items", 1) -> "events[0].items[1]": the leading location kind and
    pydantic's discriminated-union tag are dropped."""
    from feedcore.api.event_models import EVENT_TYPES  # an error path: the feed function does not load them

    parts: list[str] = []
    previous: str | int | None = None
    for index, element in enumerate(loc):
        if index == 0 and element in _LOCATION_KINDS:
            continue
        if isinstance(element, int):
            parts.append(f"[{element}]")
        elif not (isinstance(previous, int) and element in EVENT_TYPES):
            parts.append(("." if parts else "") + element)
        previous = element
    return "".join(parts) or "body"


def field_errors(errors: Sequence[dict[str, Any]], prefix: tuple[str | int, ...] = ()) -> list[FieldError]:
    """The first MAX_FIELD_ERRORS pydantic errors (optionally under `prefix`) as FieldErrors, their texts cut to
    MAX_ERROR_TEXT characters; a bad discriminator names `type`."""
    described = []
    for error in errors[:MAX_FIELD_ERRORS]:
        kind = error.get("type", "")
        if kind in MALFORMED_BODY_ERRORS:
            field = "body"
        else:
            field = field_path((*prefix, *error.get("loc", ())))
            if kind in ("union_tag_invalid", "union_tag_not_found"):
                field = f"{field}.type"
        message = error.get("msg", "invalid")
        described.append(FieldError(field=field[:MAX_ERROR_TEXT], message=message[:MAX_ERROR_TEXT], type=kind))
    return described
