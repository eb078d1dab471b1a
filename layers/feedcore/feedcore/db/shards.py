"""Fanned-out chunks and their user shards (score_chunks, score_shards; see 0020_score_shards.sql).

A chunk row exists while the chunk is open: from the transaction that scores its item-level signals until the
one that moves the watermark past it (or a full rebuild cancels it). Deleting it deletes its shards, so a
message of a finished or cancelled chunk finds nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from feedcore.db.connection import wait_for_lock
from feedcore.db.scores import ApplyCounts, Chunk, user_shard_sql

_CHUNK_COLUMNS = """
c.chunk_id, c.epoch, c.as_of, c.shard_count, c.complete, c.next_scan_from, c.events_scored, c.popularity_updates,
c.pair_updates, c.created_at,
c.scored_snapshot::text, c.target_snapshot::text, c.xid_from::text, c.xid_to::text, c.scan_from
"""


@dataclass(frozen=True)
class OpenChunk:
    """A chunk whose item-level part is scored and whose per-user part is out on `shard_count` shards."""

    chunk_id: int
    epoch: datetime
    as_of: datetime
    shard_count: int
    complete: bool
    next_scan_from: datetime
    events_scored: int
    popularity_updates: int
    pair_updates: int
    created_at: datetime
    chunk: Chunk


def _open_chunk(row: tuple | None) -> OpenChunk | None:
    if row is None:
        return None
    *fields, scored, target, xid_from, xid_to, scan_from = row
    return OpenChunk(*fields, chunk=Chunk(scored, target, xid_from, xid_to, scan_from, complete=fields[4]))


def open_chunk(conn: psycopg.Connection) -> OpenChunk | None:
    """The open chunk, if any (at most one is)."""
    return _open_chunk(conn.execute(f"SELECT {_CHUNK_COLUMNS} FROM score_chunks c").fetchone())


def record_chunk(
    conn: psycopg.Connection, chunk: Chunk, epoch: datetime, as_of: datetime, next_scan_from: datetime,
    shard_count: int, counts: ApplyCounts, pair_updates: int,
) -> int:  # fmt: skip
    """Record the chunk as open with `shard_count` shards to score (none sent yet); returns its chunk_id."""
    (chunk_id,) = conn.execute(
        """
        INSERT INTO score_chunks (epoch, scored_snapshot, target_snapshot, xid_from, xid_to, scan_from, complete,
                                  next_scan_from, as_of, shard_count, events_scored, popularity_updates,
                                  pair_updates)
        VALUES (%s, %s::pg_snapshot, %s::pg_snapshot, %s::xid8, %s::xid8, %s, %s, %s, %s, %s, %s, %s, %s)
        RETURNING chunk_id
        """,
        (epoch, chunk.scored, chunk.target, chunk.xid_from, chunk.xid_to, chunk.scan_from, chunk.complete,
         next_scan_from, as_of, shard_count, counts.events_scored, counts.popularity_updates, pair_updates),
    ).fetchone()  # fmt: skip
    conn.execute(
        "INSERT INTO score_shards (chunk_id, shard) SELECT %s, generate_series(0, %s - 1)", (chunk_id, shard_count)
    )
    return chunk_id


def claim_messages(conn: psycopg.Connection, chunk_id: int, resend_after_s: int) -> list[int]:
    """The shards of the chunk whose message is to be sent now — never sent, or sent more than
    `resend_after_s` ago and still not done (the message was lost) — stamped as sent."""
    rows = conn.execute(
        """
        UPDATE score_shards SET sent_at = statement_timestamp()
        WHERE chunk_id = %s AND done_at IS NULL
          AND (sent_at IS NULL OR sent_at < statement_timestamp() - make_interval(secs => %s))
        RETURNING shard
        """,
        (chunk_id, resend_after_s),
    ).fetchall()
    return sorted(shard for (shard,) in rows)


def shards_left(conn: psycopg.Connection, chunk_id: int) -> list[int]:
    """The shards of the chunk not done yet (none when the chunk is gone)."""
    rows = conn.execute(
        "SELECT shard FROM score_shards WHERE chunk_id = %s AND done_at IS NULL ORDER BY shard", (chunk_id,)
    ).fetchall()
    return [shard for (shard,) in rows]


def lock_shard(conn: psycopg.Connection, chunk_id: int, shard: int) -> OpenChunk | None:
    """Lock the shard for this transaction (waiting for a transaction scoring it) and return its chunk; None
    when it is done, or its chunk finished or was cancelled meanwhile."""
    row = conn.execute(
        f"""
        SELECT {_CHUNK_COLUMNS}
        FROM score_shards s JOIN score_chunks c USING (chunk_id)
        WHERE s.chunk_id = %s AND s.shard = %s AND s.done_at IS NULL
        FOR UPDATE OF s
        """,
        (chunk_id, shard),
    ).fetchone()
    return _open_chunk(row)


# score_shards.category_updates is left at its default: no aisle rows are written since migration 0096.
def mark_shard_done(conn: psycopg.Connection, chunk_id: int, shard: int, counts: ApplyCounts) -> None:
    conn.execute(
        """
        UPDATE score_shards SET done_at = statement_timestamp(), affinity_updates = %s
        WHERE chunk_id = %s AND shard = %s
        """,
        (counts.affinity_updates, chunk_id, shard),
    )


def close_chunk(conn: psycopg.Connection, chunk_id: int) -> int:
    """Delete the finished chunk with its shards; returns the shards' affinity updates."""
    row = conn.execute(
        """
        WITH closed AS (DELETE FROM score_chunks WHERE chunk_id = %(chunk_id)s)
        SELECT coalesce(sum(affinity_updates), 0) FROM score_shards WHERE chunk_id = %(chunk_id)s
        """,
        {"chunk_id": chunk_id},
    ).fetchone()
    return row[0]


def cancel_open_chunk(conn: psycopg.Connection) -> int | None:
    """Delete the open chunk, after the transactions scoring its shards end; returns its chunk_id."""
    row = conn.execute("DELETE FROM score_chunks RETURNING chunk_id").fetchone()
    return row[0] if row else None


def lock_user_shard(conn: psycopg.Connection, user_id: str) -> None:
    """Wait for a transaction scoring the open chunk's shard of the user, and keep others out until this
    transaction ends; raises LockWaitTimedOut when the transaction's statement timeout ends the wait."""
    wait_for_lock(
        conn,
        f"""
        SELECT FROM score_shards s JOIN score_chunks c USING (chunk_id)
        WHERE s.shard = {user_shard_sql("%s", "c.shard_count")}
        FOR UPDATE OF s
        """,
        (user_id,),
    )
