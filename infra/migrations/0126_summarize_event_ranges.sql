-- The event log's block ranges that autosummarize (migration 0122) left unsummarized are summarized by the daily
-- retention run: those from before 0122, those whose request did not fit autovacuum's queue (256 requests: a burst
-- of ingestion, a backfill), and a closed month's last range (no insert after it asks for it). Each is read by every
-- recompute chunk's statements until summarized. Only the index's owner may summarize (PostgreSQL 16): this
-- function runs as the owner of the log (SECURITY DEFINER, as migration 0060's do, with only pg_catalog on its
-- search path and every name qualified) and does nothing else: summarize the unsummarized ranges of one partition's
-- BRIN indexes. It locks the partition in SHARE UPDATE EXCLUSIVE mode, which blocks neither ingestion nor reads.
CREATE FUNCTION summarize_event_ranges(p_partition regclass) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_index regclass;
    v_ranges bigint := 0;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_inherits
                   WHERE inhrelid = p_partition AND inhparent = 'public.events'::pg_catalog.regclass) THEN
        RAISE EXCEPTION '% is not a partition of the event log', p_partition USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOR v_index IN
        SELECT i.indexrelid::pg_catalog.regclass
        FROM pg_catalog.pg_index i
        JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
        JOIN pg_catalog.pg_am a ON a.oid = c.relam
        WHERE i.indrelid = p_partition AND a.amname = 'brin'
    LOOP
        v_ranges := v_ranges + pg_catalog.brin_summarize_new_values(v_index);
    END LOOP;
    RETURN v_ranges;
END
$$;

REVOKE EXECUTE ON FUNCTION summarize_event_ranges(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION summarize_event_ranges(regclass) TO feed_recompute_scores;
