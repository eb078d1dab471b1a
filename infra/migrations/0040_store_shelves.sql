-- Packed store shelves: what a feed container keeps of a store, ready-made, so that reloading it is one row.
--
-- Positions are an item's place in the catalog ordered by item_id (0-based), the order in which the feed
-- reads the catalog. `catalog_state.version` changes with every transaction that writes `items`, so a shelf
-- packed over another catalog is never read against this one. A pack holds, per position:
--   available   one byte (1: the store sells it); NULL for '*', the shelf of a store the catalog lacks
--   prices      the store's shelf price, float8 (NaN: none, the catalog price applies)
--   popularity  the store's raw popularity, float8 (0 without any)
--   trending    its trending score, float8 (0 without any)
-- and ranked lists of positions (int4), best first, ties by position:
--   trending_items  items with a trending score above 0
--   popular_items   items with a popularity row
--   aisle_items     active items with a popularity row, grouped by aisle (in aisle order) and ranked within
--   aisle_sizes     how many of aisle_items each aisle holds, in the same order
-- All numbers in network byte order (float8send, int4send). The recompute packs every store after each run,
-- the catalog and availability routes the stores they change; any other write of a store's availability
-- marks its pack stale (statement triggers), and the feed then reads the store's rows instead.

CREATE TABLE catalog_state (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version     bigint NOT NULL,
    changed_by  xid8  -- the last transaction that moved the version: it moves once per transaction
);
INSERT INTO catalog_state (version) VALUES (1);

CREATE FUNCTION bump_catalog_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_state SET version = version + 1, changed_by = pg_current_xact_id()
    WHERE changed_by IS DISTINCT FROM pg_current_xact_id();
    RETURN NULL;
END
$$;

CREATE TRIGGER items_change_the_catalog_version
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON items
FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();

CREATE TABLE store_shelves (
    store_id         text PRIMARY KEY,
    store_known      boolean NOT NULL,
    catalog_version  bigint NOT NULL,
    packed_at        timestamptz NOT NULL,
    stale            boolean NOT NULL DEFAULT false,
    available        bytea,
    prices           bytea NOT NULL,
    popularity       bytea NOT NULL,
    trending         bytea NOT NULL,
    trending_items   bytea NOT NULL,
    popular_items    bytea NOT NULL,
    aisle_items      bytea NOT NULL,
    aisle_sizes      bytea NOT NULL
);
-- Numbers do not compress: keep them out of line without trying.
ALTER TABLE store_shelves
    ALTER COLUMN available SET STORAGE EXTERNAL, ALTER COLUMN prices SET STORAGE EXTERNAL,
    ALTER COLUMN popularity SET STORAGE EXTERNAL, ALTER COLUMN trending SET STORAGE EXTERNAL,
    ALTER COLUMN trending_items SET STORAGE EXTERNAL, ALTER COLUMN popular_items SET STORAGE EXTERNAL,
    ALTER COLUMN aisle_items SET STORAGE EXTERNAL;

CREATE FUNCTION mark_store_shelves_stale() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE store_shelves SET stale = true
    WHERE NOT stale AND store_id IN (SELECT DISTINCT store_id FROM changed_rows);
    RETURN NULL;
END
$$;

CREATE FUNCTION mark_every_store_shelf_stale() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE store_shelves SET stale = true WHERE NOT stale;
    RETURN NULL;
END
$$;

-- A trigger with transition tables takes one event.
CREATE TRIGGER store_availability_inserted AFTER INSERT ON store_availability
REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION mark_store_shelves_stale();
CREATE TRIGGER store_availability_updated AFTER UPDATE ON store_availability
REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION mark_store_shelves_stale();
CREATE TRIGGER store_availability_deleted AFTER DELETE ON store_availability
REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION mark_store_shelves_stale();
CREATE TRIGGER store_availability_truncated AFTER TRUNCATE ON store_availability
FOR EACH STATEMENT EXECUTE FUNCTION mark_every_store_shelf_stale();

