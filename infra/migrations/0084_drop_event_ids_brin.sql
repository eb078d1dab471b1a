-- An index nothing needs any more: retention deletes expired event ids a range of blocks at a time (0083), and
-- the only other readers of event_ids go by its primary key. The planner still took the BRIN index for
-- retention's delete on a small, time-ordered table (a bitmap over every expired block, for each range), while
-- every COPY of a batch paid to keep it up to date (0.14–0.26 ms of server CPU per 500 ids).
-- The DROP waits for every transaction using event_ids, and ingestion's writes would queue behind it: past 5 s the
-- migration fails (the deploy rolls back and can run again) rather than hold them up longer.
SET LOCAL lock_timeout = '5s';
DROP INDEX event_ids_occurred_brin;
