"""Resolvers over the shared routers: one per Lambda function, and one local ASGI app serving them all."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.http_resolver import HttpResolverLocal

from feedcore.api import events, feed
from feedcore.api.problems import register_problem_handlers

ALL_ROUTERS: tuple[Router, ...] = (events.router, feed.router)
API_TITLE = "Feed Assembly API"
API_VERSION = "1.0.0"


def lambda_resolver(*routers: Router) -> APIGatewayRestResolver:
    """The API Gateway (REST) resolver of one function, with validation and problem+json errors."""
    app = APIGatewayRestResolver(enable_validation=True)
    for router in routers:
        app.include_router(router)
    register_problem_handlers(app)
    return app


def local_resolver() -> HttpResolverLocal:
    """Every route in one ASGI app, for `feedctl serve` and the end-to-end tests."""
    app = HttpResolverLocal(enable_validation=True)
    for router in ALL_ROUTERS:
        app.include_router(router)
    register_problem_handlers(app)
    app.enable_swagger(path="/docs", title=API_TITLE, version=API_VERSION)
    return app
