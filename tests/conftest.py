"""Shared fixtures: a real PostgreSQL (embedded unless DATABASE_URL is set), the handlers, event shapes."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from time import monotonic, sleep
from types import ModuleType

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

# Powertools reads these at import time; tests run without AWS.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "feed-tests")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
os.environ.setdefault("POWERTOOLS_DEV", "0")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from feedcore import settings  # noqa: E402
from feedcore.db.connection import reset_cached_connection, run  # noqa: E402
from feedcore.db.migrations import migrate  # noqa: E402
from feedcore.feed.service import forget_store_shelves  # noqa: E402
from feedcore.ingestion.service import catalog_items  # noqa: E402
from feedcore.observability import metrics  # noqa: E402
from feedlocal.embedded import MIGRATIONS_DIR, embedded_server  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_TABLES = (
    "event_ids, events, feeds, feed_snapshots, "
    "user_item_affinity, user_category_affinity, user_orders, item_popularity, "
    "score_runs, score_state, pair_score_state, score_chunks, score_shards, "
    "item_baskets, item_pair_counts, item_pairs, item_reorders, item_reorders_packed, shelf_positions, "
    "model_scores, model_versions, model_refusals, user_erasures, "
    "store_availability, store_shelves, items, stores, users, retention_passes"
)


SILENCE_AT_MOST_S = 10


@contextmanager
def silent_server() -> Iterator[None]:
    """The server process of this process's connection stopped: alive, its socket open, answering nothing (as a
    hung host, or a failover behind RDS Proxy, looks to the client); continued when the block ends."""
    with silent_backend(run(lambda conn: conn.info.backend_pid, in_transaction=False)):
        yield


@contextmanager
def silent_backend(backend: int) -> Iterator[None]:
    """The server process `backend` stopped until the block ends (at most SILENCE_AT_MOST_S)."""
    os.kill(backend, signal.SIGSTOP)
    wake_up = threading.Timer(SILENCE_AT_MOST_S, os.kill, (backend, signal.SIGCONT))  # a client that waits fails,
    wake_up.start()  # rather than hangs
    try:
        yield
    finally:
        wake_up.cancel()
        os.kill(backend, signal.SIGCONT)


class SlowServer:
    """A TCP proxy before the server of a database URL, holding each answer of the server `delay_s` seconds (a
    loaded database: every statement runs, each slowly; 0 at first)."""

    def __init__(self, database_url: str) -> None:
        params = conninfo_to_dict(database_url)
        self._upstream = (params.get("host") or "localhost", int(params.get("port") or 5432))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = make_conninfo(database_url, host="127.0.0.1", port=str(self._listener.getsockname()[1]))
        self.delay_s = 0.0
        threading.Thread(target=self._accept, daemon=True).start()

    def _connect_upstream(self) -> socket.socket:
        host, port = self._upstream
        if host.startswith("/"):  # a socket directory, as the embedded server's URL names it
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(f"{host}/.s.PGSQL.{port}")
            return upstream
        return socket.create_connection((host, port))

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            upstream = self._connect_upstream()
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, answers: bool) -> None:
        try:
            while data := source.recv(65536):
                if answers:
                    sleep(self.delay_s)
                target.sendall(data)
        except OSError:
            pass
        finally:
            source.close()
            target.close()

    def close(self) -> None:
        self._listener.close()


LOCK_WAIT_AT_MOST_S = 30


def sessions_blocked_by(holder: psycopg.Connection) -> int:
    """How many sessions wait for a lock that the session of `holder` holds (asked on `holder` itself, also
    inside its transaction: pg_locks is read afresh at each call)."""
    query = "SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted AND %s = ANY(pg_blocking_pids(pid))"
    return holder.execute(query, (holder.info.backend_pid,)).fetchone()[0]


def wait_until_blocked_by(holder: psycopg.Connection) -> None:
    """Return once another session waits for a lock that `holder` holds: a test that releases the lock, or
    asserts that the other is still waiting, then does so whatever the speed of the machine. Fails after
    LOCK_WAIT_AT_MOST_S."""
    deadline = monotonic() + LOCK_WAIT_AT_MOST_S
    while not sessions_blocked_by(holder):
        assert monotonic() < deadline, f"no session came to wait for a lock of backend {holder.info.backend_pid}"
        sleep(0.01)


def use_database(url: str) -> None:
    """Point feedcore at `url`: its settings are cached per process, and so is its connection."""
    os.environ["DATABASE_URL"] = url
    for cached in (
        settings.database_settings,
        settings.scoring_settings,
        settings.fanout_settings,
        settings.feed_settings,
        settings.ingest_settings,
    ):
        cached.cache_clear()
    reset_cached_connection()
    # What containers cache of the catalog.
    forget_store_shelves()
    catalog_items.clear()


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """An empty database on the server of `server_url`, dropped on exit; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin_url = make_conninfo(server_url, dbname="postgres")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(server_url, dbname=name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate_before(conn: psycopg.Connection, version: str, tmp_path: Path) -> None:
    """Apply the project's migrations older than `version`, as on a database deployed before it."""
    for migration in MIGRATIONS_DIR.glob("*.sql"):
        if migration.name < version:
            (tmp_path / migration.name).write_text(migration.read_text())
    migrate(conn, tmp_path)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, migrated database for the test session, on DATABASE_URL's server or an embedded one."""
    server = None
    server_url = os.environ.get("DATABASE_URL")
    if not server_url:
        server = embedded_server(tmp_path_factory.mktemp("pg") / "pgdata", on_exit="delete")
        server_url = server.get_uri()
    try:
        with scratch_database(server_url, "feed_test") as url:
            with psycopg.connect(url, autocommit=True) as conn:
                migrate(conn, MIGRATIONS_DIR)
            use_database(url)
            yield url
            reset_cached_connection()
    finally:
        if server is not None:
            server.cleanup()


@pytest.fixture(scope="session")
def rds_iam(database_url: str) -> Iterator[str]:
    """RDS for PostgreSQL's role whose members log in with IAM tokens (feedcore.db.roles), which a plain server
    lacks: made on the test server unless it has it, and dropped after the session if made here."""
    with psycopg.connect(database_url, autocommit=True) as admin:
        made = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam'").fetchone() is None
        if made:
            admin.execute("CREATE ROLE rds_iam NOLOGIN")
    yield "rds_iam"
    if made:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("DROP ROLE rds_iam")


@pytest.fixture(autouse=True)
def empty_metric_set() -> None:
    """Each test starts with the service's metric set empty: what a test adds by calling a service outside a
    handler is flushed by no one and would otherwise be emitted by the next test's handler."""
    metrics.clear_metrics()


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the test database; every data table is emptied after the test."""
    use_database(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn
        # A feed recorded last is sent without waiting: its outcome first, or it may commit after the TRUNCATE and
        # show in the next test (seen once, in test_the_scheduled_run_removes_expired_snapshots).
        reset_cached_connection()
        conn.execute(f"TRUNCATE {DATA_TABLES}")
    use_database(database_url)


def load_function(name: str) -> ModuleType:
    """Import functions/<name>/app.py as Lambda would (each function is its own `app` module)."""
    spec = importlib.util.spec_from_file_location(f"{name}_app", REPO_ROOT / "functions" / name / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_feedctl(
    database_url: str, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `feedctl ARGS` against the server of `database_url` (with `env` added to the environment); its exit
    status and output."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "feedctl"), *args],
        env=os.environ | {"DATABASE_URL": database_url} | (env or {}),
        capture_output=True,
        text=True,
        timeout=300,
        check=check,
    )


def feedctl_json(database_url: str, *args: str) -> dict:
    """Run `feedctl ARGS` against the server of `database_url`; the figures of its final JSON line."""
    return json.loads(run_feedctl(database_url, *args).stdout.strip().splitlines()[-1])
