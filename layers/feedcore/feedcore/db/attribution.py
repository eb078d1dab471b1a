"""The feedback loop: how the sections of served feeds performed, from the events that carry tracking."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
from msgspec import Struct
from psycopg.rows import class_row

# The report's variant of events whose feed it cannot match (no longer recorded, or another user's), and its section
# of events that name no section: a ranking config names no variant and no section so (feedcore.feed.config).
UNKNOWN = "unknown"

# Impressions, clicks and adds to cart count where their tracking fields say. A purchase line counts for the
# section of the same user's latest tracked click or add to cart of that item within the attribution window
# before the purchase (last touch). Feeds are matched to their experiment variant through `feeds`, only for
# events of the user the feed was served to (clients send feed_id; another user's is counted as unknown). A click or
# add to cart may carry a feed_id without its section (the contract makes each part optional): section 'unknown'.
_SECTION_REPORT = """
WITH tracked AS (
    SELECT event_type, feed_id, section, user_id, item_id, occurred_at
    FROM events
    WHERE occurred_at >= %(since)s - make_interval(secs => %(window_s)s) AND feed_id IS NOT NULL
      AND event_type IN ('impression', 'click', 'add_to_cart')
),
purchase_lines AS (
    SELECT p.event_id, p.user_id, p.occurred_at, line.item_id
    FROM events p
    CROSS JOIN LATERAL unnest(p.line_item_ids) AS line (item_id)
    WHERE p.event_type = 'purchase' AND p.occurred_at >= %(since)s
),
attributed AS (
    SELECT DISTINCT ON (pl.event_id, pl.item_id) t.feed_id, t.section, t.user_id
    FROM purchase_lines pl
    JOIN tracked t ON t.user_id = pl.user_id AND t.item_id = pl.item_id
                  AND t.event_type IN ('click', 'add_to_cart')
                  AND t.occurred_at <= pl.occurred_at
                  AND t.occurred_at > pl.occurred_at - make_interval(secs => %(window_s)s)
    ORDER BY pl.event_id, pl.item_id, t.occurred_at DESC
),
counts AS (
    SELECT feed_id, section, user_id,
           count(*) FILTER (WHERE event_type = 'impression') AS impressions,
           count(*) FILTER (WHERE event_type = 'click') AS clicks,
           count(*) FILTER (WHERE event_type = 'add_to_cart') AS add_to_carts,
           0 AS purchases
    FROM tracked
    WHERE occurred_at >= %(since)s
    GROUP BY feed_id, section, user_id
    UNION ALL
    SELECT feed_id, section, user_id, 0, 0, 0, count(*) FROM attributed GROUP BY feed_id, section, user_id
)
SELECT f.experiment, coalesce(f.variant, %(unknown)s) AS variant, coalesce(c.section, %(unknown)s) AS section,
       sum(c.impressions)::bigint AS impressions, sum(c.clicks)::bigint AS clicks,
       sum(c.add_to_carts)::bigint AS add_to_carts, sum(c.purchases)::bigint AS purchases
FROM counts c
LEFT JOIN feeds f ON f.feed_id = c.feed_id AND f.user_id = c.user_id  -- a feed_id sent by another user: unknown
GROUP BY 1, 2, 3
ORDER BY f.experiment NULLS FIRST, variant, section
"""


class SectionStats(Struct, frozen=True):
    """What one section of one experiment variant earned (variant 'unknown': feeds no longer recorded, or another
    user's; section 'unknown': events that named a feed but no section)."""

    experiment: str | None
    variant: str
    section: str
    impressions: int
    clicks: int
    add_to_carts: int
    purchases: int


def section_report(conn: psycopg.Connection, since: datetime, window: timedelta) -> list[SectionStats]:
    """Per experiment variant and section: impressions, clicks and adds to cart since `since`, and purchase
    lines attributed to them (last touch within `window`)."""
    with conn.cursor(row_factory=class_row(SectionStats)) as cur:
        return cur.execute(
            _SECTION_REPORT, {"since": since, "window_s": window.total_seconds(), "unknown": UNKNOWN}
        ).fetchall()
