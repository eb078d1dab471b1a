"""Each function logged in as a user of its own database role (migration 0061), as in the stack: the handlers
work end to end with exactly those privileges, and each role is refused what its function never does."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import boto3
import psycopg
import pytest
from moto import mock_aws
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from feedcore.db import events as events_db
from feedcore.db import scores as scores_db
from feedcore.db.connection import run
from feedcore.db.migrations import migrate
from feedcore.db.roles import FUNCTION_ROLES, LoginUser, ensure_login_user
from feedcore.db.scores import SCORE_TABLES
from feedcore.errors import ConfigurationError
from feedlocal.aws_local import deliver_queue_batch
from feedlocal.embedded import MIGRATIONS_DIR, embedded_server
from tests.aws_events import (
    REGION,
    SERVICE_CLAIMS,
    LambdaContext,
    api_gateway_rest_event,
    cognito_claims,
    eventbridge_scheduled_event,
)
from tests.conftest import load_function, use_database
from tests.factories import NOW, STORE, create_catalog, event, purchase, record
from tests.integration.test_model_scores import BUCKET, s3, upload  # noqa: F401 (the s3 fixture)
from tests.integration.test_recompute_fanout import SHARDS, ShardQueue, shard_queue_env  # noqa: F401 (fixture)

ingest = load_function("ingest_events")
assemble = load_function("assemble_feed")
recompute = load_function("recompute_scores")


@pytest.fixture(scope="module")
def function_users(database_url: str, rds_iam: str) -> Iterator[dict[str, str]]:
    """A login user per function role, made as the stack makes them (feedcore.db.roles); their URLs by role (the
    test server lets them in without the IAM token RDS would ask for)."""
    suffix = uuid.uuid4().hex[:6]
    users = {role: f"{role.removeprefix('feed_')}_{suffix}" for role in FUNCTION_ROLES}
    with psycopg.connect(database_url, autocommit=True) as admin:
        for role, name in users.items():
            ensure_login_user(admin, LoginUser(name, role))
    yield {role: make_conninfo(database_url, user=name) for role, name in users.items()}
    with psycopg.connect(database_url, autocommit=True) as admin:
        for name in users.values():
            admin.execute(f'DROP OWNED BY "{name}"')
            admin.execute(f'DROP ROLE "{name}"')


@contextmanager
def logged_in_as(function_users: dict[str, str], role: str, database_url: str) -> Iterator[None]:
    """feedcore's connections (this thread's) log in as the function's user until the block ends."""
    use_database(function_users[role])
    events_db.forget_known_partitions()
    user = run(lambda conn: conn.execute("SELECT current_user").fetchone()[0])
    assert user == conninfo_to_dict(function_users[role])["user"]
    try:
        yield
    finally:
        use_database(database_url)
        events_db.forget_known_partitions()


@pytest.fixture
def as_function(function_users: dict[str, str], database_url: str, db: psycopg.Connection):
    return lambda role: logged_in_as(function_users, role, database_url)


def api(function, method: str, path: str, resource: str, *, claims: dict, body=None, query=None, **params: str):
    response = function.lambda_handler(
        api_gateway_rest_event(
            method, path, resource=resource, body=body, query=query, path_parameters=params or None, claims=claims
        ),
        LambdaContext(),
    )
    return response["statusCode"], json.loads(response["body"])


def get_feed(user_id: str, query: dict[str, str]) -> tuple[int, dict]:
    path = f"/v1/users/{user_id}/feed"
    return api(assemble, "GET", path, "/v1/users/{user_id}/feed", claims=cognito_claims(user_id), query=query,
               user_id=user_id)  # fmt: skip


def scheduled(detail: dict) -> dict:
    return recompute.lambda_handler(eventbridge_scheduled_event(detail), LambdaContext(remaining_time_ms=60_000))


def privileges(conn: psycopg.Connection, table: str) -> tuple:
    """The table's owner and every grant on it and its columns."""
    return conn.execute(
        """
        SELECT c.relowner::regrole::text,
               (SELECT array_agg(a ORDER BY a::text) FROM unnest(c.relacl) AS a),
               (SELECT array_agg(format('%%s: %%s', att.attname, att.attacl) ORDER BY att.attname)
                FROM pg_attribute att WHERE att.attrelid = c.oid AND att.attacl IS NOT NULL)
        FROM pg_class c WHERE c.oid = %s::regclass
        """,
        (table,),
    ).fetchone()


