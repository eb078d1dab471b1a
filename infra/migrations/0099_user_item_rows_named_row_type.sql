-- The user's rows (feed_user_item_rows, migration 0096), read on every first page, return SETOF a named row type
-- (feed_user_item_row: the columns of 0096's RETURNS TABLE, in its order) instead of a record described by sixteen
-- OUT arguments. The caller's statement is parsed and planned on every call (the feed sends it unprepared, for RDS
-- Proxy): with OUT arguments PostgreSQL builds the result's row descriptor from the function's catalog row each
-- time it resolves the call (parse analysis, then the function scan), a type lookup per column; a named type's
-- descriptor comes from the type cache. Counted by callgrind in a single-user server over 300 bench users, after a
-- warm-up: ~41,600 fewer instructions per call (of ~1.24M for the statement, its text output aside), the function's
-- own execution unchanged.
--
-- The body is 0096's with every order that picks goes-well-with candidates made total, so that the same data give
-- the same seeds, pairs and labels whatever the plan (table statistics, a hash or a sorted grouping). In 0096 ties
-- went the way the plan's scans and sorts met them, and they are common: the items of one order share their
-- purchase time, pair scores repeat. The rule: ties go to the smaller item id in byte order (COLLATE "C"), as in the
-- rebuild's and the recompute's pair lists (feedcore.db.scores) and the feed's buy-again pool
-- (feedcore.feed.sources):
--   purchased (the buy-again pool the seeds come from)  purchase_raw DESC, then item id
--   seeds, from the recent cart and purchases (tier 0)  last event DESC, then item id
--   seeds, from the buy-again pool (tier 1)             last_purchased_at DESC, then item id
--   the seeds kept                                      tier, time DESC, then item id
--   a seed's pairs                                      score DESC, then paired item id
--   the seed that labels a pair reached from several    score DESC, then seed item id
-- Where nothing ties at these cuts the rows are 0096's. A seed's best pairs still come from the (item_id, score DESC)
-- index, sorted by paired item within a score (an incremental sort), one entry past the pool read to know that
-- nothing ties with the last one kept. With the order total the user's items are read twice from user_item_affinity
-- (the buy-again pool from its purchases index, every item from the primary key) instead of once into a
-- materialized CTE, which 0096 needed only so that its ties fell the same way in both: callgrind, 1,000 bench users
-- after a warm-up, per call of the function scan: 0096's body 1,039K instructions, the total orders over the CTE
-- 1,138K, over two reads 1,019K.
--
-- Callers are unchanged: `SELECT * FROM feed_user_item_rows(...)` gives the same columns under the same names and
-- types, so code from before this migration reads it as it did. feed_user_item_rows_with_reorders and 0096's
-- feed_user_own_rows call it from plpgsql bodies, which PostgreSQL does not record as dependencies: dropping it
-- leaves them in place, and they call the new function by name. Neither orders the rows again
-- (feed_user_item_rows_with_reorders keeps their order WITH ORDINALITY), and the feed takes every pair row it is
-- given: the seeds and labels are this function's.

CREATE TYPE feed_user_item_row AS (
    kind text, item_id text, purchase_count integer, first_purchased_at timestamptz,
    last_purchased_at timestamptz, purchase_raw double precision, affinity_raw double precision,
    hidden boolean, last_hidden_at timestamptz, score double precision,
    label text,
    recent_purchase_at timestamptz, recent_hide_at timestamptz, recent_positive_at timestamptz, in_cart boolean,
    ordered_at timestamptz[]
);

-- A function's result type cannot be replaced in place.
DROP FUNCTION feed_user_item_rows(text, text[], boolean, integer, integer, timestamptz, integer, integer);

CREATE FUNCTION feed_user_item_rows(
    p_user_id text, p_models text[], p_pairs boolean, p_pool integer, p_buy_again_pool integer,
    p_recent_since timestamptz, p_recent_limit integer, p_seed_limit integer
) RETURNS SETOF feed_user_item_row
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
    purchased AS (
        SELECT item_id, last_purchased_at
        FROM user_item_affinity
        WHERE user_id = p_user_id AND purchase_count > 0 AND NOT hidden
        ORDER BY purchase_raw DESC, item_id COLLATE "C"
        LIMIT p_buy_again_pool
    ),
    seeds AS (
        SELECT item_id FROM (
            (SELECT item_id, 0 AS tier, last_at AS at FROM recent_by_item WHERE in_cart OR purchased_at IS NOT NULL
             ORDER BY last_at DESC, item_id COLLATE "C" LIMIT p_seed_limit)
            UNION ALL
            (SELECT item_id, 1, last_purchased_at FROM purchased
             ORDER BY last_purchased_at DESC, item_id COLLATE "C" LIMIT p_seed_limit)
        ) s
        WHERE p_pairs
        GROUP BY item_id
        ORDER BY min(tier), max(at) DESC, item_id COLLATE "C"
        LIMIT p_seed_limit
    )
    SELECT 'item', u.item_id, u.purchase_count, u.first_purchased_at, u.last_purchased_at, u.purchase_raw,
           u.affinity_raw, u.hidden, u.last_hidden_at, NULL::double precision, NULL::text, NULL::timestamptz,
           NULL::timestamptz, NULL::timestamptz, NULL::boolean, NULL::timestamptz[]
    FROM user_item_affinity u
    WHERE u.user_id = p_user_id
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
         WHERE item_id = s.item_id ORDER BY score DESC, paired_item_id COLLATE "C" LIMIT p_pool
     ) p
     ORDER BY p.paired_item_id, p.score DESC, p.item_id COLLATE "C")
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
