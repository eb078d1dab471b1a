-- Item reorder counts (item_reorders, migration 0071) packed into the store shelves, so that the feed reads the
-- user's own rows without probing item_reorders (about two buffer hits per item the user bought: 71-171 -> 29-32
-- hits a call for five users of the feed bench's database).
--
-- The counts are the same for every store: each shelf carries them, per catalog position (as migration 0040's
-- facts), in two more columns, int8 in network byte order (int8send; 0 for an item nobody bought):
--   item_orders   the orders holding the item, over all users
--   item_buyers   the users who bought it
-- The recompute computes them once per call of repack_store_shelves_scores (~25 ms for 20,000 items) and writes
-- them with each store's scores; a store packed whole otherwise (the availability route, a new catalog) takes
-- those of the latest pack over the current catalog (they lag one repack at most), or none when there is no
-- such pack. The feed reads them with the shelf (lagging one repack plus FEED_STORE_SHELF_TTL_S); a shelf
-- without them (NULL: packed before this migration or over a changed catalog, or stocked from the store's rows)
-- makes the feed read the counts with the user's rows through feed_user_rows (0072), which stays as it is: code
-- from before this migration calls it, and that of this one when its shelf has no counts.
ALTER TABLE store_shelves ADD COLUMN item_orders bytea, ADD COLUMN item_buyers bytea;
ALTER TABLE store_shelves ALTER COLUMN item_orders SET STORAGE EXTERNAL, ALTER COLUMN item_buyers SET STORAGE EXTERNAL;

-- This migration's number comes before 0071's (which makes item_reorders) and 0072's: a new database applies it
-- first, a deployed one after them. So what reads item_reorders is PL/pgSQL (its statements are checked when they
-- run, not when the function is made), and the shelves get their counts here only where item_reorders exists.

-- Every catalog item's counts, in catalog position order (item_id), packed.
CREATE FUNCTION packed_item_reorders(OUT item_orders bytea, OUT item_buyers bytea)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT coalesce(string_agg(int8send(coalesce(r.order_count, 0)), ''::bytea ORDER BY i.item_id), ''::bytea),
           coalesce(string_agg(int8send(coalesce(r.buyer_count, 0)), ''::bytea ORDER BY i.item_id), ''::bytea)
    INTO item_orders, item_buyers
    FROM items i
    LEFT JOIN item_reorders r ON r.item_id = i.item_id;
END
$$;

-- Migration 0040's pack of one store, with the counts given, or (NULL) those of the latest pack over the current
-- catalog that has them: the availability route packs its store without reading item_reorders (its role may not).
DROP FUNCTION pack_store_shelf(text, boolean);
CREATE FUNCTION pack_store_shelf(
    p_store_id text, p_known boolean, p_item_orders bytea DEFAULT NULL, p_item_buyers bytea DEFAULT NULL
) RETURNS void
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
               string_agg(float8send(coalesce(trending_score, 0)), ''::bytea ORDER BY position) AS trending,
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
    ),
    reorders AS (
        SELECT p_item_orders AS item_orders, p_item_buyers AS item_buyers WHERE p_item_orders IS NOT NULL
        UNION ALL
        (SELECT s.item_orders, s.item_buyers FROM store_shelves s
         WHERE p_item_orders IS NULL AND s.item_orders IS NOT NULL
           AND s.catalog_version = (SELECT version FROM catalog_state)
         ORDER BY s.packed_at DESC
         LIMIT 1)
    )
    INSERT INTO store_shelves AS s (
        store_id, store_known, catalog_version, packed_at, stale, available, prices, popularity, trending,
        trending_items, popular_items, aisle_items, aisle_sizes, item_orders, item_buyers
    )
    SELECT p_store_id, p_known, (SELECT version FROM catalog_state), clock_timestamp(), false, d.available,
           coalesce(d.prices, ''::bytea), coalesce(d.popularity, ''::bytea), coalesce(d.trending, ''::bytea),
           d.trending_items, d.popular_items, a.aisle_items, a.aisle_sizes, r.item_orders, r.item_buyers
    FROM dense d CROSS JOIN aisles a LEFT JOIN reorders r ON true
    ON CONFLICT (store_id) DO UPDATE SET
        store_known = excluded.store_known, catalog_version = excluded.catalog_version,
        packed_at = excluded.packed_at, stale = false, available = excluded.available, prices = excluded.prices,
        popularity = excluded.popularity, trending = excluded.trending,
        trending_items = excluded.trending_items, popular_items = excluded.popular_items,
        aisle_items = excluded.aisle_items, aisle_sizes = excluded.aisle_sizes,
        item_orders = excluded.item_orders, item_buyers = excluded.item_buyers;
