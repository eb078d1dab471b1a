-- The feed reads each seed's goes-well-with rows as `WHERE item_id = $seed ORDER BY score DESC, paired_item_id
-- COLLATE "C" LIMIT $pool` (feed_user_item_rows, migrations 0099 and 0100: a total order). item_pairs_rank_idx
-- (item_id, score DESC) gave the first key only, so each of a page's up to five seeds set up an incremental sort over
-- its rows; an index in the whole order spares the sorts, and holding every column the read takes, it reads no table
-- page where the visibility map allows. The same rows in the same order. Measured on the feed bench's database
-- (feed_user_item_rows for 1,000 users after 100 warm-up calls, three interleaved rounds, median a call with its
-- round trip): 0.834 / 0.923 / 0.933 ms -> 0.754 / 0.877 / 0.763 ms, the rows identical for every user; the five
-- seeds with the most pairs, 21 -> 11 buffers. Nothing else reads the old index: (item_id, score DESC) is its prefix.
-- The recompute writes item_pairs and a full rebuild indexes its copies like the live table (pg_indexes): this
-- waits for a run in progress and keeps the next ones out (they skip) until it commits, by the recompute's advisory
-- lock (feedcore.db.scores.RECOMPUTE_LOCK_KEY). The build blocks no read; the DROP waits for the feed's reads in
-- progress, and those after it queue behind it until the commit: past 1 s (under the feed's 2 s statement timeout,
-- past which a queued first page would be served degraded) the migration fails (the deploy rolls back and can run
-- again) rather than hold them up longer.
SELECT pg_advisory_xact_lock(7246201118);
SET LOCAL lock_timeout = '1s';
CREATE INDEX item_pairs_rank_read_idx ON item_pairs (item_id, score DESC, paired_item_id COLLATE "C");
DROP INDEX item_pairs_rank_idx;
