-- The user's rows (feed_user_item_rows, migration 0099) read their latest events in a total order, so that the same
-- events give the same rows whatever the plan, the table statistics or the order the rows lie in. In 0099 two orders
-- there had ties that the plan's scans and sorts broke (in practice the index's, in the order the rows were
-- inserted): the cut of the latest p_recent_limit events (ORDER BY occurred_at DESC LIMIT), where events of one
-- instant (a client's clock that counts seconds, a cart filled at once) could be kept or left out, and in_cart, the
-- item's latest event being an addition, where an addition and a removal at one instant went either way.
--
-- The rule for both: of events at one occurred_at, the one received later is the later (received_at: the time of
-- the transaction that stored it, so an event sent in a later request); of events received in one batch (one
-- transaction, one received_at; the batch's own order is not kept), the one with the larger event_id — a fixed rule
-- that identifies an event, and for clients that make time-ordered ids (UUIDv7) their order. So a user who adds an
-- item and removes it within the same second, in two requests, no longer has it in their cart.
--
-- The events are still read from the (user_id, occurred_at DESC) index of each month, in its order; an incremental
-- sort orders each instant's events by the tie-break (it reads every event of the instant at the cut, so a client
-- that stamps many events with one time makes the read as long: 5,000 at one instant, 5,000 index rows and 5.5 ms
-- a call; it returns at most p_recent_limit). Measured on the feed bench's database (50,000 users, 2M events over 90 days, EXPLAIN (ANALYZE,
-- BUFFERS) of the body as a generic plan and callgrind in a single-user server, 1,000 users each, after a warm-up):
-- at the feed's window (6 hours, 100 events) the same buffers a call (32.0) and 1,019K -> 1,036K instructions for
-- the function scan (+1.6 %, the sort set up for ~0 events); over 90 days (every one of a user's ~40 events read,
-- nothing cut) the same buffers (79.7) and 2,140K -> 2,216K; over 90 days cut at 10 events 61.1 -> 63.9 buffers
-- (the event past the cut, behind the impressions and clicks the index scan filters out) and 1,732K -> 1,802K.
-- The bench's history has almost no such ties (one user and instant with two of these events), and its users' rows
-- are the same before and after. A key (user_id, occurred_at DESC, received_at DESC, event_id DESC) would spare the
-- sort, at the price of a wider index on the table ingestion writes most.
--
-- Callers are unchanged: the same arguments, columns and row type (CREATE OR REPLACE keeps the function's identity;
-- feed_user_item_rows_with_reorders and 0096's feed_user_own_rows call it by name).

CREATE OR REPLACE FUNCTION feed_user_item_rows(
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
        SELECT e.event_type, e.occurred_at, e.received_at, e.event_id, item.item_id
        FROM (
            SELECT event_type, occurred_at, received_at, event_id, item_id, line_item_ids
            FROM events
            WHERE user_id = p_user_id AND occurred_at >= p_recent_since
              AND event_type IN ('add_to_cart', 'remove_from_cart', 'purchase', 'hide')
            ORDER BY occurred_at DESC, received_at DESC, event_id DESC
            LIMIT p_recent_limit
        ) e
        CROSS JOIN LATERAL unnest(coalesce(e.line_item_ids, ARRAY[e.item_id])) AS item (item_id)
    ),
    recent_by_item AS MATERIALIZED (
        SELECT item_id,
               max(occurred_at) FILTER (WHERE event_type = 'purchase') AS purchased_at,
               max(occurred_at) FILTER (WHERE event_type = 'hide') AS hidden_at,
               max(occurred_at) FILTER (WHERE event_type IN ('purchase', 'add_to_cart')) AS positive_at,
               (array_agg(event_type ORDER BY occurred_at DESC, received_at DESC, event_id DESC))[1] = 'add_to_cart'
                   AS in_cart,
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
