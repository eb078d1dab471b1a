"""Resolvers over the shared routers: one per Lambda function, and one local ASGI app serving them all."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.http_resolver import HttpProxyEvent, HttpResolverLocal
from aws_lambda_powertools.event_handler.middlewares import openapi_validation
from aws_lambda_powertools.event_handler.openapi.compat import ModelField, is_scalar_field

from feedcore.api.authorization import USER_SECURITY, authorize
from feedcore.api.problems import parse_json_body, register_problem_handlers
from feedcore.settings import api_settings

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


def _cors() -> CORSConfig | None:
    origin = api_settings().cors_allow_origin
    return CORSConfig(allow_origin=origin, allow_headers=["Authorization"]) if origin else None


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


def lambda_resolver(*routers: Router) -> APIGatewayRestResolver:
    """The API Gateway (REST) resolver of one function: validation, authorization, problem+json errors.

    Each function imports only its own routers (functions/*/app.py), which keeps the others' modules out of
    its cold start."""
    _check_parameter_types_once()
    app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_json_body, cors=_cors())
    for router in routers:
        app.include_router(router)
    app.use([authorize])
    register_problem_handlers(app)
    return app


class _LocalResolver(HttpResolverLocal):
    """HttpResolverLocal reading bodies like the Lambda resolvers do (it has no deserializer option)."""

    def _to_proxy_event(self, event: dict) -> HttpProxyEvent:
        proxy_event = super()._to_proxy_event(event)
        proxy_event._json_deserializer = parse_json_body
        return proxy_event


def local_resolver() -> HttpResolverLocal:
    """Every route of every function in one ASGI app, for `feedctl serve` and the end-to-end tests."""
    from feedcore.api import catalog, events, feed

    _check_parameter_types_once()
    app = _LocalResolver(enable_validation=True, cors=_cors())
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
