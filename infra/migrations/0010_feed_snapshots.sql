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
