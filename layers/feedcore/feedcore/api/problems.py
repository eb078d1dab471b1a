"""The one place that turns errors into HTTP responses: RFC 9457 problem+json bodies.

Domain code raises plain exceptions (feedcore.errors); routes carry no try/except ladders.
"""

from __future__ import annotations

import binascii
import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from pydantic import BaseModel
from pydantic_core import from_json

from feedcore.api.field_errors import MALFORMED_BODY_ERRORS, field_errors
from feedcore.api.models import FieldError, Problem
from feedcore.errors import (
    DatabaseUnavailable,
    ErasureBusy,
    ErasureTimedOut,
    EventsRejected,
    FeedExpired,
    Forbidden,
    InvalidCursor,
    InvalidRequest,
    RequestTooLarge,
    Unauthenticated,
)
from feedcore.observability import logger

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
# Seconds a client should wait before retrying when the database is unavailable.
RETRY_AFTER_SECONDS = 2
# A score run holds an erasure back for seconds (an incremental chunk) to minutes (a full rebuild).
ERASURE_RETRY_AFTER_SECONDS = 30


def problem(status: HTTPStatus, detail: str, *, headers: dict[str, str] | None = None, **members: Any) -> Response:
    """A problem+json response: the Problem document (the model the OpenAPI document publishes) of `status`, with
    `members` such as `errors`; the members not given are left out, not sent as null. Problem is built on the first
    error answer, not at import (a share of the feed function's cold start)."""
    document = Problem(
        type=f"https://feed-assembly.dev/problems/{status.phrase.lower().replace(' ', '-')}",
        title=status.phrase,
        status=status.value,
        detail=detail,
        **members,
    )
    body = json.dumps(document.model_dump(mode="json", exclude_unset=True))
    return Response(status_code=status.value, content_type=PROBLEM_JSON, body=body, headers=headers)


# The headers some error answers carry, as the OpenAPI document publishes them.
_ERROR_HEADERS = {
    HTTPStatus.UNAUTHORIZED: {
        "WWW-Authenticate": {
            "description": "`Bearer`: send a token of the API's user pool",
            "schema": {"type": "string"},
        },
    },
    HTTPStatus.SERVICE_UNAVAILABLE: {
        "Retry-After": {
            "description": "Seconds to wait before retrying the same request",
            "schema": {"type": "integer"},
        },
    },
}


def route_responses(success: type[BaseModel], *errors: HTTPStatus) -> dict[int, dict[str, Any]]:
    """A route's OpenAPI responses: 200 with a `success` JSON document, and a problem+json document for each of
    `errors` (in place of Powertools' own 422, which is not what the resolvers answer)."""
    responses = {200: {"description": "Successful Response", "content": {JSON: {"model": success}}}}
    for status in errors:
        responses[status.value] = {"description": status.phrase, "content": {PROBLEM_JSON: {"model": Problem}}}
        if status in _ERROR_HEADERS:
            responses[status.value]["headers"] = _ERROR_HEADERS[status]
    return responses


# The errors of a route that reads a JSON body (README, Errors).
BODY_ROUTE_ERRORS = (
    HTTPStatus.BAD_REQUEST,
    HTTPStatus.UNAUTHORIZED,
    HTTPStatus.FORBIDDEN,
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    HTTPStatus.UNPROCESSABLE_ENTITY,
    HTTPStatus.SERVICE_UNAVAILABLE,
)


def parse_json_body(body: str) -> Any:
    """Request bodies are parsed by pydantic's Rust parser (twice as fast as json.loads on a 500-event batch).
    Anything it cannot read is malformed JSON (a 400), not a server error: numbers too long to convert,
    nesting too deep, lone surrogates (which PostgreSQL could not store)."""
    try:
        return from_json(body)
    except ValueError as exc:
        raise json.JSONDecodeError(f"unreadable JSON: {exc}", body[:100], 0) from exc


def _unsupported_media_type(app: ApiGatewayResolver) -> Response | None:
    """A 415 when the request has a body that is not JSON and its route reads a body (Powertools would read a form
    body as fields). A route without a body (a GET, a DELETE) ignores one: the request's other problems decide."""
    content_type = app.current_event.headers.get("content-type") or JSON
    if not app.current_event.body or content_type.split(";")[0].strip().lower() == JSON:
        return None
    if not app.context["_route"].dependant.body_params:
        return None
    return problem(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        f"send the body as {JSON}, not {content_type}",
        errors=[FieldError(field="content-type", message=f"expected {JSON}", type="unsupported_media_type")],
    )


def undecodable_request(field: str, detail: str, exc: ValueError) -> Response:
    """The 400 for a part of a request that cannot be decoded (not UTF-8 text, or not valid base64): `field` is
    `body` or `headers.<name>`."""
    return problem(
        HTTPStatus.BAD_REQUEST,
        detail,
        errors=[FieldError(field=field, message=str(exc), type=f"{field.split('.')[0]}_encoding")],
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
        errors = field_errors(exc.errors())
        if any(error.type in MALFORMED_BODY_ERRORS for error in errors):
            return problem(HTTPStatus.BAD_REQUEST, "the request body is not valid JSON", errors=errors)
        fields = ", ".join(sorted({error.field for error in errors}))
        return problem(HTTPStatus.UNPROCESSABLE_ENTITY, f"invalid request: {fields}", errors=errors)

    @app.exception_handler([UnicodeDecodeError, binascii.Error])
    def _undecodable_body(exc: ValueError) -> Response:
        return undecodable_request("body", "the request body is not UTF-8 text (or not valid base64)", exc)

    @app.exception_handler(EventsRejected)
    def _events_rejected(exc: EventsRejected) -> Response:
        return problem(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            str(exc),
            errors=exc.errors,
            rejections=exc.rejections,
        )

    @app.exception_handler(InvalidCursor)
    def _invalid_cursor(exc: InvalidCursor) -> Response:
        return problem(HTTPStatus.BAD_REQUEST, str(exc), errors=exc.errors)

    @app.exception_handler(FeedExpired)
    def _feed_expired(exc: FeedExpired) -> Response:
        return problem(HTTPStatus.GONE, str(exc), feed_id=exc.feed_id)

    @app.exception_handler(InvalidRequest)
    def _invalid(exc: InvalidRequest) -> Response:
        return problem(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc), errors=exc.errors)

    @app.exception_handler(RequestTooLarge)
    def _too_large(exc: RequestTooLarge) -> Response:
        error = FieldError(field=exc.field, message=str(exc), type="too_large")
        return problem(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(exc), errors=[error], limit=exc.limit)

    @app.exception_handler(Unauthenticated)
    def _unauthenticated(exc: Unauthenticated) -> Response:
        return problem(HTTPStatus.UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(Forbidden)
    def _forbidden(exc: Forbidden) -> Response:
        return problem(HTTPStatus.FORBIDDEN, str(exc))

    @app.exception_handler([ErasureBusy, ErasureTimedOut])
    def _erasure_unfinished(exc: ErasureBusy | ErasureTimedOut) -> Response:
        return problem(
            HTTPStatus.SERVICE_UNAVAILABLE, str(exc), headers={"Retry-After": str(ERASURE_RETRY_AFTER_SECONDS)}
        )

    @app.exception_handler(DatabaseUnavailable)
    def _database_unavailable(exc: DatabaseUnavailable) -> Response:
        logger.exception("database unavailable")
        return problem(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "the database is unavailable; retrying the same request is safe",
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
