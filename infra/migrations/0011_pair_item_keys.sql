-- Bought-together counts by integer item keys instead of text ids: item_pair_counts holds a row for every
-- pair ever bought together (millions, nearly all below the minimum support), and a full rebuild counts,
-- sorts and indexes all of them. Two integers make a narrower row, half the index entry and cheaper hashing
-- and comparisons than two text ids.

-- Each item that has been in a basket gets a key, in item_baskets (which has a row for every such item).
-- The sequence is not owned by the table, so it outlives the full rebuild's swap of the table; the rebuild
-- restarts it, as it numbers every item afresh.
CREATE SEQUENCE item_key_seq AS integer;
ALTER TABLE item_baskets ADD COLUMN item_key integer NOT NULL DEFAULT nextval('item_key_seq');

CREATE TABLE item_pair_counts_by_key (
    item_key         integer NOT NULL,
    paired_item_key  integer NOT NULL,
    pair_raw         double precision NOT NULL,
    pair_count       bigint NOT NULL,
    PRIMARY KEY (item_key, paired_item_key),
    CHECK (item_key < paired_item_key)
) WITH (fillfactor = 70);

INSERT INTO item_pair_counts_by_key (item_key, paired_item_key, pair_raw, pair_count)
SELECT least(a.item_key, b.item_key), greatest(a.item_key, b.item_key), c.pair_raw, c.pair_count
FROM item_pair_counts c
JOIN item_baskets a ON a.item_id = c.item_id
JOIN item_baskets b ON b.item_id = c.paired_item_id;

DROP TABLE item_pair_counts;
ALTER TABLE item_pair_counts_by_key RENAME TO item_pair_counts;
ALTER INDEX item_pair_counts_by_key_pkey RENAME TO item_pair_counts_pkey;
ALTER TABLE item_pair_counts RENAME CONSTRAINT item_pair_counts_by_key_check TO item_pair_counts_check;
