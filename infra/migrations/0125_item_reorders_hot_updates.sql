-- item_reorders' updates made HOT: its key without the INCLUDE columns, its pages half full.
--
-- The key carried both counts (migration 0071) so that the feed read them by index-only scans; the feed reads them
-- from their pack since migration 0082 (which reads every row anyway), and probes the table by key only for a store
-- whose shelf has no packed counts, now with a heap fetch. With the counts in the key, every update of
-- an item's counts (12,550 for 20,000 new events in the recompute bench) wrote a new index entry, and with pages
-- filled to the brim (a rebuild writes them so) no update could stay on its page. Now an update is HOT when its page
-- has room: fillfactor 50 (a rebuild's copy takes the table's storage parameters, feedcore.db.scores.start_rebuild;
-- ~20,000 rows, ~2 MB at half full). The events statement's item_reorders upsert, by EXPLAIN (ANALYZE, BUFFERS, WAL)
-- on copies of the bench's database (2026-11-28 13:30-13:45 UTC, rolled back): 59-62 ms before, 36 ms after.
-- CLUSTER rewrites the table now at the new fillfactor. It locks item_reorders, which a recompute chunk writes for
-- seconds: past 5 s the migration fails (the deploy rolls back and can run again) rather than hold the feed's
-- packing up longer.
SET LOCAL lock_timeout = '5s';
-- One statement, which takes its exclusive lock at once (no upgrade from a weaker one to deadlock on).
ALTER TABLE item_reorders SET (fillfactor = 50), DROP CONSTRAINT item_reorders_pkey,
    ADD CONSTRAINT item_reorders_pkey PRIMARY KEY (item_id);
CLUSTER item_reorders USING item_reorders_pkey;
