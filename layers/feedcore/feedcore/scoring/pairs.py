"""The bought-together tables, scored from a watermark of their own (migration 0065).

An incremental run scores its chunk's baskets in a transaction beside the one scoring its events, on a connection
(and a core of the database) of its own: the two commit one after the other, not at once, so each keeps its own
watermark. A run whose transaction fails after the pairs' committed leaves the pairs ahead; a pairs' transaction
that failed leaves them behind (the run's fails with it, but a fan-out coordinator or an older deploy may have
moved the other). Either way the next run's pairs take their chunk from their own watermark: the run's chunk when
the two agree, as they do but after such a failure.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

from feedcore.db import scores as scores_db
from feedcore.settings import ScoringSettings


def score_pairs(
    conn: psycopg.Connection, settings: ScoringSettings, epoch: datetime, run_state: scores_db.ScoreState,
    run_chunk: scores_db.Chunk, next_scan_from: datetime,
) -> scores_db.PairCounts:  # fmt: skip
    """In the pairs' transaction: lock their watermark, score the baskets of the chunk it leads to (the run's
    chunk `run_chunk`, taken from `run_state`, when it equals the run's watermark; else its own next chunk towards
    the run's target, or towards the target of a backlog of its own) and move it past them."""
    mark = scores_db.load_state(conn, scores_db.PAIR_SCORE_STATE)
    if mark is None:
        raise RuntimeError("the bought-together tables have no watermark: run a full rebuild")
    if mark == run_state:
        chunk = run_chunk
    else:
        if mark.target_snapshot is None:  # caught up: aim where the run aims
            target, done_below = run_chunk.target, scores_db.FIRST_XID
        else:
            target, next_scan_from, done_below = mark.target_snapshot, mark.scan_from, mark.done_below_xid
        chunk = scores_db.next_chunk(
            conn, mark.scored_snapshot, target, done_below, mark.scan_from, settings.chunk_events
        )
    counts = scores_db.apply_pairs(conn, settings, epoch, chunk)
    scores_db.save_state(conn, scores_db.state_after(epoch, chunk, next_scan_from), scores_db.PAIR_SCORE_STATE)
    return counts