$$;

-- Migration 0052's repack of a store's scores, with the counts.
DROP FUNCTION repack_store_shelf_scores(text);
CREATE FUNCTION repack_store_shelf_scores(p_store_id text, p_item_orders bytea, p_item_buyers bytea) RETURNS boolean
LANGUAGE sql AS $$
    WITH repacked AS (
        UPDATE store_shelves s
        SET packed_at = clock_timestamp(), popularity = sc.popularity, trending = sc.trending,
            trending_items = sc.trending_items, popular_items = sc.popular_items, aisle_items = sc.aisle_items,
            aisle_sizes = sc.aisle_sizes, item_orders = p_item_orders, item_buyers = p_item_buyers
        FROM store_shelf_scores(p_store_id) sc
        WHERE s.store_id = p_store_id AND NOT s.stale AND s.catalog_version = (SELECT version FROM catalog_state)
        RETURNING 1
    )
    SELECT EXISTS (SELECT FROM repacked)
$$;

-- Migration 0052's entry point (the same signature: code from before this migration calls it too), the counts
-- computed once for all the stores it repacks.
CREATE OR REPLACE FUNCTION repack_store_shelves_scores(p_store_ids text[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_store record;
    v_reorders record;
    v_packed integer := 0;
BEGIN
    SELECT * INTO v_reorders FROM packed_item_reorders();
    FOR v_store IN
        SELECT store_id, true AS known FROM stores WHERE store_id = ANY (p_store_ids)
        UNION ALL
        SELECT '*', false WHERE '*' = ANY (p_store_ids)
    LOOP
        IF NOT repack_store_shelf_scores(v_store.store_id, v_reorders.item_orders, v_reorders.item_buyers) THEN
            PERFORM pack_store_shelf(
                v_store.store_id, v_store.known, v_reorders.item_orders, v_reorders.item_buyers
            );
        END IF;
        v_packed := v_packed + 1;
    END LOOP;
    RETURN v_packed;
END
$$;

-- The shelves packed over the current catalog get the counts now (the others are not read as packs).
DO $$
BEGIN
    IF to_regclass('item_reorders') IS NOT NULL THEN
        UPDATE store_shelves s
        SET item_orders = r.item_orders, item_buyers = r.item_buyers
        FROM packed_item_reorders() r
        WHERE s.catalog_version = (SELECT version FROM catalog_state);
    END IF;
END
$$;

-- feed_user_rows (migration 0072) without the item's counts over all users: the feed reads them from the shelf.
CREATE FUNCTION feed_user_own_rows(
    p_user_id text, p_models text[], p_pairs boolean, p_pool integer, p_buy_again_pool integer,
    p_recent_since timestamptz, p_recent_limit integer, p_seed_limit integer
) RETURNS TABLE (
    kind text, item_id text, purchase_count integer, first_purchased_at timestamptz,
    last_purchased_at timestamptz, purchase_raw double precision, affinity_raw double precision,
    hidden boolean, last_hidden_at timestamptz, score double precision,
    label text,
    recent_purchase_at timestamptz, recent_hide_at timestamptz, recent_positive_at timestamptz, in_cart boolean,
    ordered_at timestamptz[]
)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH recent AS (
        SELECT e.event_type, e.occurred_at, item.item_id
        FROM (
            SELECT event_type, occurred_at, item_id, line_item_ids
            FROM events
            WHERE user_id = p_user_id AND occurred_at >= p_recent_since
              AND event_type IN ('add_to_cart', 'remove_from_cart', 'purchase', 'hide')
            ORDER BY occurred_at DESC
            LIMIT p_recent_limit
        ) e
        CROSS JOIN LATERAL unnest(coalesce(e.line_item_ids, ARRAY[e.item_id])) AS item (item_id)
    ),
    recent_by_item AS MATERIALIZED (
        SELECT item_id,
               max(occurred_at) FILTER (WHERE event_type = 'purchase') AS purchased_at,
               max(occurred_at) FILTER (WHERE event_type = 'hide') AS hidden_at,
               max(occurred_at) FILTER (WHERE event_type IN ('purchase', 'add_to_cart')) AS positive_at,
               (array_agg(event_type ORDER BY occurred_at DESC))[1] = 'add_to_cart' AS in_cart,
               max(occurred_at) AS last_at
        FROM recent
        GROUP BY item_id
    ),
    user_items AS MATERIALIZED (
        SELECT item_id, purchase_count, first_purchased_at, last_purchased_at, purchase_raw, affinity_raw, hidden,
               last_hidden_at
        FROM user_item_affinity
        WHERE user_id = p_user_id
    ),
    purchased AS (
        SELECT item_id, last_purchased_at
        FROM user_items
        WHERE purchase_count > 0 AND NOT hidden
        ORDER BY purchase_raw DESC
        LIMIT p_buy_again_pool
    ),
    seeds AS (
        SELECT item_id FROM (
            (SELECT item_id, 0 AS tier, last_at AS at FROM recent_by_item WHERE in_cart OR purchased_at IS NOT NULL
             ORDER BY last_at DESC LIMIT p_seed_limit)
            UNION ALL
            (SELECT item_id, 1, last_purchased_at FROM purchased ORDER BY last_purchased_at DESC LIMIT p_seed_limit)
        ) s
        WHERE p_pairs
        GROUP BY item_id
        ORDER BY min(tier), max(at) DESC
        LIMIT p_seed_limit
    )
    SELECT 'item', u.item_id, u.purchase_count, u.first_purchased_at, u.last_purchased_at, u.purchase_raw,
           u.affinity_raw, u.hidden, u.last_hidden_at, NULL::double precision, NULL::text, NULL::timestamptz,
           NULL::timestamptz, NULL::timestamptz, NULL::boolean, NULL::timestamptz[]
    FROM user_items u
    UNION ALL
    SELECT 'aisle', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, a.raw_score, a.category, NULL, NULL, NULL, NULL,
           NULL
    FROM user_category_affinity a
    WHERE a.user_id = p_user_id AND a.level = 'aisle'
    UNION ALL
    SELECT 'recent', r.item_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, r.purchased_at, r.hidden_at,
           r.positive_at, r.in_cart, NULL
    FROM recent_by_item r
    UNION ALL
    (SELECT DISTINCT ON (p.paired_item_id) 'pair', p.paired_item_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
            p.score, p.item_id, NULL, NULL, NULL, NULL, NULL
     FROM seeds s
     CROSS JOIN LATERAL (
         SELECT item_id, paired_item_id, score FROM item_pairs
         WHERE item_id = s.item_id ORDER BY score DESC LIMIT p_pool
     ) p
     ORDER BY p.paired_item_id, p.score DESC)
    UNION ALL
    SELECT 'model', m.item_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, m.score, m.model, NULL, NULL, NULL, NULL,
           NULL
    FROM model_scores m
    WHERE m.model = ANY (p_models) AND m.user_id = p_user_id
    UNION ALL
    SELECT 'orders', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           o.ordered_at
    FROM user_orders o
    WHERE o.user_id = p_user_id;
END
$$;

