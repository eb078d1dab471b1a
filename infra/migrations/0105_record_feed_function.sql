-- The feed's recording (feedcore.db.feed.record_feed) as a plpgsql function: its two INSERTs are planned once per
-- database session and their plans kept, where the statement it replaces (a data-modifying CTE sent with parameters,
-- never prepared: prepare_threshold=None for RDS Proxy) was parsed, analyzed and planned on every first page. The
-- same rows and the same commit: synchronous_commit off for the caller's transaction only (set_config(…, true) lasts
-- until the statement's own transaction ends, after the function returns; a SET clause on the function would end
-- with the call, before the commit). No session state: it works through RDS Proxy like feed_user_item_rows.
-- Measured on the feed bench's database (in-process, autocommit, 8 interleaved rounds of 300 recordings of first-page
-- snapshots, median round trip a call): 290 µs for the statement, 239 µs for the function.
-- Code from before this migration keeps sending its statement, which writes the same rows.
CREATE FUNCTION record_feed(
    p_feed_id text, p_user_id text, p_store_id text, p_experiment text, p_variant text, p_fallback text,
    p_created_at timestamptz, p_expires_at timestamptz, p_sections json
) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    -- a crash can lose the feeds recorded in the last moments; their snapshots (UNLOGGED) are lost with it anyway
    PERFORM set_config('synchronous_commit', 'off', true);
    INSERT INTO feeds (feed_id, user_id, store_id, experiment, variant, fallback, created_at)
    VALUES (p_feed_id, p_user_id, p_store_id, p_experiment, p_variant, p_fallback, p_created_at);
    INSERT INTO feed_snapshots (feed_id, user_id, expires_at, sections)
    VALUES (p_feed_id, p_user_id, p_expires_at, p_sections);
END
$$;
