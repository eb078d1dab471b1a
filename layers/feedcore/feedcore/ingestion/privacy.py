"""Erasure of a user's data on request."""

from __future__ import annotations

from functools import partial
from time import monotonic

import psycopg

from feedcore.api.catalog_models import UserDeletion
from feedcore.db import catalog as catalog_db
from feedcore.db import events as events_db
from feedcore.db import feed as feed_db
from feedcore.db import models as models_db
from feedcore.db import scores as scores_db
from feedcore.db import shards as shards_db
from feedcore.db.connection import answers_by, bound_transaction, run
from feedcore.errors import ConfigurationError, DatabaseUnavailable, ErasureBusy, ErasureTimedOut, LockWaitTimedOut
from feedcore.observability import logger
from feedcore.settings import database_settings, ingest_settings

# Kept back from what is left of the invocation, when the caller says, to answer: a statement the erasure stops
# awaiting is cancelled first (CANCEL_WITHIN_S).
ANSWER_MARGIN_MS = 1000


def delete_user(user_id: str, *, invocation_left_ms: int | None = None) -> UserDeletion:
    """Delete the user's events, per-user and model scores, served feeds and profile in one transaction;
    repeating it is harmless. It waits for a running recompute chunk, which could otherwise write the
    user's scores back, and for a running shard of a fanned-out chunk that holds the user; until it commits,
    neither starts, and after it they find none of the user's events. After INGEST_ERASURE_WAIT_MS of waiting
    it gives up and raises ErasureBusy, having deleted nothing.

    All of it — connecting again, the waits, the deletes, the commit — ends within INGEST_ERASURE_TIMEOUT_MS, and
    ANSWER_MARGIN_MS before the end of `invocation_left_ms` (what is left of the Lambda invocation, when known);
    past that it raises ErasureTimedOut, its transaction rolled back, having deleted nothing.

    The erasure is remembered (the user id and its time): a model score file written before it, or listing
    the user while they have sent no event since, is imported without the user's rows; and a page of the user's
    feed made before it committed (or within a minute after) is not recorded after it (migration 0121).

    Aggregates the user contributed to (store popularity, trending) hold no personal data; the user's part
    leaves them at the next full rebuild. Events of the user committed after it are stored as usual.
    Raises ConfigurationError when INGEST_ERASURE_WAIT_MS and DB_STATEMENT_TIMEOUT_MS together exceed
    INGEST_ERASURE_TIMEOUT_MS (the deletes would have less than a statement timeout).
    """

    settings = ingest_settings()
    statement_timeout_ms = database_settings().db_statement_timeout_ms
    if settings.erasure_wait_ms + statement_timeout_ms > settings.erasure_timeout_ms:
        raise ConfigurationError(
            f"INGEST_ERASURE_WAIT_MS ({settings.erasure_wait_ms}) and DB_STATEMENT_TIMEOUT_MS "
            f"({statement_timeout_ms}) leave the deletes less than a statement timeout of INGEST_ERASURE_TIMEOUT_MS "
            f"({settings.erasure_timeout_ms})"
        )
    limit_ms = settings.erasure_timeout_ms
    if invocation_left_ms is not None:
        limit_ms = max(0, min(limit_ms, invocation_left_ms - ANSWER_MARGIN_MS))
    started = monotonic()
    deadline = started + limit_ms / 1000  # of the whole erasure, a reconnection and second try by `run` included
    wait_ends = min(started + settings.erasure_wait_ms / 1000, deadline)

    def ms_until(moment: float) -> int:
        return max(1, int((moment - monotonic()) * 1000))

    def erase(conn: psycopg.Connection) -> UserDeletion:
        # The waits, together, may take INGEST_ERASURE_WAIT_MS (more than a request's statement timeout): each is
        # bounded by what is left of it.
        locks = (
            partial(scores_db.lock_out_recompute, conn),
            partial(shards_db.lock_user_shard, conn, user_id),
            partial(models_db.lock_erasures, conn),
        )
        try:
            for lock in locks:
                bound_transaction(conn, ms_until(wait_ends))
                lock()
        except LockWaitTimedOut as exc:
            raise ErasureBusy(int((monotonic() - started) * 1000)) from exc

        # The deletes get what the waits left of the erasure's time, each statement what is left of it: a user of
        # millions of events takes seconds to delete (2,000,000 events, 3 s), and bound by the statement timeout alone
        # their erasure answered 503 at every retry.
        def within_what_is_left() -> None:
            bound_transaction(conn, ms_until(deadline))

        try:
            within_what_is_left()
            # A page of the user's feed read before this commits is not recorded after it (its recording, finding
            # this lock held, records nothing; one under way is waited for here).
            feed_db.lock_out_feed_recordings(conn, user_id)
            within_what_is_left()
            events_deleted = events_db.delete_user_events(conn, user_id)
            within_what_is_left()
            scores_deleted = scores_db.delete_user_scores(conn, user_id)
            within_what_is_left()
            feed_db.delete_user_feeds(conn, user_id)
            within_what_is_left()
            catalog_db.delete_user(conn, user_id)
            within_what_is_left()
            models_db.remember_erasure(conn, user_id)  # last: its time is the commit's, within a round trip
        except psycopg.errors.QueryCanceled as exc:  # the server ended a statement at the erasure's deadline
            raise ErasureTimedOut(limit_ms) from exc
        return UserDeletion(user_id=user_id, events_deleted=events_deleted, scores_deleted=scores_deleted)

    try:
        # Every wait for an answer, the commit's included, ends by the deadline: the statement is then cancelled and
        # the connection closed, and the transaction rolls back.
        with answers_by(deadline):
            deletion = run(erase)
    except DatabaseUnavailable as exc:
        if isinstance(exc, ErasureBusy | ErasureTimedOut) or monotonic() < deadline:
            raise
        raise ErasureTimedOut(limit_ms) from exc
    logger.info("user data deleted", extra=deletion.model_dump())
    return deletion
