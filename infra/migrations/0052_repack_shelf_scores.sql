-- The recompute repacks a store's scores only (migration 0040's popularity, trending and the ranked lists):
-- a run changes no availability or shelf price, so while the store's pack is current (not stale, over the
-- catalog's version) its available and prices bytes stay as they are and the store's availability rows are not
-- read (they were ~40 % of packing a store). A pack that is missing, stale or over another catalog is packed
-- whole, as before. The availability route still packs its store whole, in the writer's transaction; a run
-- that repacks after it keeps the availability it packed.

-- A store's scores as migration 0040 packs them ('*': over all stores), over the catalog the statement sees.
CREATE FUNCTION store_shelf_scores(p_store_id text) RETURNS TABLE (
    popularity bytea, trending bytea, trending_items bytea, popular_items bytea, aisle_items bytea,
    aisle_sizes bytea
)
LANGUAGE sql STABLE AS $$
    WITH catalog AS (
        SELECT item_id, aisle, active, (row_number() OVER (ORDER BY item_id) - 1)::integer AS position FROM items
    ),
    facts AS MATERIALIZED (
        SELECT c.position, c.aisle, c.active, p.raw_score, p.trending_score
        FROM catalog c
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
        SELECT aisle, count(*)::integer AS size,
               string_agg(int4send(position), ''::bytea ORDER BY raw_score DESC, position) AS items
        FROM facts
        WHERE active AND raw_score IS NOT NULL
        GROUP BY aisle
    ),
    aisles AS (
        SELECT coalesce(string_agg(items, ''::bytea ORDER BY aisle), ''::bytea) AS aisle_items,
               coalesce(string_agg(int4send(size), ''::bytea ORDER BY aisle), ''::bytea) AS aisle_sizes
        FROM per_aisle
    )
    SELECT d.popularity, d.trending, d.trending_items, d.popular_items, a.aisle_items, a.aisle_sizes
    FROM dense d CROSS JOIN aisles a
$$;

-- Repack the scores of the store's current pack; false (nothing written) when it has none that is current.
CREATE FUNCTION repack_store_shelf_scores(p_store_id text) RETURNS boolean
LANGUAGE sql AS $$
    WITH repacked AS (
        UPDATE store_shelves s
        SET packed_at = clock_timestamp(), popularity = sc.popularity, trending = sc.trending,
            trending_items = sc.trending_items, popular_items = sc.popular_items, aisle_items = sc.aisle_items,
            aisle_sizes = sc.aisle_sizes
        FROM store_shelf_scores(p_store_id) sc
        WHERE s.store_id = p_store_id AND NOT s.stale AND s.catalog_version = (SELECT version FROM catalog_state)
        RETURNING 1
    )
    SELECT EXISTS (SELECT FROM repacked)
$$;

-- What the recompute runs for the stores of `p_store_ids` ('*' included when named): each store's scores
-- repacked, or its shelf packed whole when its pack is not current; returns how many.
CREATE FUNCTION repack_store_shelves_scores(p_store_ids text[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_store record;
    v_packed integer := 0;
BEGIN
    FOR v_store IN
        SELECT store_id, true AS known FROM stores WHERE store_id = ANY (p_store_ids)
        UNION ALL
        SELECT '*', false WHERE '*' = ANY (p_store_ids)
    LOOP
        IF NOT repack_store_shelf_scores(v_store.store_id) THEN
            PERFORM pack_store_shelf(v_store.store_id, v_store.known);
        END IF;
        v_packed := v_packed + 1;
    END LOOP;
    RETURN v_packed;
END
$$;
