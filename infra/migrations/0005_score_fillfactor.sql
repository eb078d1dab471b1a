-- Score rows are updated in place by every run that touches them: leave room in each page so that updates
-- which change no indexed column stay on the page (HOT) instead of adding index entries.
ALTER TABLE user_item_affinity SET (fillfactor = 70);
ALTER TABLE user_category_affinity SET (fillfactor = 70);
ALTER TABLE item_popularity SET (fillfactor = 70);
