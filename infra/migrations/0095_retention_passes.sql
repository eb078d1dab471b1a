-- Where retention's pass over a table has got to (feedcore.ingestion.retention), so that a pass longer than one
-- invocation goes on from there the next day instead of from the first block. A pass deletes the table's rows
-- older than `cutoff` from the blocks [0, end_block), end_block being the table's size when the pass began
-- (rows stored since are not expired: ingestion refuses events past the late-event horizon, and feeds are
-- recorded as they are served); the blocks before next_block are done. A pass whose next_block reached end_block
-- left no row older than its cutoff in the table. One row per table, moved by the range that commits with it.
CREATE TABLE retention_passes (
    table_name  text PRIMARY KEY CHECK (table_name IN ('event_ids', 'feeds')),
    cutoff      timestamptz NOT NULL,
    next_block  bigint NOT NULL CHECK (next_block BETWEEN 0 AND end_block),
    end_block   bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The recompute's role runs retention (grant_function_privileges, migration 0061, knows no such table; a grant
-- stays with the table).
GRANT SELECT, INSERT, UPDATE ON retention_passes TO feed_recompute_scores;
