"""Resolvers over the shared routers: one per Lambda function, and one local ASGI app serving them all."""

from __future__ import annotations

import json
import re
from functools import partial
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.http_resolver import HttpProxyEvent, HttpResolverLocal
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware, openapi_validation
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
    _get_multi_value_query_params,
    _normalize_multi_params,
    _request_params_to_args,
)
from aws_lambda_powertools.event_handler.openapi.compat import ModelField, _normalize_errors, is_scalar_field
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from feedcore.api.authorization import USER_SECURITY, authorize
from feedcore.api.problems import parse_json_body, register_problem_handlers
from feedcore.settings import api_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.models import OpenAPI

API_TITLE = "Feed Assembly API"
API_VERSION = "1.0.0"


def security_schemes() -> dict:
    """The OpenAPI security schemes of the routes. Powertools' OpenAPI models load only for the document
    (about 0.1 s of a cold start); the Lambda resolvers validate without them."""
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

    return {
        "user": HTTPBearer(description="A token of the API's user pool; its `sub` is the user it may act for"),
        "admin": HTTPBearer(description="A token of a member of the admin group (an operator or a service)"),
    }


# Headers of the answers that a browser shows a web app of another origin only when named (those not CORS-safelisted).
EXPOSED_HEADERS = ["Retry-After", "WWW-Authenticate"]


def _cors() -> CORSConfig | None:
    origin = api_settings().cors_allow_origin
    if not origin:
        return None
    return CORSConfig(allow_origin=origin, allow_headers=["Authorization"], expose_headers=EXPOSED_HEADERS)


# A route's parameter fields (each route's Dependant, made once) and whether each is a scalar.
_scalar_fields: dict[int, tuple[ModelField, bool]] = {}


def _known_scalar_field(field: ModelField) -> bool:
    """is_scalar_field, answered once per field: the field is kept with its answer, so its id is not reused."""
    known = _scalar_fields.get(id(field))
    if known is None:
        known = _scalar_fields[id(field)] = (field, is_scalar_field(field))
    return known[1]


def _check_parameter_types_once() -> None:
    """Powertools' request validation (its pinned version) asks, on every request, whether each query and header
    parameter of the route is a scalar type, by inspecting its annotation (~0.1 ms of a feed page, a quarter of
    the validation): the answer never changes for a route's fields, so each is asked once. The same answers, so
    the same validation, errors and OpenAPI document (tests/unit/test_openapi.py checks the hook is in place)."""
    openapi_validation.is_scalar_field = _known_scalar_field


class _RequestValidation(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation (its pinned version), which reads and normalizes every request's headers and
    cookies even for a route that declares none (~45 % of the validation with one header; API Gateway sends ~20):
    a route with neither, nor a body, has its path and query validated by Powertools' own functions in Powertools'
    order, so with the same values, errors and OpenAPI document; any other route goes through Powertools' handler
    (tests/unit/test_openapi.py compares both)."""

    def handler(self, app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
        # The caller first: one who may not use the route gets its 401 or 403 whatever the request holds (a 422
        # would describe the route's contract to them), and nothing of the request is validated for them.
        return authorize(app, partial(self._validate, next_middleware=next_middleware))

    def _validate(self, app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
        dependant = app.context["_route"].dependant
        if dependant.header_params or dependant.cookie_params or dependant.body_params:
            return super().handler(app, next_middleware)
        event = app.current_event
        values, errors = _request_params_to_args(dependant.path_params, app.context["_route_args"])
        query = _normalize_multi_params(
            event.resolved_query_string_parameters,
            dependant.query_params,
            multi_value_params=_get_multi_value_query_params(event),
        )
        query_values, query_errors = _request_params_to_args(dependant.query_params, query)
        values.update(query_values)
        errors += query_errors
        if errors:
            raise RequestValidationError(_normalize_errors(errors))
        app.context["_route_args"] = values
        return next_middleware(app)


def _validate_requests(app: APIGatewayRestResolver | HttpResolverLocal) -> None:
    """The resolver's request validation made _RequestValidation, each field's scalar check asked once."""
    _check_parameter_types_once()
    app._request_validation_middleware = _RequestValidation()  # made by Powertools when validation is enabled


def lambda_resolver(*routers: Router) -> APIGatewayRestResolver:
    """The API Gateway (REST) resolver of one function: validation, authorization, problem+json errors.

    Each function imports only its own routers (functions/*/app.py), which keeps the others' modules out of
    its cold start."""
    app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_json_body, cors=_cors())
    _validate_requests(app)
    for router in routers:
        app.include_router(router)
    app.use([authorize])
    register_problem_handlers(app)
    return app


_SCHEMA_REFERENCE = re.compile(r'"\$ref":\s*"#/components/schemas/([^"]+)"')


def _referenced_schemas(document: OpenAPI) -> set[str]:
    """The names of the component schemas `document` uses: those its paths reference, and those these reference."""
    schemas = document.components.schemas
    outside = document.model_dump(mode="json", by_alias=True, exclude={"components": {"schemas"}})
    pending = _SCHEMA_REFERENCE.findall(json.dumps(outside))
    referenced: set[str] = set()
    while pending:
        name = pending.pop()
        if name not in referenced:
            referenced.add(name)
            pending += _SCHEMA_REFERENCE.findall(schemas[name].model_dump_json(by_alias=True, exclude_none=True))
    return referenced


class _LocalResolver(HttpResolverLocal):
    """HttpResolverLocal reading bodies like the Lambda resolvers do (it has no deserializer option), whose OpenAPI
    document publishes only the schemas its routes use."""

    def get_openapi_schema(self, **options: Any) -> OpenAPI:
        """Powertools' document without the validation-error schemas it adds whatever the routes answer
        (HTTPValidationError, ValidationError, ResponseValidationError): every route publishes its errors as the
        Problem document (feedcore.api.problems.route_responses)."""
        document = super().get_openapi_schema(**options)
        referenced = _referenced_schemas(document)
        document.components.schemas = {
            name: schema for name, schema in document.components.schemas.items() if name in referenced
        }
        return document

    def _to_proxy_event(self, event: dict) -> HttpProxyEvent:
        proxy_event = super()._to_proxy_event(event)
        proxy_event._json_deserializer = parse_json_body
        return proxy_event


def local_resolver() -> HttpResolverLocal:
    """Every route of every function in one ASGI app, for `feedctl serve` and the end-to-end tests."""
    from feedcore.api import catalog, events, feed

    app = _LocalResolver(enable_validation=True, cors=_cors())
    _validate_requests(app)
    for router in (events.router, catalog.router, feed.router):
        app.include_router(router)
    app.use([authorize])
    register_problem_handlers(app)
    app.configure_openapi(
        title=API_TITLE, version=API_VERSION, security_schemes=security_schemes(), security=USER_SECURITY
    )
    app.enable_swagger(path="/docs")
    return app


def openapi_document() -> str:
    """The OpenAPI document of every route, as committed in openapi.json (a test keeps it current)."""
    return local_resolver().get_openapi_json_schema() + "\n"
