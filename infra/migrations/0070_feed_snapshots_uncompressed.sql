-- A feed snapshot (about 12 kB of JSON with the packaged ranking config) is written with every first page and
-- read back whole by its later pages until it expires (FEED_SNAPSHOT_TTL_S). Kept out of line without
-- compression (EXTERNAL): pglz took about a third of the recording statement's time (0.45–0.63 ms against
-- 0.33–0.43 ms uncompressed), to keep a snapshot in ~2.9 kB instead of ~13 kB of a table of short-lived
-- UNLOGGED rows. Applies to rows written from now on.
ALTER TABLE feed_snapshots ALTER COLUMN sections SET STORAGE EXTERNAL;
