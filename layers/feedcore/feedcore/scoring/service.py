"""Recompute the score tables from the event log: incrementally from the watermark, or in full."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta
from time import monotonic
from typing import Literal

import psycopg
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict

from feedcore.db import events as events_db
from feedcore.db import feed as feed_db
from feedcore.db import scores as scores_db
from feedcore.db.connection import bound_transaction, connect, run
from feedcore.observability import logger, metrics
from feedcore.scoring import fanout
from feedcore.scoring.models import import_model_scores
from feedcore.scoring.pairs import score_pairs
from feedcore.scoring.rebuild import SideParts, rebuild_scores
from feedcore.settings import ScoringSettings, model_score_settings, scoring_settings

# A run given less time than this would time out anyway; let it try.
MIN_STATEMENT_TIMEOUT_MS = 1_000
# The store shelves are packed in this many shares side by side, each on a connection (and a core) of its own.
PACK_SHARES = 2


class RecomputeRequest(BaseModel):
    """What the scheduler (or an operator) asks for."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["incremental", "full"] = "incremental"


class RecomputeResult(BaseModel):
    status: Literal["completed", "partial", "skipped"]
    models_imported: list[str] = []
    feed_snapshots_expired: int = 0
    mode: str
    chunks: int = 0
    events_scored: int = 0
    popularity_updates: int = 0
    affinity_updates: int = 0
    pair_updates: int = 0
    shard_messages_sent: int = 0
    duration_ms: float = 0.0


def run_timeout_ms(configured_ms: int, time_budget_ms: int | None) -> int:
    """The statement timeout of a run: the configured one, or less when the invocation has less time left."""
    if time_budget_ms is None:
        return configured_ms
    return max(MIN_STATEMENT_TIMEOUT_MS, min(configured_ms, time_budget_ms))


def epoch_for(moment: datetime) -> datetime:
    """The reference epoch a run starting at `moment` would choose: the start of its UTC day."""
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _score_chunk(
    conn: psycopg.Connection, mode: str, settings: ScoringSettings, as_of: datetime, timeout_ms: int
) -> fanout.ChunkOutcome | None:
    """One transaction: lock, read the watermark, score the next chunk of events, move the watermark — or,
    with fan-out, move it past a chunk whose shards are done, or leave a large chunk's per-user part to shards.

    Returns None when another run holds the lock.
    """
    started_at = datetime.now(UTC)
    if not scores_db.try_lock_recompute(conn, timeout_ms):
        return None
    state = scores_db.load_state(conn)
    if (settled := fanout.settle_open_chunk(conn, mode, settings)) is not None:
        return settled
    epoch = state.epoch if state else epoch_for(as_of)
    rebased = False
    if as_of - epoch > timedelta(days=settings.rebase_after_days):
        if mode == "incremental" and state is not None:
            scores_db.rebase(conn, settings, epoch, epoch_for(as_of))
            rebased = True
        epoch = epoch_for(as_of)
    rebuild = mode == "full" or state is None
    if rebuild:
        # Everything visible now, from scratch, into fresh tables swapped in at the end.
        target, scan_from = scores_db.current_snapshot(conn)
        chunk = scores_db.Chunk(scores_db.EMPTY_SNAPSHOT, target, scores_db.FIRST_XID, scores_db.LAST_XID,
                                datetime.min.replace(tzinfo=UTC), complete=True)  # fmt: skip
        next_scan_from = scan_from
    else:
        if state.target_snapshot is None:  # caught up last time: aim at the current snapshot
            target, next_scan_from = scores_db.current_snapshot(conn)
            done_below = scores_db.FIRST_XID
        else:  # a backlog in progress: keep its target
            target, next_scan_from, done_below = state.target_snapshot, state.scan_from, state.done_below_xid
        chunk = scores_db.next_chunk(
            conn, state.scored_snapshot, target, done_below, state.scan_from, settings.chunk_events
        )
        fanned_out = fanout.fan_out_chunk(conn, settings, epoch, state, chunk, as_of, next_scan_from)
        if fanned_out is not None:
            return fanned_out
    if rebuild:
        # A rebuild writes every trending score as of this run: no refresh.
        counts, pair_counts = rebuild_scores(conn, settings, epoch, chunk, as_of, timeout_ms)
        scores_db.save_state(conn, scores_db.state_after(epoch, chunk, next_scan_from), scores_db.PAIR_SCORE_STATE)
    elif rebased:  # this transaction rewrote the pair tables: a transaction beside it would wait for its row locks
        counts = scores_db.apply_events(conn, settings, epoch, chunk, as_of)
        pair_counts = score_pairs(conn, settings, epoch, state, chunk, next_scan_from)
        scores_db.refresh_trending(conn, settings, epoch, as_of)
    else:
        # The pairs beside the events, on a connection of their own (the database runs a statement on one core).
        beside = SideParts(conn, None, timeout_ms)
        pairs = beside.start("pairs", lambda side: score_pairs(side, settings, epoch, state, chunk, next_scan_from))
        with beside:
            counts = scores_db.apply_events(conn, settings, epoch, chunk, as_of)
            scores_db.refresh_trending(conn, settings, epoch, as_of)
            pair_counts = pairs.result()
    scores_db.save_state(conn, scores_db.state_after(epoch, chunk, next_scan_from))
    scores_db.record_run(conn, mode, started_at, datetime.now(UTC), chunk, counts)
    return fanout.ChunkOutcome(chunk.complete, counts, pair_counts.pair_updates)


