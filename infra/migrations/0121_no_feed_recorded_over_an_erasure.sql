-- A feed of a user that is being erased is not recorded after the erasure.
--
-- A first page is recorded without waiting (feedcore.db.feed.record_feed): a page whose user an erasure deleted
-- meanwhile, read before the erasure committed, had its feed record and snapshot inserted after the erasure's
-- deletes, and they stayed (the record for the feeds' retention, 400 days by default; tested:
-- tests/integration/test_catalog_api.py). Now an erasure holds a lock of its user's (advisory, keyed by the user id's
-- hash) while it deletes, until it commits, and the recording tries to take it shared: when an erasure of the user is
-- under way (it holds the lock or waits for it), the recording records nothing, at once — it must not wait: the next
-- request on its container, any user's, reads its outcome first (connection.confirm_sent) within its own deadline;
-- otherwise the erasure waits for it (one statement) and then deletes what it wrote. Once it has the lock, it
-- records nothing for a user erased after a minute before the feed was made: an erasure's timestamp is taken at its
-- last statement (clock_timestamp(), feedcore.db.models.remember_erasure), a round trip before its commit, so any
-- page read before an erasure committed is left out (a page of that user a minute later is recorded again). A feed
-- not recorded has no next pages (410). Code from before this migration calls the same function; its erasures take
-- no such lock, as before.

-- Whether the user was erased after `p_since`: the one fact of user_erasures a recording needs (the feed's role reads
-- nothing of the table). It runs as the owner, with only pg_catalog on its search path and every name qualified, as
-- migration 0060's functions do; only the feed's role may call it. In plpgsql, whose plans a session keeps: a SQL
-- function plans its query on every call. A recording's round trip (in-process, autocommit, 4 interleaved rounds of
-- 1,000 calls each, medians; 2026-11-28 08:12-08:13 UTC): 164-168 µs before this migration, 185-198 µs with it (232
-- µs with the helper in SQL). The page does not wait for it (sent without waiting).
CREATE FUNCTION user_erased_since(p_user_id text, p_since timestamptz) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN EXISTS (SELECT FROM public.user_erasures WHERE user_id = p_user_id AND erased_at > p_since);
END
$$;
REVOKE EXECUTE ON FUNCTION user_erased_since(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION user_erased_since(text, timestamptz) TO feed_assemble_feed;
-- The erasure sets its time itself (clock_timestamp(), not the column's default, the transaction's start); a grant
-- that stays with the table, which nothing rebuilds.
GRANT INSERT (erased_at) ON user_erasures TO feed_ingest_events;

CREATE OR REPLACE FUNCTION record_feed(
    p_feed_id text, p_user_id text, p_store_id text, p_experiment text, p_variant text, p_fallback text,
    p_created_at timestamptz, p_expires_at timestamptz, p_sections json
) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    -- a crash can lose the feeds recorded in the last moments; their snapshots (UNLOGGED) are lost with it anyway
    PERFORM set_config('synchronous_commit', 'off', true);
    -- feedcore.db.feed.FEED_RECORDING_LOCK_CLASS; not taken, the user's erasure is under way. A statement of its
    -- own, so that the next one (a new snapshot) sees an erasure committed before the lock was taken.
    IF NOT pg_try_advisory_xact_lock_shared(724620122, hashtext(p_user_id)) THEN
        RETURN;
    END IF;
    IF user_erased_since(p_user_id, p_created_at - interval '1 minute') THEN
        RETURN;
    END IF;
    INSERT INTO feeds (feed_id, user_id, store_id, experiment, variant, fallback, created_at)
    VALUES (p_feed_id, p_user_id, p_store_id, p_experiment, p_variant, p_fallback, p_created_at);
    INSERT INTO feed_snapshots (feed_id, user_id, expires_at, sections)
    VALUES (p_feed_id, p_user_id, p_expires_at, p_sections);
END
$$;
