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
from feedcore.db.connection import bound_transaction, run
from feedcore.errors import ErasureBusy, LockWaitTimedOut
from feedcore.observability import logger
from feedcore.settings import database_settings, ingest_settings


def delete_user(user_id: str) -> UserDeletion:
    """Delete the user's events, per-user and model scores, served feeds and profile in one transaction;
    repeating it is harmless. It waits for a running recompute chunk, which could otherwise write the
    user's scores back, and for a running shard of a fanned-out chunk that holds the user; until it commits,
    neither starts, and after it they find none of the user's events. After INGEST_ERASURE_WAIT_MS of waiting
    it gives up and raises ErasureBusy, having deleted nothing.

    The erasure is remembered (the user id and its time): a model score file written before it, or listing
    the user while they have sent no event since, is imported without the user's rows; and a page of the user's
    feed made before it committed (or within a minute after) is not recorded after it (migration 0121).

    Aggregates the user contributed to (store popularity, trending) hold no personal data; the user's part
    leaves them at the next full rebuild. Events of the user committed after the erasure are stored as usual.
    """

    settings = ingest_settings()
    wait_ms = settings.erasure_wait_ms

    def erase(conn: psycopg.Connection) -> UserDeletion:
        # The waits, together, may take wait_ms (more than a request's statement timeout): each is bounded by
        # what is left of it.
        started = monotonic()
        wait_ends = started + wait_ms / 1000
        locks = (
            partial(scores_db.lock_out_recompute, conn),
            partial(shards_db.lock_user_shard, conn, user_id),
            partial(models_db.lock_erasures, conn),
        )
        try:
            for lock in locks:
                bound_transaction(conn, max(1, int((wait_ends - monotonic()) * 1000)))
                lock()
        except LockWaitTimedOut as exc:
            raise ErasureBusy(wait_ms) from exc
        # The deletes get what the waits left of the erasure's time, at least a request's statement timeout: a user
        # of millions of events takes seconds to delete (2,000,000 events, 3 s), and bound by the statement timeout
        # alone their erasure answered 503 at every retry.
        left_ms = int((started + settings.erasure_timeout_ms / 1000 - monotonic()) * 1000)
        bound_transaction(conn, max(database_settings().db_statement_timeout_ms, left_ms))
        # A page of the user's feed read before this commits is not recorded after it (its recording, finding this
        # lock held, records nothing; one under way is waited for here).
        feed_db.lock_out_feed_recordings(conn, user_id)
        events_deleted = events_db.delete_user_events(conn, user_id)
        scores_deleted = scores_db.delete_user_scores(conn, user_id)
        feed_db.delete_user_feeds(conn, user_id)
        catalog_db.delete_user(conn, user_id)
        models_db.remember_erasure(conn, user_id)  # last: its time is the commit's, within a round trip
        return UserDeletion(user_id=user_id, events_deleted=events_deleted, scores_deleted=scores_deleted)

    deletion = run(erase)
    logger.info("user data deleted", extra=deletion.model_dump())
    return deletion
