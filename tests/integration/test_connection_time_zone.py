"""The service's connections read instants in UTC whatever the database's default time zone."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from feedcore import settings
from feedcore.db import connection
from tests.conftest import scratch_database


def test_instants_are_read_in_utc_itself_whatever_the_database_default(database_url: str) -> None:
    # psycopg reads a timestamptz in the session's zone; only a session in "UTC" gives datetime.UTC itself, which
    # the feed's own instants share (then no utcoffset call per subtraction or comparison, no conversion per value).
    with scratch_database(database_url, "feed_time_zone") as url:
        with psycopg.connect(url, autocommit=True) as admin:
            name = admin.info.dbname
            admin.execute(f"ALTER DATABASE \"{name}\" SET TimeZone = 'America/New_York'")
        with connection.connect(settings.DatabaseSettings(database_url=url)) as conn:
            zone, now = conn.execute("SELECT current_setting('TimeZone'), now()").fetchone()
            (instant,) = conn.execute("SELECT '2026-11-27 23:30:00+00'::timestamptz").fetchone()
    assert zone == "UTC"
    assert now.tzinfo is UTC
    assert instant == datetime(2026, 11, 27, 23, 30, tzinfo=UTC) and instant.tzinfo is UTC and instant.day == 27