def recompute_scores(
    request: RecomputeRequest, *, now: datetime | None = None, time_budget_ms: int | None = None
) -> RecomputeResult:
    """Score the events committed since the last run (or all of them, for `mode="full"`) as of `now`.

    A backlog is scored in chunks of SCORING_CHUNK_EVENTS, one transaction each, until caught up or until
    `time_budget_ms` (e.g. the Lambda's remaining time less a margin) runs out — then the result is
    "partial" and the next run continues. A run that finds another in progress skips: the schedule comes
    again. Every chunk is atomic, so a crash loses nothing: the watermark moves with the scores.
    """
    settings = scoring_settings()
    started = monotonic()
    deadline = started + (time_budget_ms / 1000 if time_budget_ms is not None else float("inf"))
    as_of = now or datetime.now(UTC)
    # Next month's event partition is made here, ahead of time, rather than by the first event of the month.
    this_month = events_db.month_of(datetime.now(UTC))
    months = {this_month, events_db.next_month(this_month)}
    run(lambda conn: events_db.ensure_event_partitions(conn, months), in_transaction=False)

    result = RecomputeResult(status="partial", mode=request.mode)
    mode = request.mode
    while True:
        # Each chunk's statements get at most the time the invocation has left.
        left_ms = None if time_budget_ms is None else int((deadline - monotonic()) * 1000)
        timeout_ms = run_timeout_ms(settings.recompute_statement_timeout_ms, left_ms)
        outcome = run(lambda conn, mode=mode, timeout_ms=timeout_ms: _score_chunk(conn, mode, settings, as_of,
                                                                                 timeout_ms))  # fmt: skip
        if outcome is None:
            logger.warning("another recompute is running; leaving the rest to it")
            metrics.add_metric(name="RecomputeSkipped", unit=MetricUnit.Count, value=1)
            if result.chunks == 0:
                return RecomputeResult(status="skipped", mode=request.mode)
            break
        if outcome.shards_pending is not None:  # the watermark waits for a fanned-out chunk's shards
            sent = fanout.send_and_wait(outcome.shards_pending, deadline)
            result = result.model_copy(update={"shard_messages_sent": result.shard_messages_sent + sent})
            if monotonic() >= deadline:
                break
            continue
        counts = outcome.counts
        result = result.model_copy(
            update={
                "chunks": result.chunks + 1,
                "events_scored": result.events_scored + counts.events_scored,
                "popularity_updates": result.popularity_updates + counts.popularity_updates,
                "affinity_updates": result.affinity_updates + counts.affinity_updates,
                "pair_updates": result.pair_updates + outcome.pair_updates,
            }
        )
        mode = "incremental"  # a full rebuild is one chunk; anything left after it is new
        if outcome.complete:
            result = result.model_copy(update={"status": "completed"})
            break
        if monotonic() >= deadline:
            break
    # The feed reads each store's popularity and trending from its packed shelf: repack them, off the request
    # path (a run changes no availability: only the scores are packed again where the pack is current).
    left_ms = None if time_budget_ms is None else int((deadline - monotonic()) * 1000)
    _pack_store_shelves(run_timeout_ms(settings.recompute_statement_timeout_ms, left_ms))
    result = result.model_copy(update={"duration_ms": round((monotonic() - started) * 1000, 1)})
    metrics.add_metric(name="RecomputeDuration", unit=MetricUnit.Milliseconds, value=result.duration_ms)
    metrics.add_metric(name="EventsScored", unit=MetricUnit.Count, value=result.events_scored)
    metrics.add_metric(name="RecomputeBacklogLeft", unit=MetricUnit.Count, value=int(result.status == "partial"))
    logger.info("scores recomputed", extra=result.model_dump())
    return result


