-- Feed pages and their attribution.
--
-- `feeds` records every assembled feed (who, where, which experiment variant, which fallback) so that
-- impressions, clicks and purchases carrying its feed_id can be attributed to a section and a variant.
-- `feed_snapshots` holds the ranked sections of a feed while its pages are being read; cursors point into
-- it. Snapshots are short-lived and can be rebuilt by asking for a new feed, so the table is UNLOGGED:
-- no WAL on the hot path; after a crash it is empty and cursors into it get 410 Gone.

CREATE TABLE feeds (
    feed_id     text PRIMARY KEY,
    user_id     text NOT NULL,
    store_id    text NOT NULL,
    experiment  text,
    variant     text NOT NULL,
    fallback    text,
    created_at  timestamptz NOT NULL
);
CREATE INDEX feeds_created_brin ON feeds USING brin (created_at);

CREATE UNLOGGED TABLE feed_snapshots (
    feed_id     text PRIMARY KEY,
    user_id     text NOT NULL,
    expires_at  timestamptz NOT NULL,
    sections    jsonb NOT NULL
);
CREATE INDEX feed_snapshots_expiry_idx ON feed_snapshots (expires_at);

-- Candidate sources of the feed that read the catalog by index: new arrivals, and an aisle's items.
CREATE INDEX items_new_arrivals_idx ON items (created_at DESC) WHERE active;
CREATE INDEX items_aisle_idx ON items (aisle) WHERE active;

