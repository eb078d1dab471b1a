"""Who is calling, and what they may touch.

In the cloud, API Gateway's Cognito authorizer has verified the caller's token and passes its claims in
`requestContext.authorizer.claims`; the caller is the token's `sub`, and an admin is a member of the
AUTH_ADMIN_GROUP group (`cognito:groups`). Locally (`feedctl serve`, `sam local start-api`) there is no
authorizer: with AUTH_DEV_TOKENS set, `Authorization: Bearer dev:<sub>` (or `dev:<sub>:admin`) stands in
for a verified token, so the same checks run. Never set AUTH_DEV_TOKENS in a deployed stack.

Rules: the admin routes (security "admin") need an admin; a route with a `user_id` in its path serves only
that user (or an admin); `POST /v1/events` stores only the caller's own events (or any, for an admin: a
service identity sending on users' behalf). Refusals raise Unauthenticated (401) or Forbidden (403), which
feedcore.api.problems maps to responses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
from msgspec import Struct

from feedcore.errors import Forbidden, Unauthenticated
from feedcore.settings import auth_settings

if TYPE_CHECKING:
    from feedcore.api.event_fast_path import UsualEventBatch
    from feedcore.api.event_models import EventBatch

# The OpenAPI security requirement of the admin routes (feedcore.api.catalog) and of every other route.
ADMIN_SECURITY = [{"admin": []}]
USER_SECURITY = [{"user": []}]
DEV_TOKEN_PREFIX = "dev:"
# In a request's resolver context once `authorize` has let it through.
_AUTHORIZED = "_authorized"


class Caller(Struct, frozen=True):
    """The verified identity behind a request."""

    subject: str
    is_admin: bool


def _groups(claim: Any) -> set[str]:
    """`cognito:groups` as API Gateway passes it: a list, or a string such as "admin" or "[admin ops]"."""
    if isinstance(claim, list):
        return {str(group) for group in claim}
    if isinstance(claim, str):
        return set(claim.strip("[]").replace(",", " ").split())
    return set()


def _caller_from_dev_token(headers: Mapping[str, str]) -> Caller | None:
    authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.startswith(DEV_TOKEN_PREFIX):
        return None
    subject, _, role = token.removeprefix(DEV_TOKEN_PREFIX).partition(":")
    if not subject or role not in ("", "admin"):
        return None
    return Caller(subject=subject, is_admin=role == "admin")


def caller_of(event: BaseProxyEvent) -> Caller:
    """The caller of an API request; Unauthenticated when the request carries no verified identity."""
    settings = auth_settings()
    claims = ((event.raw_event.get("requestContext") or {}).get("authorizer") or {}).get("claims") or {}
    if subject := claims.get("sub"):
        return Caller(subject=subject, is_admin=settings.admin_group in _groups(claims.get("cognito:groups")))
    if settings.dev_tokens and (caller := _caller_from_dev_token(event.headers or {})):
        return caller
    raise Unauthenticated("send a bearer token" + (" (locally: dev:<user_id>)" if settings.dev_tokens else ""))


def require_user(caller: Caller, user_id: str) -> None:
    """Only the user themself (or an admin) may touch a user's data."""
    if caller.subject != user_id and not caller.is_admin:
        raise Forbidden(f"the caller may not act for user {user_id}")


def authorize(app: ApiGatewayResolver, next_middleware: NextMiddleware) -> Response:
    """Resolver middleware: the route-level rules (admin routes; a user's own path). Every route of the API
    needs a caller; pages outside the API's schema (Swagger UI) do not. The request validation of the resolvers
    (feedcore.api.resolvers), which Powertools runs before any resolver middleware, calls it first; as the
    resolver's middleware it checks the routes that validate their input themselves (POST /v1/events)."""
    route = app.context.get("_route")
    # CORS preflights carry no token (API Gateway answers them itself in the cloud).
    if (
        route is None
        or not route.include_in_schema
        or app.current_event.http_method == "OPTIONS"
        or app.context.get(_AUTHORIZED)
    ):
        return next_middleware(app)
    caller = caller_of(app.current_event)
    if route.security == ADMIN_SECURITY:
        if not caller.is_admin:
            raise Forbidden("this route needs an admin identity")
    elif (user_id := app.context.get("_route_args", {}).get("user_id")) is not None:
        require_user(caller, user_id)
    app.append_context(**{_AUTHORIZED: True})  # the resolver clears its context after each request
    return next_middleware(app)


def authorize_events(event: BaseProxyEvent, batch: EventBatch | UsualEventBatch) -> None:
    """Every event of the batch must be the caller's own (as sent: also the ones that will be rejected)."""
    from feedcore.api.event_fast_path import UsualEventBatch  # loaded by the events function only
    from feedcore.api.event_models import UnmatchedEvent

    caller = caller_of(event)
    if caller.is_admin:  # may send any user's events (a producer service): no need to look at each
        return
    if isinstance(batch, UsualEventBatch):  # read from its Structs: no dict made per event
        user_ids = [struct.user_id for struct in batch.structs]
    else:
        sent_events = [event.sent if isinstance(event, UnmatchedEvent) else event for event in batch.events]
        user_ids = [sent.get("user_id") if isinstance(sent, dict) else None for sent in sent_events]
    for index, user_id in enumerate(user_ids):
        if isinstance(user_id, str) and user_id != caller.subject:
            raise Forbidden(f"events[{index}] belongs to another user; send only the caller's own events")
