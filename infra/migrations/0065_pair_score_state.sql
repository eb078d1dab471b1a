-- The bought-together tables' own watermark. An incremental run scores its chunk's baskets into item_baskets,
-- item_pair_counts and item_pairs on a connection of its own, beside the statement scoring the chunk's events
-- (feedcore.scoring.pairs): its transaction commits on its own, so the pair tables say themselves which events
-- they hold. A run whose transaction fails after the pairs' committed leaves them ahead of score_state, and the
-- next run scores for the pairs only what they have not.
-- The same columns as score_state (migration 0003), with its single row.
CREATE TABLE pair_score_state (LIKE score_state INCLUDING ALL);

-- Where the pair tables are now: at the watermark, or past the open fan-out chunk, whose coordinator scored
-- its baskets already.
INSERT INTO pair_score_state (epoch, scored_snapshot, target_snapshot, done_below_xid, scan_from, updated_at)
SELECT s.epoch,
       CASE WHEN c.chunk_id IS NULL THEN s.scored_snapshot WHEN c.complete THEN c.target_snapshot
            ELSE c.scored_snapshot END,
       CASE WHEN c.chunk_id IS NULL THEN s.target_snapshot WHEN c.complete THEN NULL ELSE c.target_snapshot END,
       CASE WHEN c.chunk_id IS NULL THEN s.done_below_xid WHEN c.complete THEN NULL ELSE c.xid_to END,
       CASE WHEN c.chunk_id IS NULL THEN s.scan_from WHEN c.complete THEN c.next_scan_from ELSE c.scan_from END,
       s.updated_at
FROM score_state s
LEFT JOIN score_chunks c ON true;

-- The recompute's role reads and writes it (grant_function_privileges, migration 0061, knows no such table; a
-- grant stays with the table, which no rebuild replaces).
GRANT SELECT, INSERT, UPDATE ON pair_score_state TO feed_recompute_scores;