-- The feed's read query, as a function so that each database session plans it once: its plan is cached and
-- reused (generic), where a query sent as text would be planned on every call (~10 ms for this one). It
-- keeps no state between calls, so it works through RDS Proxy. Every source reads its table by index and
-- keeps its best p_pool rows (a source not in p_sources is switched off once per call). Then each distinct
-- item is hydrated once by index lookups: catalog, the store's availability and price, the user's history
-- of it, its popularity, the user's affinity to its aisle, its model score, and the user's events of the
-- last hours, scored or not (real-time signals). Filters run on these facts in the service, so that each
-- removal can be explained.
CREATE FUNCTION feed_candidates(
    p_user_id text, p_store_id text, p_sources text[], p_models text[], p_pool integer,
    p_buy_again_pool integer, p_favourite_aisles integer, p_new_since timestamptz, p_recent_since timestamptz,
    p_recent_limit integer, p_seed_limit integer
) RETURNS TABLE (
    source text, source_score double precision, seed_item_id text, seed_name text, item_id text, name text,
    brand text, department text, aisle text, tags text[], active boolean, created_at timestamptz,
    available boolean, price numeric, purchase_count integer, first_purchased_at timestamptz,
    last_purchased_at timestamptz, purchase_raw double precision, affinity_raw double precision,
    hidden boolean, last_hidden_at timestamptz, popularity_raw double precision,
    trending_score double precision, aisle_affinity_raw double precision, model_score double precision,
    recent_purchase_at timestamptz, recent_hide_at timestamptz, recent_positive_at timestamptz,
    in_cart boolean, epoch timestamptz, store_known boolean
)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH scope AS (
        SELECT known AS store_known, CASE WHEN known THEN p_store_id ELSE '*' END AS popularity_store
        FROM (SELECT EXISTS (SELECT 1 FROM stores WHERE store_id = p_store_id) AS known) s
    ),
    recent AS (
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
    recent_by_item AS (
        SELECT item_id,
               max(occurred_at) FILTER (WHERE event_type = 'purchase') AS purchased_at,
               max(occurred_at) FILTER (WHERE event_type = 'hide') AS hidden_at,
               max(occurred_at) FILTER (WHERE event_type IN ('purchase', 'add_to_cart')) AS positive_at,
               (array_agg(event_type ORDER BY occurred_at DESC))[1] = 'add_to_cart' AS in_cart,
               max(occurred_at) AS last_at
        FROM recent
        GROUP BY item_id
    ),
    -- The user's rows, each read once by a range scan: cheaper than a lookup per candidate.
    user_items AS MATERIALIZED (
        SELECT item_id, purchase_count, first_purchased_at, last_purchased_at, purchase_raw, affinity_raw, hidden,
               last_hidden_at
        FROM user_item_affinity
        WHERE user_id = p_user_id
    ),
    user_aisles AS MATERIALIZED (
        SELECT category AS aisle, raw_score FROM user_category_affinity WHERE user_id = p_user_id AND level = 'aisle'
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
        WHERE 'goes_well_with' = ANY (p_sources)
        GROUP BY item_id
        ORDER BY min(tier), max(at) DESC
        LIMIT p_seed_limit
    ),
    top_aisles AS (
        SELECT aisle FROM user_aisles
        WHERE 'favourite_aisles' = ANY (p_sources)
        ORDER BY raw_score DESC
        LIMIT p_favourite_aisles
    ),
    candidates AS (
        SELECT 'buy_again' AS source, item_id, NULL::double precision AS source_score, NULL::text AS seed_item_id
        FROM purchased WHERE 'buy_again' = ANY (p_sources)
        UNION ALL
        (SELECT DISTINCT ON (p.paired_item_id) 'goes_well_with', p.paired_item_id, p.score, p.item_id
         FROM seeds s
         CROSS JOIN LATERAL (
             SELECT item_id, paired_item_id, score FROM item_pairs
             WHERE item_id = s.item_id ORDER BY score DESC LIMIT p_pool
         ) p
         ORDER BY p.paired_item_id, p.score DESC)
        UNION ALL
        (SELECT 'trending', p.item_id, p.trending_score, NULL
         FROM item_popularity p
         WHERE 'trending' = ANY (p_sources) AND p.store_id = (SELECT popularity_store FROM scope) AND p.trending_score > 0
         ORDER BY p.trending_score DESC LIMIT p_pool)
        UNION ALL
        (SELECT 'popular', p.item_id, p.raw_score, NULL
         FROM item_popularity p
         WHERE 'popular' = ANY (p_sources) AND p.store_id = (SELECT popularity_store FROM scope)
         ORDER BY p.raw_score DESC LIMIT p_pool)
        UNION ALL
        SELECT 'favourite_aisles', x.item_id, x.raw_score, NULL
        FROM top_aisles t
        CROSS JOIN LATERAL (
            SELECT i.item_id, p.raw_score
            FROM items i
            JOIN item_popularity p ON p.store_id = (SELECT popularity_store FROM scope) AND p.item_id = i.item_id
            WHERE i.aisle = t.aisle AND i.active
            ORDER BY p.raw_score DESC LIMIT p_pool
        ) x
        UNION ALL
        (SELECT 'new_arrivals', i.item_id, NULL, NULL
         FROM items i
         WHERE 'new_arrivals' = ANY (p_sources) AND i.active AND i.created_at >= p_new_since
         ORDER BY i.created_at DESC LIMIT p_pool)
        UNION ALL
        SELECT 'model:' || m.model, x.item_id, x.score, NULL
        FROM unnest(p_models) AS m (model)
        CROSS JOIN LATERAL (
            (SELECT item_id, score FROM model_scores
             WHERE model = m.model AND user_id = p_user_id ORDER BY score DESC LIMIT p_pool)
            UNION ALL
            (SELECT item_id, score FROM model_scores
             WHERE model = m.model AND user_id = '' ORDER BY score DESC LIMIT p_pool)
        ) x
    ),
    hydrated AS (
        SELECT c.item_id, i.name, i.brand, i.department, i.aisle, i.tags, i.active, i.created_at,
               CASE WHEN (SELECT store_known FROM scope) THEN coalesce(sa.available, false) END AS available,
               coalesce(sa.price, i.price) AS price,
               coalesce(a.purchase_count, 0) AS purchase_count, a.first_purchased_at, a.last_purchased_at,
               coalesce(a.purchase_raw, 0) AS purchase_raw, coalesce(a.affinity_raw, 0) AS affinity_raw,
               coalesce(a.hidden, false) AS hidden, a.last_hidden_at,
               coalesce(pop.raw_score, 0) AS popularity_raw, coalesce(pop.trending_score, 0) AS trending_score,
               coalesce(ca.raw_score, 0) AS aisle_affinity_raw, ms.score AS model_score,
               r.purchased_at AS recent_purchase_at, r.hidden_at AS recent_hide_at,
               r.positive_at AS recent_positive_at, coalesce(r.in_cart, false) AS in_cart
        FROM (SELECT DISTINCT item_id FROM candidates) c
        -- One index lookup per candidate in the big tables (LIMIT keeps each a per-row lookup: as joins, the
        -- planner could hash whole tables).
        JOIN LATERAL (
            SELECT name, brand, department, aisle, tags, active, created_at, price FROM items
            WHERE item_id = c.item_id LIMIT 1
        ) i ON true
        LEFT JOIN LATERAL (
            SELECT available, price FROM store_availability
            WHERE store_id = p_store_id AND item_id = c.item_id LIMIT 1
        ) sa ON true
        LEFT JOIN user_items a ON a.item_id = c.item_id
        LEFT JOIN LATERAL (
            SELECT raw_score, trending_score FROM item_popularity
            WHERE store_id = (SELECT popularity_store FROM scope) AND item_id = c.item_id LIMIT 1
        ) pop ON true
        LEFT JOIN user_aisles ca ON ca.aisle = i.aisle
        LEFT JOIN LATERAL (
            SELECT max(score) AS score FROM model_scores
            WHERE model = ANY (p_models) AND user_id IN (p_user_id, '') AND item_id = c.item_id
        ) ms ON true
        LEFT JOIN recent_by_item r ON r.item_id = c.item_id
    )
    SELECT c.source, c.source_score, c.seed_item_id, seed.name, c.item_id, h.name, h.brand, h.department, h.aisle,
           h.tags, h.active, h.created_at, h.available, h.price, h.purchase_count, h.first_purchased_at,
           h.last_purchased_at, h.purchase_raw, h.affinity_raw, h.hidden, h.last_hidden_at, h.popularity_raw,
           h.trending_score, h.aisle_affinity_raw, h.model_score, h.recent_purchase_at, h.recent_hide_at,
           h.recent_positive_at, h.in_cart, (SELECT epoch FROM score_state), (SELECT store_known FROM scope)
    FROM candidates c
    JOIN hydrated h ON h.item_id = c.item_id
    LEFT JOIN LATERAL (SELECT name FROM items WHERE items.item_id = c.seed_item_id LIMIT 1) seed ON true
    ORDER BY c.source, c.item_id;
END
$$;
