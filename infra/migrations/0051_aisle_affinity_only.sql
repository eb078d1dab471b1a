-- user_category_affinity keeps the user's affinity to aisles only. Its department rows (one per user and
-- department, ~0.9M of 3.1M rows at 2M events) were written by every run and every rebuild and read by nothing:
-- the feed reads the aisle rows (feed_user_rows). Each event a run scores upserted two rows of the table, one
-- of them a department's, at a random leaf of its covering primary key (migration 0041).
-- The level check stays as it was: the code running while a deploy migrates (or after a rollback) still writes
-- department rows, which a narrower check would refuse (failing its runs); the few it writes are read by
-- nothing and leave at the next full rebuild.
DELETE FROM user_category_affinity WHERE level <> 'aisle';