def test_ingestion_stores_batches_and_makes_a_missing_month_as_the_logs_owner(as_function, db) -> None:
    this_month = events_db.month_of(datetime.now(UTC))
    db.execute(f"DROP TABLE IF EXISTS events_{this_month:%Y_%m}")
    sqs_batch = [purchase("user-1", items=("milk", "eggs")), event("click", "user-2", item_id="eggs")]
    create_catalog(db)

    with as_function("feed_ingest_queue"), mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="ingest")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"events": sqs_batch}))
        received, answer = deliver_queue_batch(sqs, url, ingest.queue_handler, visibility_timeout_s=0)
    with as_function("feed_ingest_events"):
        posted = api(ingest, "POST", "/v1/events", "/v1/events", claims=SERVICE_CLAIMS,
                     body={"events": [event("add_to_cart", "user-3", item_id="milk")]})  # fmt: skip
        again = api(ingest, "POST", "/v1/events", "/v1/events", claims=SERVICE_CLAIMS, body={"events": sqs_batch})

    assert (len(received), answer["batchItemFailures"]) == (1, [])
    assert (posted[0], posted[1]["accepted"]) == (200, 1)
    assert again[1]["duplicates"] == 2  # stored once, by INSERT … ON CONFLICT as the role
    assert db.execute("SELECT count(*) FROM events").fetchone() == (3,)
    owner = db.execute("SELECT relowner::regrole::text FROM pg_class WHERE relname = %s",
                       (f"events_{this_month:%Y_%m}",)).fetchone()  # fmt: skip
    assert owner == (db.execute("SELECT current_user").fetchone()[0],)  # the log's owner, not the login user


def test_the_admin_routes_and_an_erasure_work_as_ingest_events(as_function, db) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("milk", "eggs")), purchase("user-2", items=("eggs",)))
    with as_function("feed_recompute_scores"):
        assert scheduled({"mode": "incremental"})["status"] == "completed"
    milk = {"item_id": "milk", "name": "Milk", "department": "Dairy & Eggs", "aisle": "Milk", "price": 2.99}

    with as_function("feed_ingest_events"):
        items = api(ingest, "PUT", "/v1/items", "/v1/items", claims=SERVICE_CLAIMS, body={"items": [milk]})
        availability = api(ingest, "PUT", f"/v1/stores/{STORE}/availability", "/v1/stores/{store_id}/availability",
                           claims=SERVICE_CLAIMS, body={"items": [{"item_id": "milk", "available": False}]},
                           store_id=STORE)  # fmt: skip
        erased = api(ingest, "DELETE", "/v1/users/user-1", "/v1/users/{user_id}", claims=SERVICE_CLAIMS,
                     user_id="user-1")  # fmt: skip

    assert items == (200, {"upserted": 1}) and availability == (200, {"upserted": 1})
    assert db.execute("SELECT stale, catalog_version = (SELECT version FROM catalog_state) FROM store_shelves "
                      "WHERE store_id = %s", (STORE,)).fetchone() == (False, True)  # fmt: skip
    assert erased[0] == 200 and erased[1]["events_deleted"] == 1 and erased[1]["scores_deleted"] > 0
    for table in ("events", "users", "user_item_affinity", "user_category_affinity", "user_orders"):
        assert db.execute(f"SELECT count(*) FROM {table} WHERE user_id = 'user-1'").fetchone() == (0,), table


def test_recompute_full_and_incremental_model_import_and_retention_as_recompute_scores(
    as_function,
    db,
    s3,  # noqa: F811
) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("milk", "eggs")), purchase("user-2", items=("milk", "eggs")))
    before = {table: privileges(db, table) for table in SCORE_TABLES}
    upload(s3, "picked_for_you/v1.csv", "user_id,item_id,score\nuser-1,coffee,0.9\n,milk,0.2\n")
    upload(s3, "item_quality/v1.csv", "item_id,score\nmilk,high\n")  # refused, and remembered
    ancient = events_db.month_of(NOW - timedelta(days=500))
    events_db.ensure_event_partitions(db, [ancient])

    with as_function("feed_recompute_scores"):
        full = scheduled({"mode": "full"})
    record(purchase("user-3", items=("milk", "eggs")))
    with as_function("feed_recompute_scores"):
        incremental = scheduled({"mode": "incremental"})
        retention = scheduled({"keep_days": 400})

    assert (full["status"], full["events_scored"], full["models_imported"]) == ("completed", 2, ["picked_for_you"])
    assert (incremental["status"], incremental["events_scored"]) == ("completed", 1)
    # Earlier tests' old months may be dropped too (emptying tables between tests leaves partitions); none younger.
    horizon = events_db.month_of(NOW - timedelta(days=400))
    assert f"events_{ancient:%Y_%m}" in retention["dropped_partitions"]
    assert all(name < f"events_{horizon:%Y_%m}" for name in retention["dropped_partitions"])
    # The rebuilt tables are the live ones' owner's, with the same grants: every role keeps its access.
    assert {table: privileges(db, table) for table in SCORE_TABLES} == before
    assert before["user_item_affinity"][0] == "feed_recompute_scores"
    assert db.execute("SELECT pair_count FROM item_pair_counts").fetchall() == [(3,)]
    assert db.execute("SELECT count(*) FROM model_scores").fetchone() == (2,)
    assert db.execute("SELECT model FROM model_refusals").fetchall() == [("item_quality",)]


