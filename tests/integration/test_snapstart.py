"""SnapStart hooks of the feed function: before the snapshot, the route's validation is built by a request it
rejects and the database connection is opened; after a restore, that connection is dropped."""

from __future__ import annotations

import psycopg
import pytest
import snapshot_restore_py

from feedcore.db import connection
from feedcore.snapstart import prime_before_snapshot
from tests.conftest import load_function, use_database

assemble = load_function("assemble_feed")


def run_hooks(hooks: list) -> None:
    """Run registered hooks as Lambda's runtime does."""
    for function, args, kwargs in hooks:
        function(*args, **kwargs)


def test_the_feed_function_registers_both_hooks() -> None:
    registered = {function for function, _, _ in snapshot_restore_py.get_before_snapshot()}
    assert prime_before_snapshot in registered
    after = [(f, args) for f, args, _ in snapshot_restore_py.get_after_restore()]
    assert (connection.forget_cached_connection, ()) in after


def test_priming_rejects_its_request_and_leaves_an_open_connection(
    db: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    connection.reset_cached_connection()
    prime_before_snapshot(assemble.app, assemble.feed.REJECTED_REQUEST)
    assert "not rejected" not in caplog.text and "no database connection" not in caplog.text
    conn, reused = connection._cached_connection()
    assert reused and not conn.closed


def test_after_a_restore_the_next_request_connects_afresh(db: psycopg.Connection) -> None:
    before, _ = connection._cached_connection()
    connection.forget_cached_connection()
    after, reused = connection._cached_connection()
    assert before.closed and not reused and after is not before


def test_an_unreachable_database_does_not_fail_the_snapshot(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    use_database("postgresql://feed@127.0.0.1:1/feed?connect_timeout=1")
    try:
        prime_before_snapshot(assemble.app, assemble.feed.REJECTED_REQUEST)
        assert "no database connection before the snapshot" in caplog.text
    finally:
        use_database(database_url)
