"""Domain exceptions. They carry no HTTP: feedcore.api.problems maps them to responses."""


class FeedError(Exception):
    """Base class of the service's own errors."""


class DatabaseUnavailable(FeedError):
    """The database could not be reached or could not commit; the caller may retry."""


class BatchTooLarge(FeedError):
    """A request carried more events than one batch may hold."""

    def __init__(self, size: int, limit: int):
        super().__init__(f"batch holds {size} events; at most {limit} are accepted per request")
        self.size = size
        self.limit = limit


class ConfigurationError(FeedError):
    """The deployment is misconfigured (no database, a malformed secret): not the caller's fault."""