def test_fanned_out_shards_are_scored_as_recompute_shards(as_function, db, shard_queue_env: ShardQueue) -> None:  # noqa: F811
    create_catalog(db)
    with as_function("feed_recompute_scores"):
        assert scheduled({"mode": "incremental"})["status"] == "completed"
    record(purchase("user-1", items=("milk", "eggs")), purchase("user-2", items=("milk",)))

    with as_function("feed_recompute_scores"):
        dispatched = recompute.lambda_handler(eventbridge_scheduled_event({"mode": "incremental"}), LambdaContext())
    with as_function("feed_recompute_shards"):
        answers = [shard_queue_env.deliver()[1] for _ in range(SHARDS)]
    with as_function("feed_recompute_scores"):
        settled = recompute.lambda_handler(eventbridge_scheduled_event({"mode": "incremental"}), LambdaContext())

    assert (dispatched["status"], dispatched["shard_messages_sent"]) == ("partial", SHARDS)
    assert all(answer["batchItemFailures"] == [] for answer in answers)
    assert (settled["status"], settled["chunks"]) == ("completed", 1)
    assert db.execute("SELECT count(DISTINCT user_id) FROM user_item_affinity").fetchone() == (2,)
    assert db.execute("SELECT count(*) FROM score_chunks").fetchone() == (0,)


def test_a_feed_and_its_second_page_are_served_as_assemble_feed(as_function, db) -> None:
    create_catalog(db)
    record(*(purchase("user-1", items=("milk",), at=NOW - timedelta(days=7 * week)) for week in range(1, 4)),
           purchase("user-2", items=("eggs", "bananas", "wine")))  # fmt: skip
    with as_function("feed_recompute_scores"):
        scheduled({"mode": "full"})

    with as_function("feed_assemble_feed"):
        status, first = get_feed("user-1", {"store_id": STORE, "limit": "1"})
        later, second = get_feed("user-1", {"store_id": STORE, "limit": "1", "cursor": first["next_cursor"]})
    db.execute("UPDATE store_shelves SET stale = true")  # a write outside the routes: the store's rows are read
    with as_function("feed_assemble_feed"):
        from_rows, third = get_feed("user-2", {"store_id": STORE})

    assert (status, later, from_rows) == (200, 200, 200)
    assert first["degraded"] is False and first["sections"][0]["id"] == "buy_again"
    assert second["sections"] and second["sections"][0]["id"] != "buy_again"
    assert third["degraded"] is False and third["sections"]
    assert db.execute("SELECT user_id FROM feeds ORDER BY 1").fetchall() == [("user-1",), ("user-2",)]


