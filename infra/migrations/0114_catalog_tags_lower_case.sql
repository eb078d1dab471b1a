-- Catalog tags are case-insensitive: the catalog route stores them in lower case and the feed lowers its
-- exclude_tags (before, `alcohol` did not exclude an item tagged `Alcohol`). Lower the tags stored before. Tags
-- are ASCII letters, digits, `_` and `-` (the route's pattern), so lower() does not depend on the locale. The
-- update moves the catalog's version (trigger of 0040): containers read the catalog again.
UPDATE items
SET tags = ARRAY(SELECT lower(tag) FROM unnest(tags) WITH ORDINALITY AS t (tag, position) ORDER BY position)
WHERE tags::text <> lower(tags::text);
