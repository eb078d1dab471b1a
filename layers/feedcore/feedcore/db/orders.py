"""The user's orders as the recompute counts them (migration 0050): per user the instants of their orders, per
user × item the orders holding it, so that the feed's just-purchased filter reads an exact rebuy rate; and per
item its orders and buyers over all users (migration 0071), how often its buyers buy it again.

An order is a purchase event; two of the user's purchase events at one instant count as one order (one order
may also repeat an item in its lines: it holds the item once). The SQL here is part of the recompute's apply
statement (feedcore.db.scores), over its `run_event` rows: one per (event, item), line_no numbering a
purchase's lines from 1.
"""

from __future__ import annotations

USER_ORDERS_TABLE = "user_orders"
ITEM_REORDERS_TABLE = "item_reorders"

# The orders holding the item among a user × item's run_event rows. Summed over incremental runs it equals a
# full rebuild's count, as an event is scored in exactly one run — unless a purchase event arrives at an
# instant already scored for the user and item (a resent order under a new event id), which a rebuild counts once.
ORDERS_HOLDING_ITEM = "count(DISTINCT occurred_at) FILTER (WHERE event_type = 'purchase')"


def user_orders_cte(suffix: str = "", upsert: bool = True) -> str:
    """The apply statement's CTE `orders`: each user's order instants of the run into user_orders{suffix},
    merged (in time order, each once) with those already kept when `upsert`, else inserted into a rebuild's
    fresh copy."""
    conflict = (
        """ON CONFLICT (user_id) DO UPDATE
    SET ordered_at = ARRAY(SELECT DISTINCT unnest(o.ordered_at || excluded.ordered_at) ORDER BY 1)"""
        if upsert
        else ""
    )
    return f"""orders AS (
    INSERT INTO {USER_ORDERS_TABLE}{suffix} AS o (user_id, ordered_at)
    SELECT user_id COLLATE "C", array_agg(DISTINCT occurred_at ORDER BY occurred_at)
    FROM run_event
    WHERE event_type = 'purchase' AND line_no = 1
    GROUP BY 1
    ORDER BY 1
    {conflict}
    RETURNING 1
)"""


def item_reorders_cte(suffix: str = "", upsert: bool = True, affinity_upserted: bool = False) -> str:
    """The apply statement's CTE `reorders`: per item, the run's orders holding it and its new buyers added into
    item_reorders{suffix} when `upsert`, else (a rebuild's fresh copy, every event) its orders and buyers.

    A user is a new buyer when user_item_affinity held no order of theirs with the item before the statement. With
    `affinity_upserted` the statement's CTE `affinity` upserts the same run's user × item rows and returns
    (user_id, item_id, purchase_count): a user is a new buyer when the count after the upsert is the run's own
    (no key probe per bought row). Otherwise (a fanned-out chunk's item part) the statement reads the table as it
    was before it; a fanned-out chunk scores its item part before its users' shards (one chunk open at a time), so
    that is every order scored before the chunk."""
    if not upsert:
        known, buyers, conflict = "", "count(*)", ""
    elif affinity_upserted:
        # every bought row is one the upsert returned
        known = """
    JOIN affinity a ON a.user_id = bought.user_id AND a.item_id = bought.item_id"""
        buyers = "count(*) FILTER (WHERE a.purchase_count = bought.orders)"
    else:
        # the user's row before this statement: none, or without a purchase (a view, a hide), for a new buyer
        known = """
    LEFT JOIN user_item_affinity a ON a.user_id = bought.user_id AND a.item_id = bought.item_id"""
        buyers = "count(*) FILTER (WHERE coalesce(a.purchase_count, 0) = 0)"
    if upsert:
        conflict = """ON CONFLICT (item_id) DO UPDATE
    SET order_count = r.order_count + excluded.order_count, buyer_count = r.buyer_count + excluded.buyer_count"""
    return f"""reorders AS (
    INSERT INTO {ITEM_REORDERS_TABLE}{suffix} AS r (item_id, order_count, buyer_count)
    SELECT bought.item_id COLLATE "C", sum(bought.orders), {buyers}
    FROM (
        SELECT user_id, item_id, {ORDERS_HOLDING_ITEM} AS orders
        FROM run_event
        WHERE event_type = 'purchase'
        GROUP BY 1, 2
    ) AS bought{known}
    GROUP BY 1
    ORDER BY 1
    {conflict}
    RETURNING 1
)"""


def rebuilt_item_reorders_sql(suffix: str) -> str:
    """A rebuild's item_reorders{suffix}, from its filled copy of user_item_affinity: an item's orders are the sum
    of its buyers' purchase counts (ORDERS_HOLDING_ITEM over the same events), its buyers the users with one (as
    migration 0071 filled the table). Reading the copy costs a fraction of grouping the events' purchase lines by
    user and item a second time."""
    return f"""
INSERT INTO {ITEM_REORDERS_TABLE}{suffix} (item_id, order_count, buyer_count)
SELECT item_id COLLATE "C", sum(purchase_count), count(*)
FROM user_item_affinity{suffix}
WHERE purchase_count > 0
GROUP BY 1
ORDER BY 1
"""
