"""Fanning a large chunk's per-user scoring out to user shards, consumed from an SQS queue in parallel.

The scheduled run stays the coordinator and the only writer of the watermark. A chunk of at least
SCORING_FANOUT_MIN_EVENTS events (when SCORING_FANOUT_QUEUE_URL is set) is scored in two parts: in one
transaction the coordinator scores its item-level signals (popularity, trending, bought together) and records
it open with SCORING_FANOUT_SHARDS user shards; then it sends one message per shard. A consumer scores the
chunk's events of its shard's users into the per-user tables and marks the shard done in one transaction, so a
message delivered again finds it done and changes nothing. The coordinator moves the watermark past the chunk
once every shard is done, and only then takes the next chunk: one chunk is open at a time, so the per-user
rows (first-seen `users` rows and home stores included) are written in the order of the single-transaction
path and the results are the same. Shards not done long after their message are sent again (a lost message);
no rebase starts while a chunk is open, a full rebuild cancels it (it scores every event anyway), and an
erasure waits for the user's shard (feedcore.ingestion.privacy).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from time import monotonic, sleep

import psycopg
from aws_lambda_powertools.metrics import MetricUnit

from feedcore.db import scores as scores_db
from feedcore.db import shard_queue
from feedcore.db import shards as shards_db
from feedcore.db.connection import run
from feedcore.observability import logger, metrics
from feedcore.scoring.pairs import score_pairs
from feedcore.settings import ScoringSettings, fanout_settings

# The counts of a transaction that leaves a chunk to its shards (theirs are counted when the chunk closes).
NO_UPDATES = scores_db.ApplyCounts(0, 0, 0)


@dataclass(frozen=True)
class ShardsPending:
    """An open chunk whose shards are not all done, and the shards whose message is to be sent now."""

    chunk_id: int
    messages: list[int]


@dataclass(frozen=True)
class ChunkOutcome:
    """What one transaction of a run did: moved the watermark past a chunk (`complete`: up to the run's target
    snapshot) with these counts — or, with `shards_pending`, left it waiting for a chunk's shards."""

    complete: bool
    counts: scores_db.ApplyCounts
    pair_updates: int
    shards_pending: ShardsPending | None = None


def settle_open_chunk(conn: psycopg.Connection, mode: str, settings: ScoringSettings) -> ChunkOutcome | None:
    """With the recompute lock held, before a run takes a new chunk: move the watermark past the open chunk
    when its shards are done, or say which shards it waits for (and which messages to send again). None when
    no chunk is open — or when a full rebuild (`mode="full"`) cancelled it, after the transactions scoring its
    shards ended. Without a queue (fan-out turned off since, or a local run) the run scores the open shards
    itself."""
    chunk = shards_db.open_chunk(conn)
    if chunk is None:
        return None
    if mode == "full":
        shards_db.cancel_open_chunk(conn)
        logger.info("a full rebuild cancels the open chunk", extra={"chunk_id": chunk.chunk_id})
        return None
    left = shards_db.shards_left(conn, chunk.chunk_id)
    fanout = fanout_settings()
    if left and not fanout.enabled:
        for shard in left:
            if (locked := shards_db.lock_shard(conn, chunk.chunk_id, shard)) is not None:
                score_shard(conn, settings, locked, shard)
        left = []
    if left:
        messages = shards_db.claim_messages(conn, chunk.chunk_id, fanout.resend_after_s)
        return ChunkOutcome(False, NO_UPDATES, 0, ShardsPending(chunk.chunk_id, messages))
    affinity_updates = shards_db.close_chunk(conn, chunk.chunk_id)
    counts = scores_db.ApplyCounts(chunk.events_scored, chunk.popularity_updates, affinity_updates)
    scores_db.save_state(conn, scores_db.state_after(chunk.epoch, chunk.chunk, chunk.next_scan_from))
    scores_db.record_run(conn, mode, chunk.created_at, datetime.now(UTC), chunk.chunk, counts)
    return ChunkOutcome(chunk.complete, counts, chunk.pair_updates)


def fan_out_chunk(
    conn: psycopg.Connection, settings: ScoringSettings, epoch: datetime, state: scores_db.ScoreState,
    chunk: scores_db.Chunk, as_of: datetime, next_scan_from: datetime,
) -> ChunkOutcome | None:  # fmt: skip
    """With the recompute lock held: when fan-out is on and the chunk (from the watermark `state`) holds at least
    SCORING_FANOUT_MIN_EVENTS events, score its item-level signals (the pairs from their own watermark, in this
    transaction) and record it open with its user shards (the watermark stays); None when the chunk is to be
    scored in one transaction."""
    fanout = fanout_settings()
    if not fanout.enabled or not scores_db.chunk_holds_events(conn, chunk, fanout.min_events):
        return None
    counts = scores_db.apply_item_events(conn, settings, epoch, chunk, as_of)
    pair_counts = score_pairs(conn, settings, epoch, state, chunk, next_scan_from)
    scores_db.refresh_trending(conn, settings, epoch, as_of)
    chunk_id = shards_db.record_chunk(
        conn, chunk, epoch, as_of, next_scan_from, fanout.shards, counts, pair_counts.pair_updates
    )
    logger.info("chunk fanned out", extra={"chunk_id": chunk_id, "shards": fanout.shards,
                                           "events": counts.events_scored})  # fmt: skip
    messages = shards_db.claim_messages(conn, chunk_id, fanout.resend_after_s)
    return ChunkOutcome(False, NO_UPDATES, 0, ShardsPending(chunk_id, messages))


def send_and_wait(pending: ShardsPending, deadline: float) -> int:
    """After the transaction that claimed them commits: send the pending messages, then wait until the chunk's
    shards are done, the run's `deadline` (monotonic) comes, or it is time to send lost messages again.
    Returns how many messages were sent."""
    fanout = fanout_settings()
    if pending.messages:
        shard_queue.send_shard_messages(fanout.queue_url, pending.chunk_id, pending.messages)
        metrics.add_metric(name="ShardMessagesSent", unit=MetricUnit.Count, value=len(pending.messages))
    until = min(deadline, monotonic() + fanout.resend_after_s)
    while run(lambda conn: shards_db.shards_left(conn, pending.chunk_id), in_transaction=False):
        if monotonic() + fanout.poll_interval_s > until:
            break
        sleep(fanout.poll_interval_s)
    return len(pending.messages)


def score_shard(
    conn: psycopg.Connection, settings: ScoringSettings, chunk: shards_db.OpenChunk, shard: int
) -> scores_db.ApplyCounts:
    """In the transaction that locked the shard: score the chunk's events of the shard's users into the
    per-user tables and mark the shard done."""
    counts = scores_db.apply_user_events(conn, settings, chunk.epoch, chunk.chunk, chunk.as_of, shard,
                                         chunk.shard_count)  # fmt: skip
    shards_db.mark_shard_done(conn, chunk.chunk_id, shard, counts)
    return counts
