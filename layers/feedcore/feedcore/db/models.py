"""Externally computed model scores: one current version per model, replaced atomically."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import psycopg

from feedcore.db.model_files import InvalidModelFile


def bound_import(conn: psycopg.Connection, timeout_ms: int) -> None:
    """Give the current transaction's statements `timeout_ms` (a large file outlasts a request's timeout)."""
    conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(timeout_ms),))


def current_version(conn: psycopg.Connection, model: str) -> tuple[str, datetime] | None:
    """The source (S3 key) and modification time of the model's imported version, if any."""
    row = conn.execute("SELECT source, modified_at FROM model_versions WHERE model = %s", (model,)).fetchone()
    return (row[0], row[1]) if row else None


def replace_scores(
    conn: psycopg.Connection, model: str, source: str, modified_at: datetime, rows: Iterable[tuple[str, str, float]]
) -> int:
    """Swap in a new version of the model's (user_id, item_id, score) rows within the caller's transaction:
    readers see the old version until it commits. Returns the row count; raises InvalidModelFile when a
    (user_id, item_id) repeats (the caller's transaction then refuses the file whole)."""
    conn.execute("DELETE FROM model_scores WHERE model = %s", (model,))
    count = 0
    try:
        with conn.cursor().copy("COPY model_scores (model, user_id, item_id, score) FROM STDIN") as copy:
            for user_id, item_id, score in rows:
                copy.write_row((model, user_id, item_id, score))
                count += 1
    except psycopg.errors.UniqueViolation as error:
        raise InvalidModelFile(f"{source}: a (user_id, item_id) appears twice ({error.diag.message_detail})") from error
    conn.execute(
        """
        INSERT INTO model_versions (model, source, modified_at, rows) VALUES (%s, %s, %s, %s)
        ON CONFLICT (model) DO UPDATE SET source = excluded.source, modified_at = excluded.modified_at,
            rows = excluded.rows, imported_at = now()
        """,
        (model, source, modified_at, count),
    )
    return count