# What each function never does: the database refuses it to the function's role.
REFUSED = [
    ("feed_assemble_feed", "DELETE FROM events"),
    ("feed_assemble_feed", "UPDATE item_popularity SET raw_score = 0"),
    ("feed_assemble_feed", "SELECT user_id FROM feeds"),  # other users' served feeds
    ("feed_assemble_feed", "UPDATE items SET active = false"),
    ("feed_assemble_feed", "SELECT create_event_partition(current_date)"),
    ("feed_ingest_queue", "INSERT INTO item_popularity (store_id, item_id) VALUES ('s', 'x')"),
    ("feed_ingest_queue", "SELECT * FROM user_item_affinity"),
    ("feed_ingest_queue", "DELETE FROM events"),
    ("feed_ingest_queue", "SELECT user_id FROM events"),
    ("feed_ingest_queue", "UPDATE items SET price = 0"),
    ("feed_ingest_events", "INSERT INTO user_item_affinity (user_id, item_id) VALUES ('u', 'x')"),
    ("feed_ingest_events", "UPDATE item_pairs SET score = 1"),
    ("feed_ingest_events", "SELECT affinity_raw FROM user_item_affinity"),
    ("feed_ingest_events", "UPDATE score_shards SET done_at = now()"),
    ("feed_ingest_events", "SELECT drop_event_partition('events'::regclass)"),
    ("feed_ingest_events", "CREATE TABLE intruder (id int)"),
    ("feed_ingest_events", "DROP TABLE item_pairs"),
    ("feed_recompute_shards", "UPDATE item_popularity SET raw_score = 0"),
    ("feed_recompute_shards", "UPDATE score_state SET scan_from = now()"),
    ("feed_recompute_shards", "DELETE FROM events"),
    ("feed_recompute_shards", "CREATE TABLE intruder (id int)"),
    ("feed_recompute_shards", "DELETE FROM score_chunks"),
    ("feed_recompute_scores", "DELETE FROM events"),
    ("feed_recompute_scores", "INSERT INTO event_ids (event_id, occurred_at) VALUES (gen_random_uuid(), now())"),
    ("feed_recompute_scores", "UPDATE items SET price = 0"),
    ("feed_recompute_scores", "DROP TABLE events"),
    (
        "feed_recompute_scores",
        "INSERT INTO feeds (feed_id, user_id, store_id, variant, created_at) VALUES ('f', 'u', 's', 'v', now())",
    ),  # fmt: skip
    ("feed_recompute_scores", "SELECT * FROM schema_migrations"),
    ("feed_recompute_scores", "DELETE FROM user_erasures"),  # an import never forgets an erasure
    ("feed_ingest_events", "SELECT * FROM user_erasures"),
    ("feed_assemble_feed", "SELECT * FROM user_erasures"),
    ("feed_recompute_scores", "SELECT grant_function_privileges()"),
]


@pytest.mark.parametrize(("role", "statement"), REFUSED)
def test_a_role_is_refused_what_its_function_never_does(
    function_users: dict[str, str], db: psycopg.Connection, role: str, statement: str
) -> None:
    with psycopg.connect(function_users[role]) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


def test_granting_again_at_a_deploy_does_not_wait_for_readers_of_the_score_tables(
    function_users: dict[str, str], database_url: str
) -> None:
    with psycopg.connect(database_url) as reader, psycopg.connect(database_url, autocommit=True) as deploy:
        reader.execute("SELECT count(*) FROM item_popularity")  # a feed request's read, its transaction open
        deploy.execute("SET lock_timeout = '500ms'")
        deploy.execute("SELECT grant_function_privileges()")  # no owner to change: no exclusive lock taken
        reader.rollback()


def test_a_role_cannot_run_its_own_function_as_the_log_owner_through_the_partition_functions(
    function_users: dict[str, str], db: psycopg.Connection
) -> None:
    """The recompute's role may create in public (its rebuild's copies): a public.to_char(date, text) would match
    the partition function's date arguments better than pg_catalog's own, and run as the log's owner."""
    with psycopg.connect(function_users["feed_recompute_scores"], autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION public.to_char(date, text) RETURNS text LANGUAGE sql AS $$ SELECT current_user::text $$;"
            "CREATE FUNCTION public.date_trunc(text, date) RETURNS timestamp LANGUAGE sql"
            " AS $$ SELECT now()::timestamp - interval '40 years' $$"
        )
        try:
            conn.execute("SELECT create_event_partition('2031-05-17')")
        finally:
            conn.execute("DROP FUNCTION public.to_char(date, text); DROP FUNCTION public.date_trunc(text, date)")

    made = db.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'events'::regclass AND c.relname LIKE 'events_2031%'"
    ).fetchall()
    db.execute("DROP TABLE IF EXISTS events_2031_05")
    assert made == [("events_2031_05",)]


def test_a_grant_made_during_a_full_rebuild_is_kept_by_its_swap(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("milk", "eggs")))
    rebuild_events = scores_db.rebuild_events

    def with_a_deploy_granting_meanwhile(*args, **kwargs):
        with psycopg.connect(database_url, autocommit=True) as deploy:
            deploy.execute("GRANT SELECT ON item_pairs TO feed_ingest_queue")
        return rebuild_events(*args, **kwargs)

    monkeypatch.setattr(scores_db, "rebuild_events", with_a_deploy_granting_meanwhile)
    try:
        assert scheduled({"mode": "full"})["status"] == "completed"
        granted = db.execute("SELECT has_table_privilege('feed_ingest_queue', 'item_pairs', 'SELECT')").fetchone()
    finally:
        db.execute("REVOKE SELECT ON item_pairs FROM feed_ingest_queue")

    assert granted == (True,)


