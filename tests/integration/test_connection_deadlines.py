"""A request's deadline for its waits on the database (connection.answers_by)."""

from __future__ import annotations

from time import monotonic, sleep

import psycopg
import pytest

from feedcore.db.connection import answers_by, run
from feedcore.errors import DatabaseUnavailable
from tests.conftest import use_database


def test_a_statement_a_deadline_cuts_short_is_cancelled_on_the_server(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The statement timeout (30 s) is far: only the request's deadline ends the wait. Closing the connection alone
    # left the statement running on the server (a server reads the socket only between statements).
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "30000")
    use_database(database_url)
    backend = run(lambda conn: conn.info.backend_pid, in_transaction=False)

    def running() -> bool:
        query = "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = %s AND state = 'active')"
        return db.execute(query, (backend,)).fetchone()[0]

    with answers_by(monotonic() + 0.3), pytest.raises(DatabaseUnavailable, match="no answer from the database"):
        run(lambda conn: conn.execute("SELECT pg_sleep(10)"), in_transaction=False)
    cut_at = monotonic()
    while running() and monotonic() < cut_at + 0.5:
        sleep(0.02)

    assert not running()


def test_a_deadline_within_anothers_block_neither_extends_nor_ends_the_outer_one(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "30000")
    use_database(database_url)

    def sleep_1_s(conn: psycopg.Connection) -> None:
        conn.execute("SELECT pg_sleep(1)")

    # A later deadline within: the outer one still holds.
    with answers_by(monotonic() + 0.3), answers_by(monotonic() + 10), pytest.raises(DatabaseUnavailable):
        run(sleep_1_s, in_transaction=False)
    # After the inner block: the outer one again (before: none at all).
    with answers_by(monotonic() + 0.3):
        with answers_by(monotonic() + 10):
            pass
        started = monotonic()
        with pytest.raises(DatabaseUnavailable):
            run(sleep_1_s, in_transaction=False)
        assert monotonic() - started < 0.5
