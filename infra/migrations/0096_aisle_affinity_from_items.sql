-- The user's aisle affinities are no longer stored: the feed sums them from the user's item rows, which it reads on
-- every first page anyway, over the catalog it holds (feedcore.feed.sources.aisle_affinities). The recompute stops
-- writing user_category_affinity: each of its runs upserted a row per user and aisle of its events at a random leaf
-- of that table's covering key (~0.66 s of the run's events statement in the bench), and a full rebuild aggregated
-- every scored event by user and aisle again.
--
-- Why the sums are the same: an aisle row was Σ weight · 2^((occurred_at − epoch) / affinity half-life) over the
-- user's events of positive weight on the catalog's items of the aisle; user_item_affinity.affinity_raw is the same
-- sum per item (FILTER weight > 0: one purchase line, cart addition or click each; hides and impressions weigh
-- nothing), from the same run's events, epoch and half-life, moved by the same rebase, erased with the user, and
-- scored by the same shard of a fanned-out chunk. So an aisle's affinity is the sum of affinity_raw over the user's
-- items of the aisle — hidden items included, as the aisle rows counted their positive events — up to the order in
-- which the floats are added. An item with affinity_raw 0 (only hides) brings its aisle no row, as before. Where the
-- catalog changed since the events were scored, the sums follow the current catalog (as a full rebuild of the stored
-- rows did): an item moved to another aisle counts in its new aisle, and an item the catalog gained after its events
-- counts from then on (the stored rows had left it out until the next rebuild).
--
-- The new code reads the user's rows without aisle rows: feed_user_item_rows, and feed_user_item_rows_with_reorders
-- when its shelf carries no reorder counts (migration 0082's two functions less the aisle rows). Code from before
-- this migration (running while a deploy migrates, or after a rollback) calls feed_user_own_rows and feed_user_rows,
-- which keep their columns and give aisle rows summed from the item rows the same way (the second calls the first:
-- its aisle rows come from the redefinition below).
--
-- user_category_affinity itself stays: code from before this migration still writes it (and its erasure deletes
-- from it), nothing reads it any more.

-- feed_user_own_rows (migration 0082) without the aisle rows.
CREATE FUNCTION feed_user_item_rows(
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

-- feed_user_item_rows with the counts of the items the user bought, as migration 0082's feed_user_rows over
-- feed_user_own_rows: for a shelf without reorder counts. (It calls feed_user_item_rows from a plpgsql body, which
-- PostgreSQL does not record as a dependency: a change to those columns must redefine this function with it.)
CREATE FUNCTION feed_user_item_rows_with_reorders(
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
    FROM feed_user_item_rows(p_user_id, p_models, p_pairs, p_pool, p_buy_again_pool, p_recent_since, p_recent_limit,
                             p_seed_limit) WITH ORDINALITY AS o
    LEFT JOIN LATERAL (
        SELECT r.order_count, r.buyer_count FROM item_reorders r
        WHERE r.item_id = o.item_id AND o.kind = 'item' AND o.purchase_count > 0
        OFFSET 0
    ) r ON true
    ORDER BY o.ordinality;
END
$$;

-- For code from before this migration: feed_user_item_rows and the user's aisle rows, each the sum of affinity_raw
-- over the user's catalog items of the aisle that have any (in aisle order, as the stored rows were read). The same
-- columns; feed_user_rows (0082) reads its rows from here.
CREATE OR REPLACE FUNCTION feed_user_own_rows(
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
    SELECT * FROM feed_user_item_rows(p_user_id, p_models, p_pairs, p_pool, p_buy_again_pool, p_recent_since,
                                      p_recent_limit, p_seed_limit)
    UNION ALL
    (SELECT 'aisle', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, sum(a.affinity_raw), i.aisle, NULL, NULL, NULL,
            NULL, NULL
     FROM user_item_affinity a
     JOIN items i ON i.item_id = a.item_id
     WHERE a.user_id = p_user_id AND a.affinity_raw > 0
     GROUP BY i.aisle
     ORDER BY i.aisle);
END
$$;
