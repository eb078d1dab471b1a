-- A whole pack of a store's shelf waits for a pending write of the store's availability, then reads the store's rows.
--
-- The availability route writes the store's rows (whose trigger marks the shelf stale: that locks the shelf's row),
-- packs the shelf and commits. A recompute that packs the same store whole meanwhile (its pack is over an older
-- catalog, as every pack is after a catalog write, or stale) read the rows before that commit, waited for the row's
-- lock at its write, then wrote its older pack over the route's: the store's feed went on showing the old
-- availability and prices, and later runs, which repack only the scores of a current pack, kept them (tested:
-- tests/integration/test_store_shelf_packing.py). Now a whole pack first locks the shelf's row, then reads the rows
-- in a statement of its own, which in READ COMMITTED sees what the write it waited for committed. The route, which
-- holds that lock already, takes it again at no cost; a run locks one store's row after another in its share's
-- transaction, as its write locked it before, so nothing waits longer than it did. A store without a shelf row yet
-- has nothing to lock (the route packs every store it writes, and the recompute packs every store after each run).
-- Code from before this migration keeps calling pack_store_shelf and packs the same shelves, now locked first.
ALTER FUNCTION pack_store_shelf(text, boolean) RENAME TO pack_store_shelf_unlocked;

CREATE FUNCTION pack_store_shelf(p_store_id text, p_known boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM FROM store_shelves WHERE store_id = p_store_id FOR NO KEY UPDATE;
    -- a statement of its own: its snapshot is taken once the lock is held
    PERFORM pack_store_shelf_unlocked(p_store_id, p_known);
END
$$;
