-- Retention deletes expired event ids and old feed records a range of blocks at a time (a TID range scan reads
-- exactly those blocks, however late events and reused pages have widened the BRIN indexes' ranges), which
-- names the tables' ctid: the recompute's role (0061) may read that column too.
GRANT SELECT (ctid) ON TABLE event_ids, feeds TO feed_recompute_scores;
