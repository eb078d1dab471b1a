-- Incremental score recomputation.
--
-- Each event row records the transaction that inserted it. A run scores the events visible in its own
-- snapshot and not in the previous run's (the watermark is that snapshot): each committed event is scored
-- exactly once, however late its transaction commits, and a long transaction elsewhere holds nothing back.
-- A BRIN index on received_at keeps the scan to recent blocks.
--
-- Decayed scores are kept relative to a reference epoch: raw = Σ weight · 2^((occurred_at − epoch) / half-life).
-- New events add to raw without rescanning history; the decayed value at time t is raw · 2^(−(t − epoch) / h),
-- so ranking by raw is ranking by the decayed score at any moment.

ALTER TABLE events ADD COLUMN insert_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX events_received_brin ON events USING brin (received_at);

CREATE TABLE score_state (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    epoch            timestamptz NOT NULL,
    -- every event visible in this snapshot is scored
    scored_snapshot  pg_snapshot NOT NULL,
    -- a backlog being scored in chunks: the snapshot it catches up to, and how far (by insert_xid) it got
    target_snapshot  pg_snapshot,
    done_below_xid   xid8,
    -- no event that may still need scoring was received before this (bounds the scan)
    scan_from        timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);

DROP VIEW event_items;
CREATE VIEW event_items AS
SELECT e.event_id, e.event_type, e.user_id, e.store_id, e.occurred_at, e.received_at, e.insert_xid, e.item_id,
       coalesce(e.quantity, 1) AS quantity
FROM events e
WHERE e.event_type <> 'purchase'
UNION ALL
SELECT e.event_id, e.event_type, e.user_id, e.store_id, e.occurred_at, e.received_at, e.insert_xid, line.item_id,
       line.quantity
FROM events e
CROSS JOIN LATERAL unnest(e.line_item_ids, e.line_quantities) AS line (item_id, quantity)
WHERE e.event_type = 'purchase';

-- Popularity per store, and over all stores with store_id '*': a long-horizon decayed count (raw_score)
-- and a short-horizon one (short_raw), whose smoothed ratio is the trending score.
DROP TABLE item_popularity;
CREATE TABLE item_popularity (
    store_id        text NOT NULL,
    item_id         text NOT NULL,
    raw_score       double precision NOT NULL,
    short_raw       double precision NOT NULL,
    trending_score  double precision NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (store_id, item_id)
);
CREATE INDEX item_popularity_rank_idx ON item_popularity (store_id, raw_score DESC);
CREATE INDEX item_popularity_trending_idx ON item_popularity (store_id, trending_score DESC);

-- Per user and item: weighted interactions, and the purchase history the buy-again score is made from.
DROP TABLE user_item_affinity;
CREATE TABLE user_item_affinity (
    user_id             text NOT NULL,
    item_id             text NOT NULL,
    affinity_raw        double precision NOT NULL DEFAULT 0,
    purchase_count      integer NOT NULL DEFAULT 0,
    purchase_raw        double precision NOT NULL DEFAULT 0,
    first_purchased_at  timestamptz,
    last_purchased_at   timestamptz,
    last_positive_at    timestamptz,
    last_hidden_at      timestamptz,
    -- A hide suppresses the item until the user buys or carts it again later.
    hidden              boolean GENERATED ALWAYS AS (
                            last_hidden_at IS NOT NULL
                            AND last_hidden_at >= coalesce(last_positive_at, '-infinity')) STORED,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (user_id, item_id)
);
CREATE INDEX user_item_purchases_idx ON user_item_affinity (user_id, purchase_raw DESC)
    WHERE purchase_count > 0 AND NOT hidden;

-- Per user: affinity to catalog aisles and departments (interactions with items the catalog knows).
CREATE TABLE user_category_affinity (
    user_id     text NOT NULL,
    level       text NOT NULL CHECK (level IN ('aisle', 'department')),
    category    text NOT NULL,
    raw_score   double precision NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (user_id, level, category)
);

ALTER TABLE score_runs ADD COLUMN scored_snapshot pg_snapshot;
ALTER TABLE score_runs RENAME COLUMN popularity_rows TO popularity_updates;
ALTER TABLE score_runs RENAME COLUMN affinity_rows TO affinity_updates;
