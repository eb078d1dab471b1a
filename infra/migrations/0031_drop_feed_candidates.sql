-- The feed reads the user's own rows (feed_user_rows) and caches store-level facts in the container; the
-- earlier per-request read of everything is no longer called.
DROP FUNCTION feed_candidates(
    text, text, text[], text[], integer, integer, integer, timestamptz, timestamptz, integer, integer
);
