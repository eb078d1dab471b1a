"""The one place that turns errors into HTTP responses: RFC 9457 problem+json bodies.

Domain code raises plain exceptions (feedcore.errors); routes carry no try/except ladders.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from feedcore.api.models import EVENT_TYPES
from feedcore.errors import BatchTooLarge, DatabaseUnavailable
from feedcore.observability import logger

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
# Seconds a client should wait before retrying when the database is unavailable.
RETRY_AFTER_SECONDS = 2
# Pydantic error types that mean the body is not JSON at all.
_MALFORMED_BODY_ERRORS = {"json_invalid"}


def problem(status: HTTPStatus, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    """A problem+json response; `extra` adds members such as `errors`."""
    body = {
        "type": f"https://feed-assembly.dev/problems/{status.phrase.lower().replace(' ', '-')}",
        "title": status.phrase,
        "status": status.value,
        "detail": detail,
        **extra,
    }
    return Response(status_code=status.value, content_type=PROBLEM_JSON, body=json.dumps(body), headers=headers)


def field_path(loc: Sequence[str | int]) -> str:
    """Where an error is, as a client would write it: ("body", "events", 0, "purchase", "items", 1) ->
    "events[0].items[1]". The leading location kind and pydantic's union tag are dropped."""
    parts: list[str] = []
    previous: str | int | None = None
    for index, element in enumerate(loc):
        if index == 0 and element in ("body", "query", "path", "header"):
            continue
        if isinstance(element, int):
            parts.append(f"[{element}]")
        elif isinstance(previous, int) and element in EVENT_TYPES:
            pass  # pydantic's discriminated-union tag, not a field
        else:
            parts.append(("." if parts else "") + element)
        previous = element
    return "".join(parts) or "body"


def validation_errors(errors: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """Pydantic errors as {field, message, type}; a bad discriminator names the `type` field."""
    described = []
    for error in errors:
        field = field_path(error.get("loc", ()))
        if error.get("type") in _MALFORMED_BODY_ERRORS:
            field = "body"  # its location is a character offset, not a field
        elif error.get("type") in ("union_tag_invalid", "union_tag_not_found"):
            field = f"{field}.type"
        described.append({"field": field, "message": error.get("msg", "invalid"), "type": error.get("type", "")})
    return described


def _unsupported_media_type(app: ApiGatewayResolver) -> Response | None:
    """A 415 when the request has a body that is not JSON (Powertools would read a form body as fields)."""
    content_type = app.current_event.headers.get("content-type") or JSON
    if not app.current_event.body or content_type.split(";")[0].strip() == JSON:
        return None
    return problem(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        f"send the body as {JSON}, not {content_type}",
        errors=[{"field": "content-type", "message": f"expected {JSON}", "type": "unsupported_media_type"}],
    )


def register_problem_handlers(app: ApiGatewayResolver) -> None:
    """Install the error-to-response mapping on a resolver (Lambda or local)."""

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported_content_type(exc: RequestUnsupportedContentType) -> Response:
        return _unsupported_media_type(app) or problem(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, str(exc))

    @app.exception_handler(RequestValidationError)
    def _invalid_request(exc: RequestValidationError) -> Response:
        if not_json := _unsupported_media_type(app):
            return not_json
        errors = validation_errors(exc.errors())
        if any(error["type"] in _MALFORMED_BODY_ERRORS for error in errors):
            return problem(HTTPStatus.BAD_REQUEST, "the request body is not valid JSON", errors=errors)
        fields = ", ".join(sorted({error["field"] for error in errors}))
        return problem(HTTPStatus.UNPROCESSABLE_ENTITY, f"invalid request: {fields}", errors=errors)

    @app.exception_handler(BatchTooLarge)
    def _batch_too_large(exc: BatchTooLarge) -> Response:
        return problem(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(exc), limit=exc.limit)

    @app.exception_handler(DatabaseUnavailable)
    def _database_unavailable(exc: DatabaseUnavailable) -> Response:
        logger.exception("database unavailable")
        return problem(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "the database is unavailable; nothing was changed, retry the same request",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # Powertools' form and multipart parsers can fail on bodies this API never accepts.
        if not_json := _unsupported_media_type(app):
            return not_json
        logger.exception("unexpected error")
        return problem(HTTPStatus.INTERNAL_SERVER_ERROR, "unexpected error; it has been logged")

    @app.not_found
    def _not_found(_: NotFoundError) -> Response:
        return problem(HTTPStatus.NOT_FOUND, "no such route")