def test_an_rds_like_master_user_migrates_creates_the_users_and_the_recompute_rebuilds(
    tmp_path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    """On RDS the migrating user is no superuser: it can create roles (CREATEROLE), holds pg_monitor (through
    rds_superuser) and may grant rds_iam. A server of its own, so that the function roles are created by that
    user, as in a new stack."""
    server = embedded_server(tmp_path / "pgdata", on_exit="delete")
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as superuser:
            superuser.execute("CREATE ROLE rds_master LOGIN CREATEROLE CREATEDB")
            superuser.execute("GRANT pg_monitor TO rds_master")
            superuser.execute("CREATE DATABASE feed OWNER rds_master")
        master_url = make_conninfo(server.get_uri(), user="rds_master", dbname="feed")
        with psycopg.connect(master_url, autocommit=True) as master:
            migrate(master, MIGRATIONS_DIR)
            migrate(master, MIGRATIONS_DIR)  # every deploy: the grants again
            # Not RDS: no IAM logins, so no user is made.
            with pytest.raises(ConfigurationError, match="rds_iam"):
                ensure_login_user(master, LoginUser("assemble_feed", "feed_assemble_feed"))
            assert master.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'assemble_feed'").fetchone() == (0,)
            master.execute("CREATE ROLE rds_iam NOLOGIN")  # RDS has it; its master may grant it (here: ADMIN)
            ensure_login_user(master, LoginUser("recompute_scores", "feed_recompute_scores"))
            ensure_login_user(master, LoginUser("assemble_feed", "feed_assemble_feed"))
            ensure_login_user(master, LoginUser("assemble_feed", "feed_assemble_feed"))  # every deploy: again
            use_database(master_url)
            create_catalog(master)
            record(purchase("user-1", items=("milk", "eggs")))
            owners = master.execute("SELECT DISTINCT relowner::regrole::text FROM pg_class WHERE relname = ANY(%s)",
                                    (list(SCORE_TABLES),)).fetchall()  # fmt: skip

            use_database(make_conninfo(master_url, user="recompute_scores"))
            full = scheduled({"mode": "full"})
            use_database(make_conninfo(master_url, user="assemble_feed"))
            status, feed = get_feed("user-1", {"store_id": STORE})

            assert owners == [("feed_recompute_scores",)]
            assert full["status"] == "completed" and full["events_scored"] == 1
            assert status == 200 and feed["degraded"] is False and feed["sections"]
            assert master.execute("SELECT DISTINCT relowner::regrole::text FROM pg_class WHERE relname = ANY(%s)",
                                  (list(SCORE_TABLES),)).fetchall() == owners  # fmt: skip
    finally:
        use_database(database_url)
        events_db.forget_known_partitions()
        server.cleanup()


def test_a_login_user_has_no_password_and_logs_in_with_iam_alone(db: psycopg.Connection, rds_iam: str) -> None:
    made, kept = (f"{what}_{uuid.uuid4().hex[:6]}" for what in ("made", "kept"))
    db.execute(f"CREATE ROLE {kept} LOGIN PASSWORD 'from-its-old-secret'")  # as a stack from before made it
    try:
        for name in (made, kept):
            ensure_login_user(db, LoginUser(name, "feed_assemble_feed"))
            ensure_login_user(db, LoginUser(name, "feed_assemble_feed"))  # every deploy
            assert db.execute(
                "SELECT rolcanlogin, rolpassword IS NULL, pg_has_role(oid, 'rds_iam', 'MEMBER'), "
                "pg_has_role(oid, 'feed_assemble_feed', 'MEMBER') FROM pg_authid WHERE rolname = %s",
                (name,),
            ).fetchone() == (True, True, True, True)
    finally:
        for name in (made, kept):
            db.execute(f"DROP ROLE IF EXISTS {name}")


def test_a_login_user_is_only_ever_given_a_functions_role(db: psycopg.Connection, rds_iam: str) -> None:
    (admin,) = db.execute("SELECT current_user").fetchone()
    with pytest.raises(ConfigurationError, match="not a function's database role"):
        ensure_login_user(db, LoginUser(f"intruder_{uuid.uuid4().hex[:6]}", "pg_read_all_data"))
    with pytest.raises(ConfigurationError, match="administers the database"):
        ensure_login_user(db, LoginUser(admin, "feed_assemble_feed"))


def test_the_recompute_sees_when_other_users_transactions_started_and_not_their_statements(
    function_users: dict[str, str], db
) -> None:
    """current_snapshot's scan bound: the start of the oldest open transaction of every session."""
    with psycopg.connect(function_users["feed_ingest_queue"]) as ingesting:
        ingesting.execute("SELECT 1")  # a transaction left open
        pid = ingesting.info.backend_pid
        started = db.execute("SELECT xact_start FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0]
        with psycopg.connect(function_users["feed_recompute_scores"], autocommit=True) as conn:
            oldest = conn.execute("SELECT oldest_transaction_start()").fetchone()[0]
            statement = conn.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0]
        with (
            psycopg.connect(function_users["feed_assemble_feed"], autocommit=True) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute("SELECT oldest_transaction_start()")

    assert oldest <= started
    assert statement == "<insufficient privilege>"


def test_every_table_is_some_functions_or_the_migrations_alone(db: psycopg.Connection) -> None:
    """A table a migration adds is reached by no function until grant_function_privileges names it: locally
    (the superuser) nothing would show it. Only the migrations' own record is nobody's."""
    reached = db.execute(
        """
        SELECT c.relname,
               c.relowner = 'feed_recompute_scores'::regrole
               OR EXISTS (SELECT FROM aclexplode(c.relacl) g WHERE g.grantee::regrole::text = ANY(%(roles)s))
               OR EXISTS (SELECT FROM pg_attribute a CROSS JOIN LATERAL aclexplode(a.attacl) g
                          WHERE a.attrelid = c.oid AND g.grantee::regrole::text = ANY(%(roles)s))
        FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        """,
        {"roles": sorted(FUNCTION_ROLES)},
    ).fetchall()
    assert {table for table, by_a_function in reached if not by_a_function} == {"schema_migrations"}


def _brin_options(db: psycopg.Connection) -> dict[str, list[str] | None]:
    """Each month of the log: the storage parameters of its received_at BRIN index."""
    rows = db.execute(
        "SELECT p.inhrelid::regclass::text, c.reloptions FROM pg_inherits p JOIN pg_index i ON i.indrelid = p.inhrelid"
        " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam"
        " WHERE p.inhparent = 'events'::regclass AND a.amname = 'brin'"
    ).fetchall()
    return dict(rows)


def test_every_month_of_the_log_summarizes_its_block_ranges_as_they_fill(
    function_users: dict[str, str], db: psycopg.Connection
) -> None:
    """Migration 0122: a month a function's role creates (through the partition function, as the log's owner) has
    autosummarize on its BRIN index, so that a recompute reads only recent block ranges."""
    with psycopg.connect(function_users["feed_ingest_queue"], autocommit=True) as conn:
        conn.execute("SELECT create_event_partition('2031-06-17')")
    try:
        options = _brin_options(db)
    finally:
        db.execute("DROP TABLE IF EXISTS events_2031_06")
    assert "events_2031_06" in options
    assert {month: opts for month, opts in options.items() if opts != ["autosummarize=on"]} == {}


def test_asking_again_for_an_existing_month_does_not_wait_for_its_readers(
    function_users: dict[str, str], db: psycopg.Connection, database_url: str
) -> None:
    """Setting autosummarize locks the index exclusively: only a month just created gets it, so that asking for a
    month that exists (every new container does) neither waits for a recompute reading through the month's index nor
    holds up the inserts queued behind it."""
    db.execute("SELECT create_event_partition('2031-07-17')")
    try:
        with psycopg.connect(database_url) as reader:  # reads through the month's BRIN index, in an open transaction
            reader.execute("SET LOCAL enable_seqscan = off")
            reader.execute("SELECT count(*) FROM events_2031_07 WHERE received_at > '2031-07-20'")
            with psycopg.connect(function_users["feed_ingest_queue"], autocommit=True) as conn:
                conn.execute("SET lock_timeout = '1s'")
                conn.execute("SELECT create_event_partition('2031-07-17')")  # would raise LockNotAvailable
    finally:
        db.execute("DROP TABLE IF EXISTS events_2031_07")
