"""Domain exceptions. They carry no HTTP: feedcore.api.problems maps them to responses."""

from __future__ import annotations

from collections.abc import Sequence

from feedcore.api.models import EventRejection, FieldError


class FeedError(Exception):
    """Base class of the service's own errors."""


class DatabaseUnavailable(FeedError):
    """The database could not be reached or could not commit; the caller may retry."""


class Unauthenticated(FeedError):
    """The request carries no verified identity."""


class Forbidden(FeedError):
    """The caller may not do this: another user's data, or an admin route without the admin group."""


class ConfigurationError(FeedError):
    """The deployment is misconfigured (no database, a malformed secret): not the caller's fault."""


class RequestTooLarge(FeedError):
    """A request carried more than one request may hold (events, items or bytes)."""

    def __init__(self, what: str, size: int, limit: int):
        super().__init__(f"the request holds {size} {what}; at most {limit} are accepted")
        self.limit = limit


class InvalidRequest(FeedError):
    """The request is well-formed JSON but breaks the contract in ways the model alone cannot see."""

    def __init__(self, detail: str, errors: Sequence[FieldError]):
        super().__init__(detail)
        self.errors = list(errors)


class EventsRejected(InvalidRequest):
    """Every event of a batch was rejected: nothing was stored."""

    def __init__(self, rejections: Sequence[EventRejection]):
        super().__init__(
            f"all {len(rejections)} events were rejected; nothing was stored",
            [error for rejection in rejections for error in rejection.errors],
        )
        self.rejections = list(rejections)
