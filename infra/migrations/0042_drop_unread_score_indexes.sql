-- Indexes nothing reads any more: the feed reads a user's purchases from the covering primary key
-- (feed_user_rows, migration 0041) and each store's popularity from its packed shelf (0040) or by the
-- primary key's store prefix. Every rebuild built them and every upsert wrote to them (the covering keys
-- already made the user rows' updates non-HOT, the trending index the popularity rows').
DROP INDEX user_item_purchases_idx;
DROP INDEX item_popularity_rank_idx;
