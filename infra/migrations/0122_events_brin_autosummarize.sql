-- The event log's received_at BRIN indexes summarize each block range as it fills (autosummarize), so that a
-- recompute's scan stays on the blocks of recent events between vacuums.
--
-- A block range the index has not summarized matches every scan: the chunk's bound, its events statement and its
-- pairs statement each read all of it (migration 0003's index; the chunk reads through it with sequential scans
-- off). Without autosummarize only VACUUM summarizes, and autovacuum vacuums a partition for inserts after 20 % of
-- its rows are new: a month of 30M events went unvacuumed for its last ~6M, which every run then read three times.
-- With it, a range that fills asks autovacuum to summarize it at its next visit of the database (within a minute
-- by default; its queue holds 256 requests, and a burst past that leaves ranges to the next VACUUM), and a run reads
-- the ranges filled since then and the one being filled. In the recompute bench, whose
-- history (stored in arrival order) had no range summarized, the chunk's bound took 0.2-0.4 s of an incremental run
-- of 1.9-2.2 s and the two statements ~0.1 s each more; summarized, 0.02-0.03 s.
--
-- Ranges left unsummarized before this migration stay so until VACUUM (autosummarize asks only for the range
-- before the one an insert starts): after deploying it on an existing stack, VACUUM the current month's partition
-- once (README, "Operating"). The recompute bench summarizes its history in its setup.
--
-- A partitioned index takes no storage parameters, so each month's index gets it: the months still filling (the
-- current one and those ahead; a closed month fills no new range) here, a new month's as create_event_partition
-- makes it (below). Setting it locks the index exclusively until the migration commits: ingestion's inserts into
-- that month wait, and the ALTER itself waits for a transaction that planned a read through the index (a recompute
-- chunk): past 2 s the migration fails (the deploy rolls back and can run again) rather than hold ingestion up
-- longer. In name order, which is the months' order, as the planner opens them.
SET LOCAL lock_timeout = '2s';

DO $$
DECLARE
    v_index regclass;
BEGIN
    FOR v_index IN
        SELECT i.indexrelid::regclass
        FROM pg_inherits p
        JOIN pg_class t ON t.oid = p.inhrelid
        JOIN pg_index i ON i.indrelid = p.inhrelid
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_am a ON a.oid = c.relam
        WHERE p.inhparent = 'public.events'::regclass AND a.amname = 'brin'
          AND t.relname >= 'events_' || to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM')
        ORDER BY t.relname
    LOOP
        EXECUTE format('ALTER INDEX %s SET (autosummarize = on)', v_index);
    END LOOP;
END
$$;

-- Migration 0060's function, which also sets it on the BRIN index of the partition it creates (only then: the
-- exclusive lock on an existing month's index would stall its inserts). Its callers hold the partition lock
-- (feedcore.db.events.PARTITION_LOCK_KEY), so no other creator comes between the check and the CREATE.
CREATE OR REPLACE FUNCTION create_event_partition(p_month date) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_month timestamp := pg_catalog.date_trunc('month', p_month::timestamp);
    v_partition text := 'events_' || pg_catalog.to_char(v_month, 'YYYY_MM');
    v_index regclass;
BEGIN
    IF pg_catalog.to_regclass(pg_catalog.format('public.%I', v_partition)) IS NOT NULL THEN
        RETURN;
    END IF;
    -- The bounds as UTC instants, written without the caller's TimeZone or DateStyle.
    EXECUTE pg_catalog.format(
        'CREATE TABLE IF NOT EXISTS public.%I PARTITION OF public.events FOR VALUES FROM (%L) TO (%L)',
        v_partition,
        pg_catalog.to_char(v_month, 'YYYY-MM-DD') || ' 00:00:00+00',
        pg_catalog.to_char(v_month + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00');
    FOR v_index IN
        SELECT i.indexrelid::regclass
        FROM pg_catalog.pg_index i
        JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
        JOIN pg_catalog.pg_am a ON a.oid = c.relam
        WHERE i.indrelid = pg_catalog.format('public.%I', v_partition)::regclass AND a.amname = 'brin'
    LOOP
        EXECUTE pg_catalog.format('ALTER INDEX %s SET (autosummarize = on)', v_index);
    END LOOP;
END
$$;