-- Pack the shelf of one store (`p_known`: the catalog knows it; '*' is the shelf over all stores), over the
-- current catalog: the store's rows are range scans in item_id order, merged with the catalog's.
CREATE FUNCTION pack_store_shelf(p_store_id text, p_known boolean) RETURNS void
LANGUAGE sql AS $$
    WITH catalog AS (
        SELECT item_id, aisle, active, (row_number() OVER (ORDER BY item_id) - 1)::integer AS position FROM items
    ),
    facts AS MATERIALIZED (
        SELECT c.position, c.aisle, c.active, sa.available, sa.price::float8 AS shelf_price, p.raw_score,
               p.trending_score
        FROM catalog c
        LEFT JOIN store_availability sa ON p_known AND sa.store_id = p_store_id AND sa.item_id = c.item_id
        LEFT JOIN item_popularity p ON p.store_id = p_store_id AND p.item_id = c.item_id
    ),
    dense AS (
        SELECT CASE WHEN p_known THEN
                   string_agg(CASE WHEN available THEN '\x01'::bytea ELSE '\x00'::bytea END, ''::bytea ORDER BY position)
               END AS available,
               string_agg(float8send(coalesce(shelf_price, 'NaN')), ''::bytea ORDER BY position) AS prices,
               string_agg(float8send(coalesce(raw_score, 0)), ''::bytea ORDER BY position) AS popularity,
               string_agg(float8send(coalesce(trending_score, 0)), ''::bytea ORDER BY position) AS trending,
               coalesce(string_agg(int4send(position), ''::bytea ORDER BY trending_score DESC, position)
                        FILTER (WHERE trending_score > 0), ''::bytea) AS trending_items,
               coalesce(string_agg(int4send(position), ''::bytea ORDER BY raw_score DESC, position)
                        FILTER (WHERE raw_score IS NOT NULL), ''::bytea) AS popular_items
        FROM facts
    ),
    per_aisle AS (
        SELECT aisle, count(*)::integer AS size,
               string_agg(int4send(position), ''::bytea ORDER BY raw_score DESC, position) AS items
        FROM facts
        WHERE active AND raw_score IS NOT NULL
        GROUP BY aisle
    ),
    aisles AS (
        SELECT coalesce(string_agg(items, ''::bytea ORDER BY aisle), ''::bytea) AS aisle_items,
               coalesce(string_agg(int4send(size), ''::bytea ORDER BY aisle), ''::bytea) AS aisle_sizes
        FROM per_aisle
    )
    INSERT INTO store_shelves AS s (
        store_id, store_known, catalog_version, packed_at, stale, available, prices, popularity, trending,
        trending_items, popular_items, aisle_items, aisle_sizes
    )
    SELECT p_store_id, p_known, (SELECT version FROM catalog_state), clock_timestamp(), false, d.available,
           coalesce(d.prices, ''::bytea), coalesce(d.popularity, ''::bytea), coalesce(d.trending, ''::bytea),
           d.trending_items, d.popular_items, a.aisle_items, a.aisle_sizes
    FROM dense d CROSS JOIN aisles a
    ON CONFLICT (store_id) DO UPDATE SET
        store_known = excluded.store_known, catalog_version = excluded.catalog_version,
        packed_at = excluded.packed_at, stale = false, available = excluded.available, prices = excluded.prices,
        popularity = excluded.popularity, trending = excluded.trending,
        trending_items = excluded.trending_items, popular_items = excluded.popular_items,
        aisle_items = excluded.aisle_items, aisle_sizes = excluded.aisle_sizes;
$$;

-- Pack the shelves of `p_store_ids` (NULL: every store and '*'); returns how many. A store the catalog does
-- not know is left out (its requests read '*').
CREATE FUNCTION pack_store_shelves(p_store_ids text[] DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_store record;
    v_packed integer := 0;
BEGIN
    FOR v_store IN
        SELECT store_id, true AS known FROM stores WHERE p_store_ids IS NULL OR store_id = ANY (p_store_ids)
        UNION ALL
        SELECT '*', false WHERE p_store_ids IS NULL OR '*' = ANY (p_store_ids)
    LOOP
        PERFORM pack_store_shelf(v_store.store_id, v_store.known);
        v_packed := v_packed + 1;
    END LOOP;
    RETURN v_packed;
END
$$;

SELECT pack_store_shelves();
