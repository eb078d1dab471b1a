-- The catalog's shelf positions, kept once for every store's repack instead of computed by each (migration 0052's
-- store_shelf_scores numbered the catalog and grouped its items by aisle text once per store: ~30 % of a repack).
-- Per catalog item, as migration 0040 packs it:
--   position    its place in the catalog ordered by item_id (0-based)
--   aisle_rank  its aisle's place among the catalog's aisles in aisle order (1-based, dense): the order of a
--               shelf's aisle_items and aisle_sizes
--   active      whether it is active (only active items are ranked per aisle)
-- over the catalog version they were computed over. Every row carries it: a refresh writes them all with one
-- version in one statement and deletes the rest, so one row tells which catalog they are.
-- The recompute refreshes them (when the catalog moved) in the transaction that packs the reorder counts, before it
-- repacks the shelves; a repack uses them only when they are over the shelf's catalog, and otherwise packs the shelf
-- whole (migration 0040's pack_store_shelf, which numbers the catalog itself), as code from before this migration
-- that never refreshes them does. A table, not a temporary one: that would pin RDS Proxy's session.
CREATE TABLE shelf_positions (
    item_id          text PRIMARY KEY,
    position         integer NOT NULL,
    aisle_rank       integer NOT NULL,
    active           boolean NOT NULL,
    catalog_version  bigint NOT NULL
);
-- The recompute refreshes and reads them (the functions run as their caller); no rebuild swaps this table.
GRANT SELECT, INSERT, UPDATE, DELETE ON shelf_positions TO feed_recompute_scores;

-- Bring the positions to the current catalog, unless they are over it already. The rows are upserted in item_id order
-- (two runs refreshing at once take their row locks in one order, and the second writes the same values), then the
-- rows of items no longer in the catalog are deleted.
CREATE FUNCTION refresh_shelf_positions() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_version bigint;
BEGIN
    IF EXISTS (SELECT FROM shelf_positions WHERE catalog_version = (SELECT version FROM catalog_state)) THEN
        RETURN;
    END IF;
    WITH written AS (
        INSERT INTO shelf_positions (item_id, position, aisle_rank, active, catalog_version)
        SELECT i.item_id, (row_number() OVER (ORDER BY i.item_id) - 1)::integer,
               dense_rank() OVER (ORDER BY i.aisle)::integer, i.active, c.version
        FROM items i CROSS JOIN catalog_state c
        ORDER BY i.item_id
        ON CONFLICT (item_id) DO UPDATE SET
            position = excluded.position, aisle_rank = excluded.aisle_rank, active = excluded.active,
            catalog_version = excluded.catalog_version
        RETURNING catalog_version
    )
    SELECT max(catalog_version) INTO v_version FROM written;
    DELETE FROM shelf_positions WHERE catalog_version IS DISTINCT FROM v_version;
END
$$;

-- Migration 0052's store scores, byte for byte, from the kept positions: the store's popularity rows joined to them
-- by item_id, its per-aisle lists grouped by the aisle's rank. Over the positions as they are: the caller checks
-- that they are over the shelf's catalog.
CREATE OR REPLACE FUNCTION store_shelf_scores(p_store_id text) RETURNS TABLE (
    popularity bytea, trending bytea, trending_items bytea, popular_items bytea, aisle_items bytea,
    aisle_sizes bytea
)
LANGUAGE sql STABLE AS $$
    WITH facts AS MATERIALIZED (
        SELECT c.position, c.aisle_rank, c.active, p.raw_score, p.trending_score
        FROM shelf_positions c
        LEFT JOIN item_popularity p ON p.store_id = p_store_id AND p.item_id = c.item_id
    ),
    dense AS (
        SELECT coalesce(string_agg(float8send(coalesce(raw_score, 0)), ''::bytea ORDER BY position), ''::bytea)
                   AS popularity,
               coalesce(string_agg(float8send(coalesce(trending_score, 0)), ''::bytea ORDER BY position), ''::bytea)
                   AS trending,
               coalesce(string_agg(int4send(position), ''::bytea ORDER BY trending_score DESC, position)
                        FILTER (WHERE trending_score > 0), ''::bytea) AS trending_items,
               coalesce(string_agg(int4send(position), ''::bytea ORDER BY raw_score DESC, position)
                        FILTER (WHERE raw_score IS NOT NULL), ''::bytea) AS popular_items
        FROM facts
    ),
    per_aisle AS (
        SELECT aisle_rank, count(*)::integer AS size,
               string_agg(int4send(position), ''::bytea ORDER BY raw_score DESC, position) AS items
        FROM facts
        WHERE active AND raw_score IS NOT NULL
        GROUP BY aisle_rank
    ),
    aisles AS (
        SELECT coalesce(string_agg(items, ''::bytea ORDER BY aisle_rank), ''::bytea) AS aisle_items,
               coalesce(string_agg(int4send(size), ''::bytea ORDER BY aisle_rank), ''::bytea) AS aisle_sizes
        FROM per_aisle
    )
    SELECT d.popularity, d.trending, d.trending_items, d.popular_items, a.aisle_items, a.aisle_sizes
    FROM dense d CROSS JOIN aisles a
$$;

-- Migration 0052's repack, only over positions of the shelf's catalog: false (nothing written, the caller packs the
-- shelf whole) also when the positions are over another catalog or there are none.
CREATE OR REPLACE FUNCTION repack_store_shelf_scores(p_store_id text) RETURNS boolean
LANGUAGE sql AS $$
    WITH repacked AS (
        UPDATE store_shelves s
        SET packed_at = clock_timestamp(), popularity = sc.popularity, trending = sc.trending,
            trending_items = sc.trending_items, popular_items = sc.popular_items, aisle_items = sc.aisle_items,
            aisle_sizes = sc.aisle_sizes
        FROM store_shelf_scores(p_store_id) sc
        WHERE s.store_id = p_store_id AND NOT s.stale AND s.catalog_version = (SELECT version FROM catalog_state)
          AND s.catalog_version = (SELECT catalog_version FROM shelf_positions LIMIT 1)
        RETURNING 1
    )
    SELECT EXISTS (SELECT FROM repacked)
$$;

SELECT refresh_shelf_positions();
