-- Item reorder counts (item_reorders, migration 0071) packed for the feed, so that it reads the user's own rows
-- without probing item_reorders (about two buffer hits per item the user bought: 89-155 -> 28-29 hits a call for
-- five users of the feed bench's database).
--
-- The counts are the same at every store, so they are packed once, like a shelf's facts (migration 0040), per
-- catalog position (item_id order), int8 in network byte order (int8send; 0 for an item nobody bought):
--   item_orders   the orders holding the item, over all users
--   item_buyers   the users who bought it
-- over the catalog version they were packed over. The recompute packs them in a transaction of their own before it
-- repacks the shelves (~11-31 ms for 20,000 items); the feed reads them with a store's shelf, packed after them, when
-- that shelf is packed over the same catalog (so they lag one run plus FEED_STORE_SHELF_TTL_S). A shelf read without them (none
-- packed yet, or over another catalog than the shelf's, or the shelf stocked from the store's rows) makes the feed
-- read the counts with the user's rows through feed_user_rows (0072; redefined below over feed_user_own_rows, the
-- same rows), which code from before this migration calls too.
CREATE TABLE item_reorders_packed (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    catalog_version  bigint NOT NULL,
    packed_at        timestamptz NOT NULL,
    item_orders      bytea NOT NULL,
    item_buyers      bytea NOT NULL
);
-- Numbers do not compress: keep them out of line without trying.
ALTER TABLE item_reorders_packed
    ALTER COLUMN item_orders SET STORAGE EXTERNAL, ALTER COLUMN item_buyers SET STORAGE EXTERNAL;
-- The recompute packs them (the function runs as its caller), the feed reads them; no rebuild swaps this table.
GRANT SELECT, INSERT, UPDATE ON item_reorders_packed TO feed_recompute_scores;
GRANT SELECT ON item_reorders_packed TO feed_assemble_feed;

-- Pack every catalog item's counts over the current catalog.
CREATE FUNCTION pack_item_reorders() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO item_reorders_packed AS p (catalog_version, packed_at, item_orders, item_buyers)
    SELECT (SELECT version FROM catalog_state), clock_timestamp(),
           coalesce(string_agg(int8send(coalesce(r.order_count, 0)), ''::bytea ORDER BY i.item_id), ''::bytea),
           coalesce(string_agg(int8send(coalesce(r.buyer_count, 0)), ''::bytea ORDER BY i.item_id), ''::bytea)
    FROM items i
    LEFT JOIN item_reorders r ON r.item_id = i.item_id
    ON CONFLICT (singleton) DO UPDATE SET
        catalog_version = excluded.catalog_version, packed_at = excluded.packed_at,
        item_orders = excluded.item_orders, item_buyers = excluded.item_buyers;
END
$$;

SELECT pack_item_reorders();

-- feed_user_rows (migration 0072) without the item's counts over all users: the feed reads them from the shelf.
-- feed_user_rows (below) calls it from a plpgsql body, which PostgreSQL does not record as a dependency: a change to
-- these columns must redefine feed_user_rows with it.
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


-- feed_user_rows (0072) as feed_user_own_rows with the counts of the items the user bought, so that the user's rows
-- are written once: code from before this migration, and the feed when its shelf has no counts, call it. The same
-- rows and columns; item_reorders is probed only for the items the user bought (OFFSET 0 keeps the subquery).
CREATE OR REPLACE FUNCTION feed_user_rows(
    p_user_id text, p_models text[], p_pairs boolean, p_pool integer, p_buy_again_pool integer,
    p_recent_since timestamptz, p_recent_limit integer, p_seed_limit integer
) RETURNS TABLE (
    kind text, item_id text, purchase_count integer, first_purchased_at timestamptz,
    last_purchased_at timestamptz, purchase_raw double precision, affinity_raw double precision,
    hidden boolean, last_hidden_at timestamptz, item_orders bigint, item_buyers bigint, score double precision,
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
    SELECT o.kind, o.item_id, o.purchase_count, o.first_purchased_at, o.last_purchased_at, o.purchase_raw,
           o.affinity_raw, o.hidden, o.last_hidden_at,
           CASE WHEN o.kind = 'item' THEN coalesce(r.order_count, 0) END,
           CASE WHEN o.kind = 'item' THEN coalesce(r.buyer_count, 0) END,
           o.score, o.label, o.recent_purchase_at, o.recent_hide_at, o.recent_positive_at, o.in_cart, o.ordered_at
    FROM feed_user_own_rows(p_user_id, p_models, p_pairs, p_pool, p_buy_again_pool, p_recent_since, p_recent_limit,
                            p_seed_limit) WITH ORDINALITY AS o
    LEFT JOIN LATERAL (
        SELECT r.order_count, r.buyer_count FROM item_reorders r
        WHERE r.item_id = o.item_id AND o.kind = 'item' AND o.purchase_count > 0
        OFFSET 0
    ) r ON true
    ORDER BY o.ordinality;
END
$$;
