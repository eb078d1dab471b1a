-- Catalog tags are case-insensitive: the catalog route stores them in lower case and the feed lowers its
-- exclude_tags (before, `alcohol` did not exclude an item tagged `Alcohol`). Lower the tags stored before. Tags
-- are ASCII letters, digits, `_` and `-` (the route's pattern); lower() under COLLATE "C" lowers exactly those, as
-- Python's str.lower does (under a Turkish collation lower('I') would be a dotless i).
-- The catalog route writes items one statement each in one transaction, and its first statement locks the catalog's
-- version row (trigger of 0040) until it commits: taking the table's write lock first keeps a concurrent upload from
-- deadlocking with this update (readers are not blocked), and past 5 s of waiting for one the migration fails (the
-- deploy rolls back and can run again) rather than hold row locks.
-- Only when some tag has upper case: the update moves the catalog's version (the trigger fires for an update of no
-- rows too), and containers then read the catalog and stock every store from its rows until the next repack.
SET LOCAL lock_timeout = '5s';
LOCK TABLE items IN SHARE ROW EXCLUSIVE MODE;
DO $$
BEGIN
    IF EXISTS (SELECT FROM items WHERE tags::text <> lower(tags::text COLLATE "C")) THEN
        UPDATE items
        SET tags = ARRAY(
            SELECT lower(tag COLLATE "C") FROM unnest(tags) WITH ORDINALITY AS t (tag, position) ORDER BY position
        )
        WHERE tags::text <> lower(tags::text COLLATE "C");
    END IF;
END
$$;
