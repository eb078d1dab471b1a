"""feedctl migrate: idempotent and safe when two run at once."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from feedcore.db.migrations import load_migrations, migrate
from feedlocal.embedded import MIGRATIONS_DIR
from tests.conftest import scratch_database


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
