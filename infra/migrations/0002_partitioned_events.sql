-- Events become one row per event, partitioned by month of occurred_at so old months can be dropped
-- (feedctl retention). Purchase lines move into the event row as parallel arrays, which makes the write
-- path a single insert. Uniqueness of event_id across partitions is kept by event_ids.

DROP VIEW event_items;
ALTER TABLE events RENAME TO events_v1;
ALTER TABLE purchase_lines RENAME TO purchase_lines_v1;
DROP INDEX events_user_time_idx, events_received_idx;

CREATE TABLE events (
    event_id          uuid NOT NULL,
    occurred_at       timestamptz NOT NULL,
    event_type        text NOT NULL CHECK (event_type IN (
                          'purchase', 'add_to_cart', 'remove_from_cart', 'click', 'impression', 'hide')),
    user_id           text NOT NULL,
    store_id          text NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    -- single-item events
    item_id           text,
    quantity          integer CHECK (quantity > 0),
    -- purchases: the order and its lines
    order_id          text,
    line_item_ids     text[],
    line_quantities   integer[],
    line_unit_prices  numeric(10, 2)[],
    -- feed tracking (impressions, clicks)
    feed_id           text,
    section           text,
    position          integer,
    CHECK (cardinality(line_item_ids) = cardinality(line_quantities)),
    CHECK (cardinality(line_item_ids) = cardinality(line_unit_prices))
) PARTITION BY RANGE (occurred_at);
CREATE INDEX events_user_time_idx ON events (user_id, occurred_at DESC);

-- One row per stored event: the arbiter of "stored once". BRIN keeps retention deletes cheap.
CREATE TABLE event_ids (
    event_id     uuid PRIMARY KEY,
    occurred_at  timestamptz NOT NULL
);
CREATE INDEX event_ids_occurred_brin ON event_ids USING brin (occurred_at);

-- Monthly partitions for the months that already hold events.
DO $$
DECLARE
    month date;
BEGIN
    FOR month IN
        SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date FROM events_v1
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
            'events_' || to_char(month, 'YYYY_MM'),
            (month::timestamp AT TIME ZONE 'UTC'),
            ((month + interval '1 month')::timestamp AT TIME ZONE 'UTC'));
    END LOOP;
END $$;

INSERT INTO events (event_id, occurred_at, event_type, user_id, store_id, received_at, item_id, order_id,
                    line_item_ids, line_quantities, line_unit_prices, feed_id, section, position)
SELECT e.event_id, e.occurred_at, e.event_type, e.user_id, e.store_id, e.received_at, e.item_id, e.order_id,
       l.item_ids, l.quantities, l.unit_prices, e.feed_id, e.section, e.position
FROM events_v1 e
LEFT JOIN LATERAL (
    SELECT array_agg(item_id ORDER BY line_no) AS item_ids,
           array_agg(quantity ORDER BY line_no) AS quantities,
           array_agg(unit_price ORDER BY line_no) AS unit_prices
    FROM purchase_lines_v1 pl
    WHERE pl.event_id = e.event_id
) l ON e.event_type = 'purchase';

INSERT INTO event_ids (event_id, occurred_at) SELECT event_id, occurred_at FROM events_v1;

DROP TABLE purchase_lines_v1;
DROP TABLE events_v1;

-- Every (event, item) interaction in one shape, for the scoring SQL.
CREATE VIEW event_items AS
SELECT e.event_id, e.event_type, e.user_id, e.store_id, e.occurred_at, e.item_id,
       coalesce(e.quantity, 1) AS quantity
FROM events e
WHERE e.event_type <> 'purchase'
UNION ALL
SELECT e.event_id, e.event_type, e.user_id, e.store_id, e.occurred_at, line.item_id, line.quantity
FROM events e
CROSS JOIN LATERAL unnest(e.line_item_ids, e.line_quantities) AS line (item_id, quantity)
WHERE e.event_type = 'purchase';
