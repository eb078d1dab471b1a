-- A database role per Lambda function, with the privileges its statements need and no more. Each is a group
-- role (NOLOGIN): the stack creates one login user per function and grants it its role (feedcore.db.roles,
-- run by the schema custom resource), and the function logs in as that user through RDS Proxy. The migrating
-- user (the stack's master user; locally the superuser) keeps owning the schema and runs its DDL.
--
--   feed_ingest_queue      IngestQueueFunction: stores event batches (events, event_ids; the catalog looked
--                          up for unknown items); creates a month's partition when it finds none
--   feed_ingest_events     IngestEventsFunction: all of feed_ingest_queue, and the admin routes: catalog,
--                          availability (and its store's packed shelf), erasure of a user
--   feed_assemble_feed     AssembleFeedFunction: reads the catalog, shelves and the user's rows; records
--                          feeds and their snapshots, reads snapshots back for later pages
--   feed_recompute_shards  RecomputeShardFunction: scores a user shard of a fanned-out chunk into the per-user
--                          tables, and marks the shard done
--   feed_recompute_scores  RecomputeScoresFunction: all of feed_recompute_shards, and the scheduled run: the
--                          watermark, item-level scores, fan-out chunks, the full rebuild (which drops and
--                          recreates the score tables it owns), shelves, model score import, snapshot expiry
--                          and retention
--
-- Roles are global to the server: created once, whichever database migrates first. The privileges are in
-- grant_function_privileges(), which the migrator calls after every run (feedcore.db.migrations): a table a
-- later migration creates (item_reorders, 0071, which a new database creates after this migration) gets its
-- owner and grants there. A migration that adds a table or changes what a function does replaces that
-- function (and revokes, itself, what a role no longer needs).

DO $$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['feed_ingest_queue', 'feed_ingest_events', 'feed_assemble_feed',
                                  'feed_recompute_shards', 'feed_recompute_scores']
    LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = v_role) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
        END IF;
    END LOOP;
END
$$;

GRANT feed_ingest_queue TO feed_ingest_events;
GRANT feed_recompute_shards TO feed_recompute_scores;
-- The recompute reads the start of the oldest open transaction of every session (the scan bound of the next
-- run); a role sees other users' sessions in pg_stat_activity only with pg_read_all_stats, which would also
-- show it every session's statements (a login user's password verifier among them). This function, run as
-- the migrating user (on RDS, rds_superuser holds pg_monitor), returns that one instant and nothing else.
CREATE FUNCTION oldest_transaction_start() RETURNS timestamptz
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT min(xact_start) FROM pg_catalog.pg_stat_activity
$$;
REVOKE EXECUTE ON FUNCTION oldest_transaction_start() FROM PUBLIC;
-- The score tables pass to feed_recompute_scores; giving a table to a role takes being able to act as it
-- (the master user of RDS is no superuser), and later migrations of these tables run as the migrating user.
GRANT feed_recompute_scores TO CURRENT_USER;

