"""The user's orders as the recompute counts them (migration 0050): per user the instants of their orders, per
user × item the orders holding it, so that the feed's just-purchased filter reads an exact rebuy rate.

An order is a purchase event; two of the user's purchase events at one instant count as one order (one order
may also repeat an item in its lines: it holds the item once). The SQL here is part of the recompute's apply
statement (feedcore.db.scores), over its `run_event` rows: one per (event, item), line_no numbering a
purchase's lines from 1.
"""

from __future__ import annotations

USER_ORDERS_TABLE = "user_orders"

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
