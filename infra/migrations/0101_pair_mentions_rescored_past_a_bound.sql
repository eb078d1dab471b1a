-- A run rescores the rows of other items' bought-together lists that name an item X (item_pairs.paired_item_id = X)
-- only once X's basket count has grown past SCORING_PAIRS_RESCORE_BOUND since they were last rescored for X
-- (feedcore.db.scores): X's own list has at most SCORING_PAIRS_TOP_K rows, but a popular item is named in many
-- lists, and rescoring all of them on every run that touches X made the run's cost grow with the history (the
-- recompute bench: 48 rows at 0.5M events of history, 20,362 at 4M).
--
-- mentions_basket_raw: X's basket_raw (epoch-relative, like it; a rebase moves both) when the rows naming X were last
-- rescored. Every such row was scored with a basket count of X between it and basket_raw, so its score is at most
-- sqrt(basket_raw / mentions_basket_raw) too high. 0: not rescored under a bound yet, so the next run touching X
-- rescores them (a constant default: the column is added without rewriting the table). Code from before this
-- migration (running while a deploy migrates, or after a rollback) rescores every row of every item it touches and
-- inserts its items and its rebuilt copies (LIKE, with the default) without this column: 0, which is safe.
-- item_baskets is owned by feed_recompute_scores (migration 0061), which the migrating user is a member of; only the
-- recompute reads or writes it.
-- A full rebuild running meanwhile copies item_baskets (LIKE) before this commits and swaps its copy in after: the
-- column would go with the table the swap drops. Every recompute run holds the recompute's advisory lock
-- (feedcore.db.scores.RECOMPUTE_LOCK_KEY) for its whole transaction, a rebuild's too: this waits for a run in progress
-- and keeps the next ones out (they skip) until it commits.
SELECT pg_advisory_xact_lock(7246201118);
ALTER TABLE item_baskets ADD COLUMN mentions_basket_raw double precision NOT NULL DEFAULT 0;