CREATE FUNCTION grant_function_privileges() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_object record;
BEGIN
    -- The full rebuild fills fresh copies of the score tables, drops the live ones and renames the copies in
    -- (DDL: the owner's), and restarts item_key_seq in the same transaction (ALTER SEQUENCE: the owner's).
    -- The copies take the live table's owner and privileges (feedcore.db.scores.start_rebuild). They are
    -- created in the schema, where an owner needs that privilege anyway.
    GRANT CREATE ON SCHEMA public TO feed_recompute_scores;
    FOR v_object IN
        SELECT name FROM unnest(ARRAY['item_popularity', 'user_item_affinity', 'user_category_affinity',
                                      'user_orders', 'item_reorders', 'item_baskets', 'item_pair_counts',
                                      'item_pairs']) AS owned (name)
        -- only where the owner differs: ALTER … OWNER takes an exclusive lock on the table even when it changes
        -- nothing, and this runs at every deploy (the feed reads these tables)
        WHERE to_regclass(name) IS NOT NULL
          AND (SELECT relowner FROM pg_class WHERE oid = to_regclass(name)) <> 'feed_recompute_scores'::regrole
    LOOP
        EXECUTE format('ALTER TABLE %I OWNER TO feed_recompute_scores', v_object.name);
    END LOOP;
    IF (SELECT relowner FROM pg_class WHERE oid = 'item_key_seq'::regclass) <> 'feed_recompute_scores'::regrole THEN
        ALTER SEQUENCE item_key_seq OWNER TO feed_recompute_scores;
    END IF;

    FOR v_object IN
        SELECT g.role, g.privileges, g.object
        FROM (VALUES
            -- storing a batch: COPY or INSERT … RETURNING event_id; the ids that decide "stored once"
            ('feed_ingest_queue', 'INSERT, SELECT (event_id)', 'events'),
            ('feed_ingest_queue', 'SELECT (event_id), INSERT', 'event_ids'),
            ('feed_ingest_queue', 'SELECT (item_id)', 'items'),  -- which of the batch's items are unknown

            -- catalog route: the upsert, and the trigger that moves the catalog's version
            ('feed_ingest_events', 'SELECT, INSERT, UPDATE', 'items'),
            ('feed_ingest_events', 'SELECT, UPDATE', 'catalog_state'),
            -- availability route: the store, its rows, and its packed shelf (pack_store_shelves reads the
            -- catalog, the store's availability and popularity; the triggers mark packs stale)
            ('feed_ingest_events', 'SELECT, INSERT, UPDATE', 'stores'),
            ('feed_ingest_events', 'SELECT, INSERT, UPDATE', 'store_availability'),
            ('feed_ingest_events', 'SELECT, INSERT, UPDATE', 'store_shelves'),
            ('feed_ingest_events', 'SELECT', 'item_popularity'),
            -- erasure: the user's rows found by user_id, deleted, and the erasure remembered (an upsert: its
            -- conflict check reads user_id); its waits: the advisory locks, and a row lock on the user's open
            -- shard (FOR UPDATE needs UPDATE on a column: sent_at, whose worst misuse delays a lost shard
            -- message's resend)
            ('feed_ingest_events', 'SELECT (user_id), DELETE', 'events'),
            ('feed_ingest_events', 'SELECT (user_id), DELETE', 'users'),
            ('feed_ingest_events', 'SELECT (user_id), DELETE', 'user_item_affinity'),
            ('feed_ingest_events', 'SELECT (user_id), DELETE', 'user_category_affinity'),
            ('feed_ingest_events', 'SELECT (user_id), DELETE', 'user_orders'),
            ('feed_ingest_events', 'SELECT (user_id), DELETE', 'model_scores'),
            ('feed_ingest_events', 'SELECT (user_id), DELETE', 'feeds'),
            ('feed_ingest_events', 'SELECT (user_id), DELETE', 'feed_snapshots'),
            ('feed_ingest_events', 'SELECT (user_id), INSERT (user_id), UPDATE (erased_at)', 'user_erasures'),
            ('feed_ingest_events', 'SELECT (chunk_id, shard_count)', 'score_chunks'),
            ('feed_ingest_events', 'SELECT (chunk_id, shard), UPDATE (sent_at)', 'score_shards'),

            -- the store's shelf (packed, or its rows), the catalog, item-level model scores
            ('feed_assemble_feed', 'SELECT', 'items'),
            ('feed_assemble_feed', 'SELECT', 'catalog_state'),
            ('feed_assemble_feed', 'SELECT', 'stores'),
            ('feed_assemble_feed', 'SELECT', 'store_shelves'),
            ('feed_assemble_feed', 'SELECT', 'store_availability'),
            ('feed_assemble_feed', 'SELECT', 'item_popularity'),
            ('feed_assemble_feed', 'SELECT', 'model_scores'),
            -- feed_user_rows (runs as the caller): recent events, history, aisles, pairs, orders, reorders
            ('feed_assemble_feed', 'SELECT', 'events'),
            ('feed_assemble_feed', 'SELECT', 'user_item_affinity'),
            ('feed_assemble_feed', 'SELECT', 'user_category_affinity'),
            ('feed_assemble_feed', 'SELECT', 'item_pairs'),
            ('feed_assemble_feed', 'SELECT', 'user_orders'),
            ('feed_assemble_feed', 'SELECT', 'item_reorders'),
            -- recording a feed (no RETURNING: it never reads feeds back); later pages read the snapshot
            ('feed_assemble_feed', 'INSERT', 'feeds'),
            ('feed_assemble_feed', 'SELECT, INSERT', 'feed_snapshots'),

            -- a shard: its chunk's events of its users into the per-user tables, new users, the shard row
            ('feed_recompute_shards', 'SELECT', 'events'),
            ('feed_recompute_shards', 'SELECT', 'items'),
            ('feed_recompute_shards', 'SELECT, INSERT', 'users'),
            ('feed_recompute_shards', 'SELECT, INSERT, UPDATE', 'user_item_affinity'),
            ('feed_recompute_shards', 'SELECT, INSERT, UPDATE', 'user_category_affinity'),
            ('feed_recompute_shards', 'SELECT, INSERT, UPDATE', 'user_orders'),
            ('feed_recompute_shards', 'SELECT', 'score_chunks'),
            ('feed_recompute_shards', 'SELECT, UPDATE (done_at, affinity_updates, category_updates)', 'score_shards'),

            -- the watermark (read FOR UPDATE), runs, fan-out chunks and their shards (the score tables: owned)
            ('feed_recompute_scores', 'SELECT, INSERT, UPDATE', 'score_state'),
            ('feed_recompute_scores', 'SELECT (run_id), INSERT', 'score_runs'),
            ('feed_recompute_scores', 'SELECT, INSERT, DELETE', 'score_chunks'),
            ('feed_recompute_scores', 'SELECT, INSERT, UPDATE (sent_at)', 'score_shards'),  -- a message (re)sent
            -- packing every store's shelf
            ('feed_recompute_scores', 'SELECT', 'stores'),
            ('feed_recompute_scores', 'SELECT', 'store_availability'),
            ('feed_recompute_scores', 'SELECT', 'catalog_state'),
            ('feed_recompute_scores', 'SELECT, INSERT, UPDATE', 'store_shelves'),
            -- model score import: a model's rows replaced (less those of users erased since), its version recorded
            ('feed_recompute_scores', 'SELECT (model, user_id), INSERT, DELETE', 'model_scores'),
            ('feed_recompute_scores', 'SELECT', 'user_erasures'),
            ('feed_recompute_scores', 'SELECT, INSERT, UPDATE', 'model_versions'),
            -- expired snapshots; retention: the event ids and feed records of the dropped months
            ('feed_recompute_scores', 'SELECT (expires_at), DELETE', 'feed_snapshots'),
            ('feed_recompute_scores', 'SELECT (created_at), DELETE', 'feeds'),
            ('feed_recompute_scores', 'SELECT (occurred_at), DELETE', 'event_ids')
        ) AS g (role, privileges, object)
        WHERE to_regclass(g.object) IS NOT NULL
    LOOP
        EXECUTE format('GRANT %s ON TABLE %I TO %I', v_object.privileges, v_object.object, v_object.role);
    END LOOP;

    -- A batch's months, this and next month ahead; retention's drops.
    GRANT EXECUTE ON FUNCTION create_event_partition(date) TO feed_ingest_queue, feed_recompute_scores;
    GRANT EXECUTE ON FUNCTION oldest_transaction_start() TO feed_recompute_scores;
    GRANT EXECUTE ON FUNCTION drop_event_partition(regclass) TO feed_recompute_scores;
END
$$;
REVOKE EXECUTE ON FUNCTION grant_function_privileges() FROM PUBLIC;
