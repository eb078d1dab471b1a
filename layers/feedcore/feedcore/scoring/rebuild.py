"""A full rebuild of the score tables, in parts on connections of their own, side by side.

PostgreSQL runs an `INSERT … SELECT` on one core, so a rebuild done as statements one after the other uses one
core of the database however many it has. The run's transaction (which holds the recompute lock) creates the
fresh copies of its own tables and exports its snapshot; each other part runs on a thread with a connection of
its own, in a transaction that imports that snapshot (so every part scores exactly the events the run does),
fills and indexes its copies and commits them. Meanwhile the run's transaction fills and indexes its own
copies; once every part is done it swaps all the copies in at once. A part that fails cancels the run's
statement and the run fails with the part's error; a run that fails cancels the parts' statements and waits for
them. The copies of a part that committed before its run failed are left until the next rebuild drops them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from time import monotonic

import psycopg

from feedcore.db import connection
from feedcore.db import scores as scores_db
from feedcore.observability import logger
from feedcore.settings import ScoringSettings


def rebuild_scores(
    conn: psycopg.Connection, settings: ScoringSettings, epoch: datetime, chunk: scores_db.Chunk, as_of: datetime,
    timeout_ms: int,
) -> tuple[scores_db.ApplyCounts, scores_db.PairCounts]:  # fmt: skip
    """In the run's transaction (recompute lock held): rebuild every score table from the chunk's events (all
    of them) and swap the rebuilt tables in. Statements of the other parts are bounded by `timeout_ms`."""
    scores_db.start_rebuild(conn, scores_db.REBUILD_RUN_TABLES)
    parts = SideParts(conn, scores_db.export_snapshot(conn), timeout_ms)
    popularity = parts.start(
        "popularity", lambda side: scores_db.rebuild_popularity(side, settings, epoch, chunk, as_of)
    )
    pairs = parts.start("pairs", lambda side: scores_db.rebuild_pairs(side, settings, epoch, chunk))
    with parts:
        started = monotonic()
        counts = scores_db.rebuild_events(conn, settings, epoch, chunk, as_of)
        parts.seconds["events"] = round(monotonic() - started, 2)
        side_counts, pair_counts = popularity.result(), pairs.result()
    started = monotonic()
    scores_db.swap_rebuilt(conn, items_keyed=pair_counts.item_updates)
    logger.info("score tables rebuilt",
                extra={"part_seconds": parts.seconds, "swap_seconds": round(monotonic() - started, 2)})  # fmt: skip
    return scores_db.ApplyCounts(
        counts.events_scored, side_counts.popularity_updates, counts.affinity_updates
    ), pair_counts


class SideParts:
    """The parts of a run other than its own (a rebuild's; an incremental run's pairs), each on a thread and a
    connection of its own, in a transaction that imports the run's `snapshot` (or, `None`, a read-committed
    one); used as a context manager around the run's own part, which it leaves only when every part has ended."""

    def __init__(self, run_conn: psycopg.Connection, snapshot: str | None, timeout_ms: int) -> None:
        self._run_conn = run_conn
        self._snapshot = snapshot
        self._timeout_ms = timeout_ms
        self._pool = ThreadPoolExecutor(thread_name_prefix="rebuild")
        self._lock = threading.Lock()
        self._connections: list[psycopg.Connection] = []
        self._stopping = False  # the run failed: parts still starting give up, running ones are cancelled
        self._failure: BaseException | None = None  # the first part to fail on its own
        self.seconds: dict[str, float] = {}  # how long each part took, by name

    def start[T](self, name: str, part: Callable[[psycopg.Connection], T]) -> Future[T]:
        future = self._pool.submit(self._run, name, part)
        future.add_done_callback(self._on_done)
        return future

    def _run[T](self, name: str, part: Callable[[psycopg.Connection], T]) -> T:
        started = monotonic()
        with connection.snapshot_transaction(self._snapshot) as side:
            with self._lock:
                if self._stopping:
                    raise RuntimeError("the rebuild stopped before this part started")
                self._connections.append(side)
            connection.bound_transaction(side, self._timeout_ms)
            result = part(side)
        self.seconds[name] = round(monotonic() - started, 2)  # committed
        return result

    def _on_done(self, future: Future) -> None:
        error = future.exception()
        with self._lock:
            if error is None or self._stopping or self._failure is not None:
                return
            self._failure = error
        self._run_conn.cancel_safe()  # the run's statement would only be wasted

    def __enter__(self) -> SideParts:
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        if exc is not None:
            with self._lock:
                self._stopping = True
                running = list(self._connections)
            for side in running:
                side.cancel_safe()
        self._pool.shutdown(wait=True)
        if exc is not None and self._failure is not None and self._failure is not exc:
            raise self._failure from exc  # the run was cancelled because of it
        return False
