-- The recompute repacks the scores of a share of the shelves in one statement: each listed store's scores computed
-- by a lateral join to store_shelf_scores, one store after the other as before, in one UPDATE. The join hashes the
-- catalog's shelf positions (the same for every store) and keeps the hash table from one store to the next, where
-- migration 0052's loop ran one UPDATE a store and hashed them in each. The same bytes: each shelf is packed by the
-- same function over the same rows (a share's shelves now from one snapshot, and no other writer changes
-- item_popularity while the run holds the recompute lock). A shelf not repacked (its pack missing, stale, over
-- another catalog, or over another catalog than the positions) is packed whole after the statement, as before.
-- Repacking the 21 shelves of the recompute bench's database (two shares, rolled back, interleaved): 27.7-29.0 ->
-- 25.7-25.9 ms a shelf (medians).
--
-- Code from before this migration calls this function alone. repack_store_shelf_scores (migration 0088), which
-- this function no longer calls, stays for a run that packs while this migration is applied: a later release
-- drops it.
CREATE OR REPLACE FUNCTION repack_store_shelves_scores(p_store_ids text[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_store record;
    v_packed integer := 0;
BEGIN
    FOR v_store IN
        WITH listed AS (
            SELECT store_id, true AS known FROM stores WHERE store_id = ANY (p_store_ids)
            UNION ALL
            SELECT '*', false WHERE '*' = ANY (p_store_ids)
        ),
        repacked AS (
            UPDATE store_shelves s
            SET packed_at = clock_timestamp(), popularity = sc.popularity, trending = sc.trending,
                trending_items = sc.trending_items, popular_items = sc.popular_items, aisle_items = sc.aisle_items,
                aisle_sizes = sc.aisle_sizes
            FROM listed l CROSS JOIN LATERAL store_shelf_scores(l.store_id) sc
            WHERE s.store_id = l.store_id AND NOT s.stale AND s.catalog_version = (SELECT version FROM catalog_state)
              AND s.catalog_version = (SELECT catalog_version FROM shelf_positions LIMIT 1)
            RETURNING s.store_id
        )
        SELECT l.store_id, l.known, r.store_id IS NOT NULL AS repacked
        FROM listed l LEFT JOIN repacked r ON r.store_id = l.store_id
    LOOP
        IF NOT v_store.repacked THEN
            PERFORM pack_store_shelf(v_store.store_id, v_store.known);
        END IF;
        v_packed := v_packed + 1;
    END LOOP;
    RETURN v_packed;
END
$$;
