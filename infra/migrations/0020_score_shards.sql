-- Fanning out the recompute of a large chunk.
--
-- The scheduled run (the coordinator) scores a chunk's item-level signals itself and leaves its per-user part
-- to N shards, each consumed from an SQS message: shard s scores the chunk's events of the users with
-- mod(hashtext(user_id) & 2147483647, N) = s. The chunk row holds everything a shard needs and the watermark
-- the coordinator moves to once every shard is done; then it deletes the chunk (its shards go with it), so
-- a message of a finished or cancelled chunk finds nothing to do. At most one chunk is open at a time.

CREATE TABLE score_chunks (
    chunk_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- the events of the chunk (see feedcore.db.scores.Chunk) and the epoch they are scored against
    epoch             timestamptz NOT NULL,
    scored_snapshot   pg_snapshot NOT NULL,
    target_snapshot   pg_snapshot NOT NULL,
    xid_from          xid8 NOT NULL,
    xid_to            xid8 NOT NULL,
    scan_from         timestamptz NOT NULL,
    -- the chunk reaches its target snapshot; the scan bound the watermark then gets
    complete          boolean NOT NULL,
    next_scan_from    timestamptz NOT NULL,
    -- the run's clock (updated_at of the score rows)
    as_of             timestamptz NOT NULL,
    shard_count       integer NOT NULL CHECK (shard_count >= 1),
    -- what the coordinator scored itself
    events_scored     integer NOT NULL,
    popularity_updates integer NOT NULL,
    pair_updates      integer NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT statement_timestamp()
);
-- One open chunk at most: the watermark passes chunks in order.
CREATE UNIQUE INDEX score_chunks_one_open ON score_chunks ((true));

CREATE TABLE score_shards (
    chunk_id          bigint NOT NULL REFERENCES score_chunks ON DELETE CASCADE,
    shard             integer NOT NULL CHECK (shard >= 0),
    -- when its message was last sent (NULL: not yet); a shard not done long after is sent again
    sent_at           timestamptz,
    done_at           timestamptz,
    affinity_updates  integer NOT NULL DEFAULT 0,
    category_updates  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (chunk_id, shard)
);
