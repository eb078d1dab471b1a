-- The bought-together tables' own watermark. An incremental run scores its chunk's baskets into item_baskets,
-- item_pair_counts and item_pairs on a connection of its own, beside the statement scoring the chunk's events
-- (feedcore.scoring.pairs): its transaction commits on its own, so the pair tables say themselves which events
-- they hold. A run whose transaction fails after the pairs' committed leaves them ahead of score_state, and the
-- next run scores for the pairs only what they have not.
-- The same columns as score_state (migration 0003), with its single row.
CREATE TABLE pair_score_state (LIKE score_state INCLUDING ALL);

-- The code deployed before this migration keeps running while it is applied (and again after a rollback): it moves
-- score_state and the pair tables in one transaction and knows nothing of this watermark, which would then lag
-- behind pair tables that are not, and the next run would count those baskets again. So a write of score_state
-- moves this watermark along, unless the transaction says it keeps the pairs' own (feedcore.db.scores.save_state,
-- the code of this migration on). Made before the starting point below is read: a run of the older code that
-- already wrote score_state holds its row lock, which creating the trigger waits for; a later one fires it.
CREATE FUNCTION pair_state_follows_score_state() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('feedcore.pairs_own_watermark', true), '') <> 'on' THEN
        INSERT INTO pair_score_state (epoch, scored_snapshot, target_snapshot, done_below_xid, scan_from, updated_at)
        VALUES (NEW.epoch, NEW.scored_snapshot, NEW.target_snapshot, NEW.done_below_xid, NEW.scan_from, NEW.updated_at)
        ON CONFLICT (singleton) DO UPDATE SET
            epoch = excluded.epoch, scored_snapshot = excluded.scored_snapshot,
            target_snapshot = excluded.target_snapshot, done_below_xid = excluded.done_below_xid,
            scan_from = excluded.scan_from, updated_at = excluded.updated_at;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER pair_state_follows_score_state AFTER INSERT OR UPDATE ON score_state
FOR EACH ROW EXECUTE FUNCTION pair_state_follows_score_state();

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
