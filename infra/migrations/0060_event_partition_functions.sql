-- The event log's monthly partitions are created by ingestion (a month it finds none for) and by the recompute
-- (this and next month, ahead of time), and dropped by retention (the recompute's daily schedule). That is DDL
-- on the log, which only its owner may run; each function logs in as a role of its own (0061) that owns
-- nothing of the log. These two functions run as the owner (SECURITY DEFINER, the migrating user) and do
-- nothing else: create one month's partition, or drop one partition of the log. Only the roles 0061 names
-- may call them. Their search_path holds only pg_catalog and every name is qualified, so that no function or
-- table a caller can create (in public, say) stands in for a built-in one and runs as the owner: a
-- public.to_char(date, text) would have matched date arguments better than pg_catalog's own (CVE-2018-1058).

CREATE FUNCTION create_event_partition(p_month date) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_month timestamp := pg_catalog.date_trunc('month', p_month::timestamp);
BEGIN
    -- The bounds as UTC instants, written without the caller's TimeZone or DateStyle.
    EXECUTE pg_catalog.format(
        'CREATE TABLE IF NOT EXISTS public.%I PARTITION OF public.events FOR VALUES FROM (%L) TO (%L)',
        'events_' || pg_catalog.to_char(v_month, 'YYYY_MM'),
        pg_catalog.to_char(v_month, 'YYYY-MM-DD') || ' 00:00:00+00',
        pg_catalog.to_char(v_month + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00');
END
$$;

CREATE FUNCTION drop_event_partition(p_partition regclass) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_inherits
                   WHERE inhrelid = p_partition AND inhparent = 'public.events'::pg_catalog.regclass) THEN
        RAISE EXCEPTION '% is not a partition of the event log', p_partition USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE pg_catalog.format('DROP TABLE %s', p_partition);
END
$$;

REVOKE EXECUTE ON FUNCTION create_event_partition(date), drop_event_partition(regclass) FROM PUBLIC;
