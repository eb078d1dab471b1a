-- item_popularity without its index on the trending score (migration 0003), so that a run's upserts of popularity
-- (~40,000 conflicting rows for 1 % new events in the recompute bench) are HOT updates: the trending score changes
-- with every event, and an indexed column changed made each update write a new entry into both indexes (the events
-- statement's CPU 1.51-1.54 -> 1.26-1.33 s, its buffer hits on popularity 536,457 -> 278,336, WAL 67 -> 43 MB, on
-- copies of the bench's database). Only the trending refresh read the index, for each store's top; it now takes a
-- store's top from its packed shelf (feedcore.db.scores), and sorts the store's rows when the shelf is not current,
-- as the code from before this migration now does for every store.
-- The DROP waits for every transaction using item_popularity (a recompute chunk holds it for seconds), and the
-- feed's reads of a store without a current pack and the availability route's pack would queue behind it: past
-- 5 s the migration fails (the deploy rolls back and can run again) rather than hold them up longer.
SET LOCAL lock_timeout = '5s';
DROP INDEX item_popularity_trending_idx;
