"""The migration runner (feedctl migrate, the schema's custom resource): idempotent, safe when two run at once,
and within its deadline."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from feedcore import settings
from feedcore.db.connection import UNCONFIRMED_GRACE_S, connect
from feedcore.db.migrations import MigrationRunStopped, load_migrations, migrate, migrate_when_reachable
from feedcore.db.scores import RECOMPUTE_LOCK_KEY
from feedcore.errors import DatabaseUnavailable
from feedlocal.embedded import MIGRATIONS_DIR
from tests.conftest import migrate_before, scratch_database, use_database


@pytest.fixture
def empty_database(database_url: str) -> Iterator[str]:
    with scratch_database(database_url, "feed_migrate") as url:
        yield url


def run_migrate(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return migrate(conn, MIGRATIONS_DIR)


def test_concurrent_runs_apply_each_migration_once(empty_database: str) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run_migrate, [empty_database] * 4))

    versions = [m.version for m in load_migrations(MIGRATIONS_DIR)]
    assert sorted(v for applied in results for v in applied) == versions  # all applied, by exactly one run
    assert run_migrate(empty_database) == []
    with psycopg.connect(empty_database) as conn:
        assert [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")] == versions


def test_an_edited_migration_is_refused(empty_database: str, tmp_path: Path) -> None:
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE t (a int);")
    with psycopg.connect(empty_database, autocommit=True) as conn:
        assert migrate(conn, tmp_path) == ["0001"]
        (tmp_path / "0001_first.sql").write_text("CREATE TABLE t (a int, b int);")
        with pytest.raises(RuntimeError, match="changed after it was applied"):
            migrate(conn, tmp_path)


def test_pair_counts_move_to_item_keys_with_their_counts(empty_database: str, tmp_path: Path) -> None:
    with psycopg.connect(empty_database, autocommit=True) as conn:
        migrate_before(conn, "0011", tmp_path)
        conn.execute(
            "INSERT INTO item_baskets (item_id, basket_raw, basket_count) VALUES"
            " ('milk', 9.5, 9), ('cereal', 6.5, 6), ('eggs', 3.5, 3);"
            "INSERT INTO item_pair_counts (item_id, paired_item_id, pair_raw, pair_count) VALUES"
            " ('cereal', 'milk', 6.25, 6), ('eggs', 'milk', 3.25, 3), ('cereal', 'eggs', 1.25, 1)"
        )

        assert "0011" in migrate(conn, MIGRATIONS_DIR)

        pairs = conn.execute(
            "SELECT a.item_id, b.item_id, c.pair_raw, c.pair_count FROM item_pair_counts c"
            " JOIN item_baskets a ON a.item_key = c.item_key JOIN item_baskets b ON b.item_key = c.paired_item_key"
        ).fetchall()
        assert {(*sorted((a, b)), raw, count) for a, b, raw, count in pairs} == {
            ("cereal", "milk", 6.25, 6), ("eggs", "milk", 3.25, 3), ("cereal", "eggs", 1.25, 1),
        }  # fmt: skip
        # An item new to the baskets gets a key of its own.
        conn.execute("INSERT INTO item_baskets (item_id, basket_raw, basket_count) VALUES ('coffee', 1, 1)")
        keys = [row[0] for row in conn.execute("SELECT item_key FROM item_baskets")]
        assert len(set(keys)) == 4


def test_items_counted_before_0101_and_by_code_from_before_it_carry_no_rescoring_mark(
    empty_database: str, tmp_path: Path
) -> None:
    """Their mark 0 makes the next run touching such an item rescore the rows naming it (test_item_pairs)."""
    with psycopg.connect(empty_database, autocommit=True) as conn:
        migrate_before(conn, "0101", tmp_path)
        conn.execute("INSERT INTO item_baskets (item_id, basket_raw, basket_count) VALUES ('milk', 9.5, 9)")

        assert "0101" in migrate(conn, MIGRATIONS_DIR)
        conn.execute("INSERT INTO item_baskets (item_id, basket_raw, basket_count) VALUES ('eggs', 3.5, 3)")

        marks = dict(conn.execute("SELECT item_id, rescored_basket_raw FROM item_baskets").fetchall())
        assert marks == {"milk": 0, "eggs": 0}


def test_0101_waits_for_a_recompute_run_whose_rebuild_would_swap_out_the_column(
    empty_database: str, tmp_path: Path
) -> None:
    with psycopg.connect(empty_database, autocommit=True) as conn, psycopg.connect(empty_database) as run:
        migrate_before(conn, "0101", tmp_path)
        run.execute("SELECT pg_advisory_xact_lock(%s)", (RECOMPUTE_LOCK_KEY,))  # a run in progress
        with ThreadPoolExecutor(max_workers=1) as pool:
            migrating = pool.submit(run_migrate, empty_database)
            time.sleep(1)
            assert not migrating.done()
            run.rollback()  # the run ends
            assert "0101" in migrating.result(timeout=30)


def test_the_users_orders_are_backfilled_from_the_scored_purchases(empty_database: str, tmp_path: Path) -> None:
    days = [datetime(2026, 11, day, 9, tzinfo=UTC) for day in (2, 9, 16)]
    with psycopg.connect(empty_database, autocommit=True) as conn:
        migrate_before(conn, "0050", tmp_path)
        conn.execute(
            "CREATE TABLE events_2026_11 PARTITION OF events FOR VALUES FROM ('2026-11-01Z') TO ('2026-12-01Z')"
        )

        def purchase(user_id: str, at: datetime) -> None:
            conn.execute(
                "INSERT INTO events (event_id, occurred_at, event_type, user_id, store_id, order_id, line_item_ids,"
                " line_quantities, line_unit_prices) VALUES (%s, %s, 'purchase', %s, 's', 'o', '{milk}', '{1}', '{1}')",
                (uuid.uuid4(), at, user_id),
            )

        for user_id, at in (("user-1", days[0]), ("user-1", days[1]), ("user-1", days[1]), ("user-2", days[0])):
            purchase(user_id, at)
        conn.execute(
            "INSERT INTO score_state (epoch, scored_snapshot, scan_from, updated_at)"
            " VALUES (now(), pg_current_snapshot(), now(), now())"
        )
        purchase("user-1", days[2])  # not scored yet: the next run counts it

        assert "0050" in migrate(conn, MIGRATIONS_DIR)

        orders = dict(conn.execute("SELECT user_id, ordered_at FROM user_orders").fetchall())
        assert orders == {"user-1": days[:2], "user-2": days[:1]}  # two purchases at one instant: one order


def test_the_items_reorders_are_backfilled_from_the_scored_user_rows(empty_database: str, tmp_path: Path) -> None:
    with psycopg.connect(empty_database, autocommit=True) as conn:
        migrate_before(conn, "0071", tmp_path)
        conn.execute(
            "INSERT INTO user_item_affinity (user_id, item_id, purchase_count, affinity_raw, updated_at) VALUES"
            " ('user-1', 'milk', 4, 1, now()), ('user-2', 'milk', 1, 1, now()), ('user-1', 'eggs', 1, 1, now()),"
            " ('user-2', 'eggs', 0, 1, now())"  # user-2 only looked at eggs: no buyer
        )

        assert "0071" in migrate(conn, MIGRATIONS_DIR)

        reorders = {row[0]: row[1:] for row in conn.execute("SELECT * FROM item_reorders")}
        assert reorders == {"milk": (5, 2), "eggs": (1, 1)}


def test_the_pair_tables_watermark_starts_where_their_counts_are(empty_database: str, tmp_path: Path) -> None:
    with psycopg.connect(empty_database, autocommit=True) as conn:
        migrate_before(conn, "0065", tmp_path)
        conn.execute(
            "INSERT INTO score_state (epoch, scored_snapshot, scan_from, updated_at)"
            " VALUES ('2026-11-01Z', '10:10:', '2026-11-02Z', now())"
        )
        # An open fan-out chunk, part of a backlog: its coordinator counted its baskets already.
        conn.execute(
            "INSERT INTO score_chunks (epoch, scored_snapshot, target_snapshot, xid_from, xid_to, scan_from, complete,"
            " next_scan_from, as_of, shard_count, events_scored, popularity_updates, pair_updates) VALUES"
            " ('2026-11-01Z', '10:10:', '20:20:', '0', '15', '2026-11-02Z', false, '2026-11-03Z', now(), 4, 1, 1, 1)"
        )

        assert "0065" in migrate(conn, MIGRATIONS_DIR)

        pairs = conn.execute(
            "SELECT scored_snapshot::text, target_snapshot::text, done_below_xid::text, scan_from FROM pair_score_state"
        ).fetchall()
        assert pairs == [("10:10:", "20:20:", "15", datetime(2026, 11, 2, tzinfo=UTC))]


def test_the_department_rows_nothing_read_are_deleted(empty_database: str, tmp_path: Path) -> None:
    with psycopg.connect(empty_database, autocommit=True) as conn:
        migrate_before(conn, "0051", tmp_path)
        conn.execute(
            "INSERT INTO user_category_affinity (user_id, level, category, raw_score, updated_at) VALUES"
            " ('user-1', 'aisle', 'Milk', 2, now()), ('user-1', 'department', 'Dairy & Eggs', 2, now())"
        )

        assert "0051" in migrate(conn, MIGRATIONS_DIR)

        assert conn.execute("SELECT user_id, level, category FROM user_category_affinity").fetchall() == [
            ("user-1", "aisle", "Milk")
        ]
        # The code still running while a deploy migrates writes department rows: they must still be accepted.
        conn.execute(
            "INSERT INTO user_category_affinity (user_id, level, category, raw_score, updated_at)"
            " VALUES ('user-1', 'department', 'Dairy & Eggs', 2, now())"
        )


def test_the_items_reorder_counts_are_packed_over_the_current_catalog(empty_database: str, tmp_path: Path) -> None:
    with psycopg.connect(empty_database, autocommit=True) as conn:
        migrate_before(conn, "0082", tmp_path)  # (0096 redefines 0082's functions: it cannot come before it)
        conn.execute(
            "INSERT INTO items (item_id, name, department, aisle, price) VALUES ('eggs', 'Eggs', 'Dairy', 'Eggs', 3),"
            " ('milk', 'Milk', 'Dairy', 'Milk', 2), ('tea', 'Tea', 'Pantry', 'Tea', 4)"
        )
        conn.execute("INSERT INTO item_reorders VALUES ('milk', 5, 2), ('tea', 1, 1)")
        (version,) = conn.execute("SELECT version FROM catalog_state").fetchone()

        assert "0082" in migrate(conn, MIGRATIONS_DIR)

        packed = conn.execute("SELECT catalog_version, item_orders, item_buyers FROM item_reorders_packed").fetchall()
        int8 = lambda *numbers: b"".join(n.to_bytes(8, "big") for n in numbers)  # noqa: E731
        assert packed == [(version, int8(0, 5, 1), int8(0, 2, 1))]  # eggs, milk, tea
        # code from before 0082 still reads the user's rows with the counts
        rows = conn.execute("SELECT count(*) FROM feed_user_rows('u', '{}', true, 20, 200, now(), 100, 5)")
        assert rows.fetchone() == (0,)


def test_code_from_before_0096_reads_the_users_aisles_summed_from_their_item_rows(
    empty_database: str, tmp_path: Path
) -> None:
    with psycopg.connect(empty_database, autocommit=True) as conn:
        migrate_before(conn, "0096", tmp_path)
        conn.execute(
            "INSERT INTO items (item_id, name, department, aisle, price) VALUES ('eggs', 'Eggs', 'Dairy', 'Eggs', 3),"
            " ('milk', 'Milk', 'Dairy', 'Milk', 2), ('cream', 'Cream', 'Dairy', 'Milk', 2),"
            " ('tea', 'Tea', 'Pantry', 'Tea', 4)"
        )
        conn.execute(
            "INSERT INTO user_item_affinity (user_id, item_id, affinity_raw, purchase_count, last_hidden_at,"
            " updated_at) VALUES ('u', 'milk', 1.5, 1, NULL, now()), ('u', 'cream', 0.25, 0, now(), now()),"
            " ('u', 'tea', 0, 0, now(), now()), ('u', 'gone', 4, 1, NULL, now()), ('v', 'eggs', 9, 1, NULL, now())"
        )  # cream hidden, tea only hidden (no affinity), gone not in the catalog, eggs another user's
        conn.execute("INSERT INTO user_category_affinity VALUES ('u', 'aisle', 'Milk', 1.75, now())")
        args = "'u', '{}', true, 20, 200, now(), 100, 5"
        old = {name: conn.execute(f"SELECT * FROM {name}({args})").fetchall()
               for name in ("feed_user_own_rows", "feed_user_rows")}  # fmt: skip

        assert "0096" in migrate(conn, MIGRATIONS_DIR)

        own = conn.execute(f"SELECT * FROM feed_user_own_rows({args})").fetchall()
        with_reorders = conn.execute(f"SELECT * FROM feed_user_rows({args})").fetchall()
        assert own == old["feed_user_own_rows"] and with_reorders == old["feed_user_rows"]
        conn.execute("DELETE FROM user_category_affinity")  # read by nothing since 0096
        assert conn.execute(f"SELECT * FROM feed_user_own_rows({args})").fetchall() == own
        assert conn.execute(f"SELECT * FROM feed_user_rows({args})").fetchall() == with_reorders
        assert [row[9:11] for row in own if row[0] == "aisle"] == [(1.75, "Milk")]
        # this code's functions: the same rows less the aisle rows
        assert conn.execute(f"SELECT * FROM feed_user_item_rows({args})").fetchall() == [
            row for row in own if row[0] != "aisle"
        ]
        assert conn.execute(f"SELECT * FROM feed_user_item_rows_with_reorders({args})").fetchall() == [
            row for row in with_reorders if row[0] != "aisle"
        ]


def test_the_users_rows_are_the_same_after_0099_for_this_code_and_code_from_before(
    empty_database: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(empty_database, autocommit=True) as conn:
        migrate_before(conn, "0099", tmp_path)
        conn.execute("SELECT create_event_partition(%s)", (now.date(),))
        conn.execute(
            "INSERT INTO items (item_id, name, department, aisle, price)"
            " SELECT 'i' || n, 'Item ' || n, 'Dairy', 'aisle ' || n % 3, 1 FROM generate_series(1, 9) AS n"
        )
        # Seven items bought, each at its own time and in its own amount, one hidden, one only clicked: no ties at
        # the cuts of the buy-again pool, the seed items and their pairs (0099 breaks ties by item id, where 0096's
        # rows followed the plan: test_item_pairs has those).
        conn.execute(
            "INSERT INTO user_item_affinity (user_id, item_id, affinity_raw, purchase_count, purchase_raw,"
            " first_purchased_at, last_purchased_at, last_positive_at, last_hidden_at, updated_at)"
            " SELECT 'u', 'i' || n, 1, 1, n, %(at)s, %(at)s - n * interval '1 hour', %(at)s, NULL, now()"
            " FROM generate_series(1, 7) AS n"
            " UNION ALL SELECT 'u', 'i8', 2, 1, 2, %(at)s, %(at)s, %(at)s, %(later)s, now()"
            " UNION ALL SELECT 'u', 'i9', 0.5, 0, 0, NULL, NULL, %(at)s, NULL, now()"
            " UNION ALL SELECT 'v', 'i1', 3, 1, 3, %(at)s, %(at)s, %(at)s, NULL, now()",
            {"at": now - timedelta(days=9), "later": now - timedelta(days=2)},
        )
        conn.execute(
            "INSERT INTO item_pairs (item_id, paired_item_id, pair_raw, score)"
            " SELECT 'i' || n, 'i' || (10 - n), 1, 0.5 + n / 100.0 FROM generate_series(1, 8) AS n"
            " UNION ALL SELECT 'i9', 'i2', 1, 0.75 UNION ALL SELECT 'i3', 'i4', 1, 0.3"
        )
        for minutes, event_type, item_id, lines in (
            (50, "add_to_cart", "i9", None),
            (40, "purchase", None, ["i9", "i3"]),
            (30, "hide", "i5", None),
            (20, "add_to_cart", "i6", None),
        ):
            conn.execute(
                "INSERT INTO events (event_id, occurred_at, event_type, user_id, store_id, item_id, line_item_ids,"
                " line_quantities, line_unit_prices) VALUES (%s, %s, %s, 'u', 's', %s, %s, %s, %s)",
                (uuid.uuid4(), now - timedelta(minutes=minutes), event_type, item_id, lines,
                 lines and [1] * len(lines), lines and [1] * len(lines)),
            )  # fmt: skip
        conn.execute("INSERT INTO model_scores VALUES ('picked', 'u', 'i2', 0.9), ('picked', 'u', 'i4', 0.1)")
        conn.execute("INSERT INTO user_orders VALUES ('u', ARRAY[%s]::timestamptz[])", (now - timedelta(days=9),))
        conn.execute("INSERT INTO item_reorders VALUES ('i1', 5, 2), ('i8', 1, 1)")
        functions = ("feed_user_item_rows", "feed_user_item_rows_with_reorders", "feed_user_own_rows", "feed_user_rows")
        arguments = [
            ("u", ["picked"], True, 20, 200, now - timedelta(hours=6), 100, 5),
            ("u", ["picked"], True, 1, 3, now - timedelta(minutes=45), 2, 2),  # cut by every limit
            ("u", [], False, 20, 200, now - timedelta(hours=6), 100, 5),
            ("v", ["picked"], True, 20, 200, now - timedelta(hours=6), 100, 5),
            ("nobody", ["picked"], True, 20, 200, now - timedelta(hours=6), 100, 5),
        ]

        def read() -> dict[tuple[str, int], list[tuple]]:
            return {(name, i): conn.execute(f"SELECT * FROM {name}(%s, %s, %s, %s, %s, %s, %s, %s)", args).fetchall()
                    for name in functions for i, args in enumerate(arguments)}  # fmt: skip

        before = read()
        assert {row[0] for row in before["feed_user_item_rows", 0]} == {"item", "recent", "pair", "model", "orders"}

        assert "0099" in migrate(conn, MIGRATIONS_DIR)

        assert read() == before
        # the rows' descriptor from the type cache, not built from OUT arguments on every call
        returns = conn.execute(
            "SELECT prorettype::regtype::text, proretset, proallargtypes FROM pg_proc"
            " WHERE oid = 'feed_user_item_rows(text, text[], boolean, integer, integer, timestamptz, integer,"
            " integer)'::regprocedure"
        ).fetchone()
        assert returns == ("feed_user_item_row", True, None)


def test_dropping_the_trending_index_gives_up_rather_than_queue_the_tables_readers(
    empty_database: str, tmp_path: Path
) -> None:
    with psycopg.connect(empty_database, autocommit=True) as conn, psycopg.connect(empty_database) as reader:
        migrate_before(conn, "0089", tmp_path)
        reader.execute("SELECT count(*) FROM item_popularity")  # a transaction using the table stays open
        conn.execute("SET statement_timeout = '20s'")  # (a migration waiting without end would fail by this instead)
        (tmp_path / "0089_popularity_without_trending_index.sql").write_text(
            (MIGRATIONS_DIR / "0089_popularity_without_trending_index.sql").read_text()
        )

        with pytest.raises(MigrationRunStopped, match="stopped at migration 0089_") as stopped:
            migrate(conn, tmp_path)
        assert isinstance(stopped.value.__cause__, psycopg.errors.LockNotAvailable)
        reader.rollback()
        indexes = "SELECT indexname FROM pg_indexes WHERE tablename = 'item_popularity'"
        assert "item_popularity_trending_idx" in {name for (name,) in conn.execute(indexes)}

        assert migrate(conn, tmp_path) == ["0089"]  # once the reader is done


@pytest.fixture
def service_database(empty_database: str, database_url: str) -> Iterator[str]:
    """The empty database, which feedcore's own connections (migrate_when_reachable's) point at for the test."""
    use_database(empty_database)
    yield empty_database
    use_database(database_url)


def applied_versions(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [version for (version,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


def test_a_run_stops_before_a_migration_it_has_too_little_time_left_to_start(
    service_database: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_slow.sql").write_text("CREATE TABLE first (a int); SELECT pg_sleep(1.5);")
    (tmp_path / "0002_slow_too.sql").write_text("CREATE TABLE second (a int); SELECT pg_sleep(1.5);")
    started = time.monotonic()

    # The first leaves ~0.7 s of the 2.2, less than a migration is started with.
    with pytest.raises(MigrationRunStopped, match="stopped before migration 0002_slow_too: .* it is not applied"):
        migrate_when_reachable(2_200, tmp_path)

    assert time.monotonic() - started < 2.2
    assert applied_versions(service_database) == ["0001"]
    assert migrate_when_reachable(10_000, tmp_path) == ["0002"]  # the next run resumes with it


def test_a_migration_still_running_at_the_deadline_is_cancelled_then_and_rolled_back(
    service_database: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_quick.sql").write_text("CREATE TABLE first (a int); SELECT pg_sleep(1);")
    (tmp_path / "0002_long.sql").write_text("CREATE TABLE second (a int); SELECT pg_sleep(30);")
    started = time.monotonic()

    with pytest.raises(MigrationRunStopped, match="stopped at migration 0002_long, rolled back .* statement timeout"):
        migrate_when_reachable(3_000, tmp_path)

    assert time.monotonic() - started < 3.0 + 0.5  # not the whole 3 s the run had when it connected
    assert applied_versions(service_database) == ["0001"]
    with psycopg.connect(service_database) as conn:
        assert conn.execute("SELECT to_regclass('second')").fetchone() == (None,)


def test_a_migration_of_statements_each_shorter_than_the_time_left_is_given_up_at_the_deadline(
    service_database: str, tmp_path: Path
) -> None:
    # The server bounds each statement of a file by the time left (they are one query, but timed one by one):
    # the client gives up on the whole file after the time left and the grace.
    (tmp_path / "0001_many.sql").write_text("SELECT pg_sleep(0.8); " * 4 + "CREATE TABLE first (a int);")
    started = time.monotonic()

    with pytest.raises(MigrationRunStopped, match="stopped at migration 0001_many, .* no answer from the database"):
        migrate_when_reachable(1_500, tmp_path)

    assert time.monotonic() - started < 1.5 + UNCONFIRMED_GRACE_S + 0.5
    assert applied_versions(service_database) == []


def test_a_migration_the_client_gave_up_on_ends_on_the_server_too_releasing_its_locks(
    service_database: str, tmp_path: Path
) -> None:
    with psycopg.connect(service_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE live (a int)")
    # Each statement is shorter than the time left: the server would run the whole file, holding its locks.
    (tmp_path / "0001_locks.sql").write_text(
        "LOCK TABLE live IN ACCESS EXCLUSIVE MODE; " + "SELECT pg_sleep(0.9); " * 8 + "CREATE TABLE first (a int);"
    )

    with pytest.raises(MigrationRunStopped, match="stopped at migration 0001_locks"):
        migrate_when_reachable(1_500, tmp_path)

    with psycopg.connect(service_database, autocommit=True) as observer:
        observer.execute("SET statement_timeout = 1000")
        assert observer.execute("SELECT count(*) FROM live").fetchone() == (0,)  # not locked any more
        others = observer.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
        assert others == (0,)
        assert observer.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone() == (0,)
    assert migrate_when_reachable(20_000, tmp_path) == ["0001"]  # the next run takes the lock and applies it


def test_a_step_kept_waiting_after_its_migration_ran_is_given_up_at_the_deadline(
    service_database: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_slow.sql").write_text("CREATE TABLE first (a int); SELECT pg_sleep(2);")
    with psycopg.connect(service_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_migrations (version text PRIMARY KEY, name text NOT NULL,"
                     " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")  # fmt: skip
    started = time.monotonic()

    # Another session's uncommitted row holds up the step's own INSERT into schema_migrations, which the server
    # would let wait for all the time left when the step started.
    with psycopg.connect(service_database) as holder:
        holder.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES ('0001', 'slow', 'x')")
        with pytest.raises(MigrationRunStopped, match="stopped at migration 0001_slow"):
            migrate_when_reachable(3_000, tmp_path)
        waited = time.monotonic() - started
        holder.rollback()

    assert waited < 3.0 + UNCONFIRMED_GRACE_S + 0.5, waited  # not 2 s of migration and then 3 s more
    assert applied_versions(service_database) == []


def test_a_run_stops_before_the_grants_when_too_little_time_is_left_for_them(
    service_database: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_grants.sql").write_text(
        "CREATE FUNCTION grant_function_privileges() RETURNS void LANGUAGE sql AS 'SELECT pg_sleep(5)';"
        " SELECT pg_sleep(1.5);"
    )
    started = time.monotonic()

    with pytest.raises(MigrationRunStopped, match="stopped before the grants of the functions' privileges"):
        migrate_when_reachable(2_200, tmp_path)

    assert time.monotonic() - started < 2.2
    assert applied_versions(service_database) == ["0001"]


def test_a_connection_is_not_retried_when_the_pause_and_the_attempt_would_leave_too_little_time_for_a_step(
    service_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing is pending, but a run still has a step to do: the grants.
    (tmp_path / "0001_grants.sql").write_text(
        "CREATE FUNCTION grant_function_privileges() RETURNS void LANGUAGE sql AS 'SELECT 1';"
    )
    assert migrate_when_reachable(10_000, tmp_path) == ["0001"]
    monkeypatch.setattr("feedcore.db.migrations.CONNECT_RETRY_INTERVAL_S", 0.5)
    monkeypatch.setenv("DB_CONNECT_TIMEOUT_S", "1")  # what a retried attempt may take
    settings.database_settings.cache_clear()
    attempts: list[float] = []

    def connect_slowly_once_refused(**kwargs: int) -> psycopg.Connection:
        """Each attempt takes 0.3 s (TLS, a proxy target coming up); the database answers from the second on."""
        attempts.append(time.monotonic())
        time.sleep(0.3)
        if len(attempts) == 1:
            raise DatabaseUnavailable("cannot connect to the database: refused (by the test)")
        return connect(**kwargs)

    monkeypatch.setattr("feedcore.db.migrations.connect", connect_slowly_once_refused)
    try:
        # After the first attempt ~1.6 s of 1.9 are left: a pause (0.5 s) and a slow retried attempt would reach the
        # database with ~0.8 s, too little for the grants (the run would then stop before them, as if a step of the
        # deploy were left undone). The run gives up on the database instead, before pausing.
        with pytest.raises(DatabaseUnavailable, match=r"refused \(by the test\); not retried: .* nothing was applied"):
            migrate_when_reachable(1_900, tmp_path)
        assert len(attempts) == 1

        attempts.clear()
        # ~2.9 s left after the first attempt cover the pause, the attempt's 1 s and a step's 1 s: retried, and the
        # grants done after it.
        assert migrate_when_reachable(3_200, tmp_path) == []
        assert len(attempts) == 2
    finally:
        settings.database_settings.cache_clear()


def test_catalog_tags_written_before_0114_are_lowered_and_the_catalog_version_moves(
    empty_database: str, tmp_path: Path
) -> None:
    with psycopg.connect(empty_database, autocommit=True) as conn:
        migrate_before(conn, "0114", tmp_path)
        conn.execute(
            "INSERT INTO items (item_id, name, department, aisle, price, tags) VALUES"
            " ('wine', 'Wine', 'Beer & Wine', 'Red', 9, '{Alcohol,organic,GLUTEN-free}'),"
            " ('milk', 'Milk', 'Dairy', 'Milk', 2, '{organic}'), ('tea', 'Tea', 'Pantry', 'Tea', 4, '{}')"
        )
        (version,) = conn.execute("SELECT version FROM catalog_state").fetchone()

        assert "0114" in migrate(conn, MIGRATIONS_DIR)

        assert conn.execute("SELECT item_id, tags FROM items ORDER BY item_id").fetchall() == [
            ("milk", ["organic"]), ("tea", []), ("wine", ["alcohol", "organic", "gluten-free"])
        ]  # fmt: skip
        assert conn.execute("SELECT version FROM catalog_state").fetchone()[0] != version


def test_catalog_tags_in_lower_case_leave_the_catalog_version_alone(empty_database: str, tmp_path: Path) -> None:
    # A moved version would send every container to stock each store from its rows until the next repack.
    with psycopg.connect(empty_database, autocommit=True) as conn:
        migrate_before(conn, "0114", tmp_path)
        conn.execute(
            "INSERT INTO items (item_id, name, department, aisle, price, tags) VALUES"
            " ('wine', 'Wine', 'Beer & Wine', 'Red', 9, '{alcohol,organic}'), ('tea', 'Tea', 'Pantry', 'Tea', 4, '{}')"
        )
        (version,) = conn.execute("SELECT version FROM catalog_state").fetchone()

        assert "0114" in migrate(conn, MIGRATIONS_DIR)

        assert conn.execute("SELECT version FROM catalog_state").fetchone()[0] == version


def test_the_months_still_filling_before_0122_summarize_their_block_ranges_as_they_fill(
    empty_database: str, tmp_path: Path
) -> None:
    # A closed month fills no new range: its index is left alone (the ALTER would lock out its readers for nothing).
    this_month = datetime.now(UTC).date().replace(day=1)
    closed, filling, ahead = this_month - timedelta(days=40), this_month, this_month + timedelta(days=40)
    with psycopg.connect(empty_database, autocommit=True) as conn:
        migrate_before(conn, "0122", tmp_path)
        conn.execute(
            "SELECT create_event_partition(%s), create_event_partition(%s), create_event_partition(%s)",
            (closed, filling, ahead),
        )
        brin_options = (
            "SELECT t.relname, c.reloptions FROM pg_inherits p JOIN pg_class t ON t.oid = p.inhrelid"
            " JOIN pg_index i ON i.indrelid = p.inhrelid JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_am a ON a.oid = c.relam WHERE p.inhparent = 'events'::regclass AND a.amname = 'brin' ORDER BY 1"
        )
        assert [options for _, options in conn.execute(brin_options)] == [None, None, None]

        assert "0122" in migrate(conn, MIGRATIONS_DIR)

        assert [options for _, options in conn.execute(brin_options)] == [
            None, ["autosummarize=on"], ["autosummarize=on"]
        ]  # fmt: skip


def test_item_reorders_keep_their_counts_under_a_key_without_them(empty_database: str, tmp_path: Path) -> None:
    with psycopg.connect(empty_database, autocommit=True) as conn:
        migrate_before(conn, "0125", tmp_path)
        conn.execute(
            "INSERT INTO item_reorders (item_id, order_count, buyer_count) VALUES ('milk', 7, 3), ('tea', 1, 1)"
        )

        assert "0125" in migrate(conn, MIGRATIONS_DIR)

        assert conn.execute("SELECT item_id, order_count, buyer_count FROM item_reorders ORDER BY 1").fetchall() == [
            ("milk", 7, 3), ("tea", 1, 1)
        ]  # fmt: skip
        assert conn.execute("SELECT reloptions FROM pg_class WHERE relname = 'item_reorders'").fetchone() == (
            ["fillfactor=50"],
        )
        (key,) = conn.execute("SELECT pg_get_indexdef('item_reorders_pkey'::regclass)").fetchone()
        assert key == "CREATE UNIQUE INDEX item_reorders_pkey ON public.item_reorders USING btree (item_id)"
