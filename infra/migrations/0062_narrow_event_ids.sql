-- event_ids, the arbiter of "stored once", carries only the event_id: every batch writes a row and a primary-key
-- entry there, and its occurred_at (and the BRIN index over it) served nothing but retention's delete of the
-- dropped months' ids. Without them the COPY of a batch's 500 ids costs ~0.7–0.8 ms less of the server's CPU
-- (2.8–3.3 → 2.1–2.5 ms a batch into a table growing to 100,000 rows, measured 2026-11-27).
--
-- Retention now finds the dropped months' ids through the events themselves, before dropping them; an erased
-- user's events are gone from the log while their ids stay (a late retry of one is a duplicate), so the erasure
-- keeps each id with its time in erased_event_ids, where retention finds those of the dropped months.
--
-- occurred_at stays in event_ids, nullable and no longer written, for the code deployed before this migration:
-- it keeps running while this is applied (and again after a rollback) and writes it. It can go once no older
-- code can run. (An erasure such older code makes does not record its ids here: they outlive their month.)

CREATE TABLE erased_event_ids (
    event_id     uuid NOT NULL,
    occurred_at  timestamptz NOT NULL
);
CREATE INDEX erased_event_ids_occurred_idx ON erased_event_ids (occurred_at);

-- The ids of events erased before now: in event_ids, and no longer in the log.
INSERT INTO erased_event_ids (event_id, occurred_at)
SELECT i.event_id, i.occurred_at
FROM event_ids i
WHERE NOT EXISTS (SELECT FROM events e WHERE e.event_id = i.event_id);

DROP INDEX event_ids_occurred_brin;
ALTER TABLE event_ids ALTER COLUMN occurred_at DROP NOT NULL;

-- grant_function_privileges (migration 0061) knows none of these; grants stay with their tables.
-- Retention: the dropped months' ids, found by event_id, and the erased ones among them.
GRANT SELECT (event_id) ON event_ids TO feed_recompute_scores;
GRANT SELECT, DELETE ON erased_event_ids TO feed_recompute_scores;
-- Erasure: the user's events deleted, their ids and times kept.
GRANT SELECT (event_id, occurred_at) ON events TO feed_ingest_events;
GRANT INSERT ON erased_event_ids TO feed_ingest_events;
