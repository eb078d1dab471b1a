-- An index nothing reads any more: retention deletes old feed records by block ranges of the table (TID range
-- scans, migration 0083), attribution and the report join `feeds` by feed_id (its primary key), erasure finds a
-- user's by user_id (0081), and later pages read `feed_snapshots`. Every recorded feed wrote to it (3 of the
-- insert's 8 buffer hits on the bench's database), and once retention's freed pages are reused for new feeds,
-- each of those widens a summarized range: a WAL record on the feed's recording.
-- The DROP waits for every transaction using feeds, and the feeds' recordings would queue behind it: past 5 s the
-- migration fails (the deploy rolls back and can run again) rather than hold them up longer.
SET LOCAL lock_timeout = '5s';
DROP INDEX feeds_created_brin;
