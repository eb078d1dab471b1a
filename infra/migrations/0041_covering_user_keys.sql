-- The feed reads all of a user's item and aisle rows on every first page (feed_user_rows). Spread over the
-- heap, each row sat on its own page (~65 + ~45 page reads, mostly not in shared buffers: ~1.8 ms). The
-- primary keys now carry the columns the feed reads, so those reads are index-only scans of a few adjacent
-- leaf pages (~0.1 ms each). The price: the keys are larger (user x item 106 -> ~256 MB, user x category
-- 153 -> ~180 MB at 2M events), and an upsert that changes a score writes a new index entry (no HOT update).
-- Autovacuum is asked to visit sooner, so that the visibility map lets the scans skip the heap.
ALTER TABLE user_item_affinity
    DROP CONSTRAINT user_item_affinity_pkey,
    ADD CONSTRAINT user_item_affinity_pkey PRIMARY KEY (user_id, item_id)
        INCLUDE (purchase_count, first_purchased_at, last_purchased_at, purchase_raw, affinity_raw, hidden,
                 last_hidden_at),
    SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.02);

ALTER TABLE user_category_affinity
    DROP CONSTRAINT user_category_affinity_pkey,
    ADD CONSTRAINT user_category_affinity_pkey PRIMARY KEY (user_id, level, category) INCLUDE (raw_score),
    SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.02);
