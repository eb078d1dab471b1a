"""Domain exceptions. They carry no HTTP: feedcore.api.problems maps them to responses."""

from __future__ import annotations

from collections.abc import Sequence

from feedcore.api.models import EventRejection, FieldError

# An answer lists the first errors of a request, or of an event of a batch: the first errors say what to fix, and
# a body within the limit that holds thousands of wrong fields made an answer past Lambda's 6 MB response limit
# (API Gateway then answers 502). See also feedcore.api.field_errors.MAX_ERROR_TEXT.
MAX_FIELD_ERRORS = 10


class FeedError(Exception):
    """Base class of the service's own errors."""


class DatabaseUnavailable(FeedError):
    """The database could not be reached or could not commit; the caller may retry."""


class LockWaitTimedOut(DatabaseUnavailable):
    """A statement waiting for a lock was ended by its transaction's statement timeout: the holder still runs."""


class ErasureBusy(DatabaseUnavailable):
    """An erasure waited its limit for a running score run, shard or model import that may still write the
    user's scores."""

    def __init__(self, wait_ms: int):
        super().__init__(
            f"a score recomputation or model import that may write this user's data is running (waited {wait_ms} "
            "ms); nothing was deleted: retry the same request later"
        )


class ErasureTimedOut(DatabaseUnavailable):
    """An erasure did not finish within its time (INGEST_ERASURE_TIMEOUT_MS, or what was left of the invocation);
    its transaction rolled back."""

    def __init__(self, limit_ms: int):
        super().__init__(
            f"the erasure did not finish within {limit_ms} ms; nothing was deleted: retry the same request later"
        )


class ModelImportFailed(FeedError):
    """The newest file of one or more models could not be imported (S3, the database, the time budget; not a
    refused file): the other models were imported, and these keep their previous version until a later run."""

    def __init__(self, failures: dict[str, str]):
        self.failures = failures  # model: what failed
        super().__init__("model import failed: " + "; ".join(f"{m}: {reason}" for m, reason in failures.items()))


class Unauthenticated(FeedError):
    """The request carries no verified identity."""


class Forbidden(FeedError):
    """The caller may not do this: another user's data, or an admin route without the admin group."""


class ConfigurationError(FeedError):
    """The deployment is misconfigured (no database, a malformed secret): not the caller's fault."""


class InvalidArgument(FeedError, ValueError):
    """An argument of a scheduled task or of an offline command is out of its range or format in a way its type
    cannot say (a retention period within the late-event horizon, a dataset's file); the message says which and
    where. Requests of the API are refused by their models and InvalidRequest instead."""


class RequestTooLarge(FeedError):
    """A request carried more than one request may hold (events, items or bytes) in `field`."""

    def __init__(self, what: str, size: int, limit: int, *, field: str):
        super().__init__(f"the request holds {size} {what}; at most {limit} are accepted")
        self.limit = limit
        self.field = field


class InvalidRequest(FeedError):
    """The request is well-formed JSON but breaks the contract in ways the model alone cannot see; `errors` keeps
    the first MAX_FIELD_ERRORS of the errors given."""

    def __init__(self, detail: str, errors: Sequence[FieldError]):
        super().__init__(detail)
        self.errors = list(errors[:MAX_FIELD_ERRORS])


class EventsRejected(InvalidRequest):
    """Every event of a batch was rejected: nothing was stored. Its errors are the batch's first ones (each
    rejection lists its event's)."""

    def __init__(self, rejections: Sequence[EventRejection]):
        super().__init__(
            f"all {len(rejections)} events were rejected; nothing was stored",
            [error for rejection in rejections for error in rejection.errors],
        )
        self.rejections = list(rejections)


class InvalidCursor(InvalidRequest):
    """A page cursor that this service did not issue for this user (altered, forged or someone else's)."""

    def __init__(self, message: str):
        super().__init__(f"the cursor {message}", [FieldError(field="cursor", message=message, type="invalid_cursor")])


class FeedExpired(FeedError):
    """A page cursor points into a feed snapshot that expired: the client should ask for a fresh feed."""

    def __init__(self, feed_id: str):
        super().__init__(f"feed {feed_id} has expired; request the feed again without a cursor")
        self.feed_id = feed_id