def _pack_store_shelves(timeout_ms: int) -> None:
    """Pack the items' reorder counts, committed first: a feed reads them with a shelf packed after them, so
    they are never a run older than the shelf; with them, bring the catalog's shelf positions up to date, which
    every store's repack reads. Then repack the scores of every store's shelf (and '*'; a shelf whose pack is not
    current is packed whole) in PACK_SHARES shares side by side, each in a transaction of its own: one on the
    run's connection, the others on connections of their own. The database packs a store on one core
    (~0.05-0.1 s for 20,000 items), one after the other."""
    started = monotonic()
    run(lambda conn: _pack_reorders_and_positions(conn, timeout_ms))
    timeout_ms = max(MIN_STATEMENT_TIMEOUT_MS, timeout_ms - int((monotonic() - started) * 1000))
    store_ids = run(scores_db.shelf_store_ids)
    shares = [store_ids[i::PACK_SHARES] for i in range(PACK_SHARES)]
    with ThreadPoolExecutor(max_workers=PACK_SHARES - 1, thread_name_prefix="pack") as pool:
        apart = [pool.submit(_pack_share_apart, share, timeout_ms) for share in shares[1:]]
        packed = run(lambda conn: _pack_share(conn, shares[0], timeout_ms))
        packed += sum(future.result() for future in apart)
    logger.debug("store shelves packed", extra={"shelves": packed})


def _pack_reorders_and_positions(conn: psycopg.Connection, timeout_ms: int) -> None:
    bound_transaction(conn, timeout_ms)
    feed_db.pack_item_reorders(conn)
    feed_db.refresh_shelf_positions(conn)


def _pack_share(conn: psycopg.Connection, store_ids: list[str], timeout_ms: int) -> int:
    bound_transaction(conn, timeout_ms)
    return feed_db.repack_store_shelves_scores(conn, store_ids)


def _pack_share_apart(store_ids: list[str], timeout_ms: int) -> int:
    with closing(connect()) as conn, conn.transaction():
        return _pack_share(conn, store_ids, timeout_ms)


def refresh_scores(request: RecomputeRequest, *, time_budget_ms: int | None = None) -> RecomputeResult:
    """What the schedule runs: the recompute, the import of new model score files (when configured), and
    the removal of expired feed snapshots. The import's settings are read first: a bad one (ValidationError) stops
    the run before it recomputes, not after."""
    import_settings = model_score_settings()
    try:
        result = recompute_scores(request, time_budget_ms=time_budget_ms)
        left_ms = None if time_budget_ms is None else int(time_budget_ms - result.duration_ms)
        timeout_ms = run_timeout_ms(scoring_settings().recompute_statement_timeout_ms, left_ms)
        try:
            imported = import_model_scores(import_settings, timeout_ms)
        except Exception as error:  # tell whoever reads it that a rerun would not redo the scores
            error.add_note(
                f"the recompute before it ended and is committed (status {result.status}, {result.events_scored} "
                "events scored); only the model score import failed"
            )
            raise
    finally:  # a run or an import that fails (packing the shelves, S3) must not leave expired snapshots behind
        expired = run(lambda conn: feed_db.delete_expired_snapshots(conn, datetime.now(UTC)))
    return result.model_copy(update={"models_imported": [i.model for i in imported], "feed_snapshots_expired": expired})
