-- "Bought together": item × item co-occurrence in purchase baskets (one purchase event is one basket),
-- maintained by the same incremental recompute as the other signals, with the same epoch-relative decay:
-- raw = Σ 2^((occurred_at − epoch) / half-life) over the baskets.
-- The counts compare item ids byte-wise (COLLATE "C"): they hold millions of pairs, which a rebuild sorts and
-- indexes, and a locale's comparisons cost several times as much. item_pairs, which the feed joins to the
-- catalog, keeps the default collation so that those joins can use the catalog's indexes.

-- Per item: the baskets that hold it (decayed), the denominator of the pair scores.
CREATE TABLE item_baskets (
    item_id       text COLLATE "C" PRIMARY KEY,
    basket_raw    double precision NOT NULL,
    basket_count  bigint NOT NULL
) WITH (fillfactor = 70);

-- Per unordered pair (item_id < paired_item_id): the baskets holding both, decayed and counted. Every pair
-- seen is kept, also below the minimum support, so that a run knows when a pair reaches it.
CREATE TABLE item_pair_counts (
    item_id         text COLLATE "C" NOT NULL,
    paired_item_id  text COLLATE "C" NOT NULL,
    pair_raw        double precision NOT NULL,
    pair_count      bigint NOT NULL,
    PRIMARY KEY (item_id, paired_item_id),
    CHECK (item_id < paired_item_id)
) WITH (fillfactor = 70);

-- What the feed reads: for each item, the items most often bought with it (both directions of each pair
-- that has the minimum support), score = cosine of the two items' basket vectors, in [0, 1]:
--   SELECT … FROM item_pairs WHERE item_id = ANY(%s) ORDER BY score DESC
-- pair_raw is kept here so that a run rescores the rows of the items it touched without other lookups.
CREATE TABLE item_pairs (
    item_id         text NOT NULL,
    paired_item_id  text NOT NULL,
    pair_raw        double precision NOT NULL,
    score           double precision NOT NULL,
    PRIMARY KEY (item_id, paired_item_id)
);
CREATE INDEX item_pairs_rank_idx ON item_pairs (item_id, score DESC);
-- A run rescores the rows pointing at the items it touched.
CREATE INDEX item_pairs_paired_idx ON item_pairs (paired_item_id);
