-- A shelf's ranked lists (trending_items, popular_items, and each aisle's list in aisle_items with its size in
-- aisle_sizes) keep their first 500 items: the most a feed reads of one. A source reads the first `pool` items of a
-- list, the largest section's size (at most 50) times candidates_per_slot (at most 10): feedcore.feed.config's
-- MAX_POOL; the recompute's trending refresh reads a store's first 200 trending items. Ranking a store's ~20,000
-- rated items in full sorted and packed each of them twice (trending, popular) once per store and run, of which the
-- feed never reads past the 500th; the first 500 are a bounded sort (21 stores' scores, SELECT only, on a kept bench
-- database: 1.16-1.59 s -> 0.69-1.13 s). The dense arrays (popularity, trending: every catalog position) are as they
-- were, and so is every list of at most 500 items. Code from before this migration reads the lists as it did: its
-- feed reads the same first `pool` items.

-- Migration 0088's store scores over the kept positions, with the ranked lists cut at 500.
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
                   AS trending
        FROM facts
    ),
    trending_top AS (
        SELECT coalesce(string_agg(int4send(position), ''::bytea ORDER BY trending_score DESC, position), ''::bytea)
                   AS items
        FROM (SELECT position, trending_score FROM facts WHERE trending_score > 0
              ORDER BY trending_score DESC, position LIMIT 500) AS ranked
    ),
    popular_top AS (
        SELECT coalesce(string_agg(int4send(position), ''::bytea ORDER BY raw_score DESC, position), ''::bytea)
                   AS items
        FROM (SELECT position, raw_score FROM facts WHERE raw_score IS NOT NULL
              ORDER BY raw_score DESC, position LIMIT 500) AS ranked
    ),
    per_aisle AS (
        SELECT aisle_rank, least(count(*), 500)::integer AS size,
               substring(string_agg(int4send(position), ''::bytea ORDER BY raw_score DESC, position) FROM 1 FOR 4 * 500)
                   AS items
        FROM facts
        WHERE active AND raw_score IS NOT NULL
        GROUP BY aisle_rank
    ),
    aisles AS (
        SELECT coalesce(string_agg(items, ''::bytea ORDER BY aisle_rank), ''::bytea) AS aisle_items,
               coalesce(string_agg(int4send(size), ''::bytea ORDER BY aisle_rank), ''::bytea) AS aisle_sizes
        FROM per_aisle
    )
    SELECT d.popularity, d.trending, t.items, p.items, a.aisle_items, a.aisle_sizes
    FROM dense d CROSS JOIN trending_top t CROSS JOIN popular_top p CROSS JOIN aisles a
$$;

-- Migration 0040's whole pack (the availability route's, and the recompute's for a pack that is not current), with
-- the ranked lists cut at 500 as above.
CREATE OR REPLACE FUNCTION pack_store_shelf(p_store_id text, p_known boolean) RETURNS void
LANGUAGE sql AS $$
    WITH catalog AS (
        SELECT item_id, aisle, active, (row_number() OVER (ORDER BY item_id) - 1)::integer AS position FROM items
    ),
    facts AS MATERIALIZED (
        SELECT c.position, c.aisle, c.active, sa.available, sa.price::float8 AS shelf_price, p.raw_score,
               p.trending_score
        FROM catalog c
        LEFT JOIN store_availability sa ON p_known AND sa.store_id = p_store_id AND sa.item_id = c.item_id
        LEFT JOIN item_popularity p ON p.store_id = p_store_id AND p.item_id = c.item_id
    ),
    dense AS (
        SELECT CASE WHEN p_known THEN
                   string_agg(CASE WHEN available THEN '\x01'::bytea ELSE '\x00'::bytea END, ''::bytea ORDER BY position)
               END AS available,
               string_agg(float8send(coalesce(shelf_price, 'NaN')), ''::bytea ORDER BY position) AS prices,
               string_agg(float8send(coalesce(raw_score, 0)), ''::bytea ORDER BY position) AS popularity,
               string_agg(float8send(coalesce(trending_score, 0)), ''::bytea ORDER BY position) AS trending
        FROM facts
    ),
    trending_top AS (
        SELECT coalesce(string_agg(int4send(position), ''::bytea ORDER BY trending_score DESC, position), ''::bytea)
                   AS items
        FROM (SELECT position, trending_score FROM facts WHERE trending_score > 0
              ORDER BY trending_score DESC, position LIMIT 500) AS ranked
    ),
    popular_top AS (
        SELECT coalesce(string_agg(int4send(position), ''::bytea ORDER BY raw_score DESC, position), ''::bytea)
                   AS items
        FROM (SELECT position, raw_score FROM facts WHERE raw_score IS NOT NULL
              ORDER BY raw_score DESC, position LIMIT 500) AS ranked
    ),
    per_aisle AS (
        SELECT aisle, least(count(*), 500)::integer AS size,
               substring(string_agg(int4send(position), ''::bytea ORDER BY raw_score DESC, position) FROM 1 FOR 4 * 500)
                   AS items
        FROM facts
        WHERE active AND raw_score IS NOT NULL
        GROUP BY aisle
    ),
    aisles AS (
        SELECT coalesce(string_agg(items, ''::bytea ORDER BY aisle), ''::bytea) AS aisle_items,
               coalesce(string_agg(int4send(size), ''::bytea ORDER BY aisle), ''::bytea) AS aisle_sizes
        FROM per_aisle
    )
    INSERT INTO store_shelves AS s (
        store_id, store_known, catalog_version, packed_at, stale, available, prices, popularity, trending,
        trending_items, popular_items, aisle_items, aisle_sizes
    )
    SELECT p_store_id, p_known, (SELECT version FROM catalog_state), clock_timestamp(), false, d.available,
           coalesce(d.prices, ''::bytea), coalesce(d.popularity, ''::bytea), coalesce(d.trending, ''::bytea),
           t.items, p.items, a.aisle_items, a.aisle_sizes
    FROM dense d CROSS JOIN trending_top t CROSS JOIN popular_top p CROSS JOIN aisles a
    ON CONFLICT (store_id) DO UPDATE SET
        store_known = excluded.store_known, catalog_version = excluded.catalog_version,
        packed_at = excluded.packed_at, stale = false, available = excluded.available, prices = excluded.prices,
        popularity = excluded.popularity, trending = excluded.trending,
        trending_items = excluded.trending_items, popular_items = excluded.popular_items,
        aisle_items = excluded.aisle_items, aisle_sizes = excluded.aisle_sizes;
$$;
