"""Externally computed model scores: one current version per model, replaced atomically."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import psycopg

from feedcore.db.connection import wait_for_lock
from feedcore.db.model_files import InvalidModelFile

# Serializes model imports with erasures: an erasure either commits before an import drops the erased users'
# rows, or deletes the rows the import committed.
ERASURE_LOCK_KEY = 7_246_201_121
# The rows of users erased since the file was written, or not seen since their erasure.
_DROP_ERASED_USERS = """
DELETE FROM model_scores m USING user_erasures e
WHERE m.model = %(model)s AND m.user_id = e.user_id
  AND (e.erased_at >= %(modified_at)s OR NOT EXISTS (SELECT FROM events v WHERE v.user_id = e.user_id))
"""


def is_known_version(conn: psycopg.Connection, model: str, source: str, modified_at: datetime, etag: str) -> bool:
    """Whether the model's file (S3 key, modification time, ETag) is its imported version or the file last refused:
    either needs no import. A row recorded before migration 0127 has no ETag and stands for the key and time it
    names, whatever their ETag (see the migration)."""
    (known,) = conn.execute(
        """
        SELECT EXISTS (
            SELECT FROM model_versions
            WHERE model = %(model)s AND source = %(source)s AND modified_at = %(modified_at)s
              AND (etag = %(etag)s OR etag IS NULL)
            UNION ALL
            SELECT FROM model_refusals
            WHERE model = %(model)s AND source = %(source)s AND modified_at = %(modified_at)s
              AND (etag = %(etag)s OR etag IS NULL)
        )
        """,
        {"model": model, "source": source, "modified_at": modified_at, "etag": etag},
    ).fetchone()
    return known


def remember_refusal(conn: psycopg.Connection, model: str, source: str, modified_at: datetime, etag: str) -> None:
    """Record that the model's file (S3 key, modification time, ETag) was refused, so that it is not read again."""
    conn.execute(
        """
        INSERT INTO model_refusals (model, source, modified_at, etag) VALUES (%s, %s, %s, %s)
        ON CONFLICT (model) DO UPDATE SET source = excluded.source, modified_at = excluded.modified_at,
            etag = excluded.etag, refused_at = now()
        """,
        (model, source, modified_at, etag),
    )


def lock_erasures(conn: psycopg.Connection) -> None:
    """Wait for a running erasure or model import, and keep the others out until this transaction ends; raises
    LockWaitTimedOut when the transaction's statement timeout ends the wait."""
    wait_for_lock(conn, "SELECT pg_advisory_xact_lock(%s)", (ERASURE_LOCK_KEY,))


def remember_erasure(conn: psycopg.Connection, user_id: str) -> None:
    """Record that the user was erased now, so that model files written before cannot bring their rows back, and
    feeds made before are not recorded (migration 0121). The erasure's last statement before its commit: its time
    is this statement's (clock_timestamp()), not the transaction's start, which may be minutes before the commit
    (an erasure's deletes may each take the statement timeout), out of 0121's one-minute window; for the model
    import, a later time only leaves out the rows of more files (those written while the erasure ran)."""
    conn.execute(
        """
        INSERT INTO user_erasures (user_id, erased_at) VALUES (%s, clock_timestamp())
        ON CONFLICT (user_id) DO UPDATE SET erased_at = clock_timestamp()
        """,
        (user_id,),
    )


@dataclass(frozen=True)
class ReplacedScores:
    rows: int  # rows imported
    erased_user_rows: int  # rows of erased users left out


def replace_scores(
    conn: psycopg.Connection,
    model: str,
    source: str,
    modified_at: datetime,
    etag: str,
    rows: Iterable[tuple[str, str, float]],
) -> ReplacedScores:
    """Swap in a new version of the model's (user_id, item_id, score) rows, read from the file (S3 key `source`,
    `modified_at`, `etag`), within the caller's transaction: readers see the old version until it commits. Raises
    InvalidModelFile when a (user_id, item_id) repeats (the caller's transaction then refuses the file whole).

    Rows of an erased user are left out when the file was written before the user's latest erasure, or when
    the user has no events since it (the file then scores them from data that no longer exists)."""
    # First: the DELETE below locks the rows an erasure deletes, and an erasure holds this lock while it waits
    # for them (taken after the DELETE, the two would deadlock). An erasure waits for the import, or answers 503.
    lock_erasures(conn)
    conn.execute("DELETE FROM model_scores WHERE model = %s", (model,))
    count = 0
    try:
        with conn.cursor().copy("COPY model_scores (model, user_id, item_id, score) FROM STDIN") as copy:
            for user_id, item_id, score in rows:
                copy.write_row((model, user_id, item_id, score))
                count += 1
    except psycopg.errors.UniqueViolation as error:
        raise InvalidModelFile(f"{source}: a (user_id, item_id) appears twice ({error.diag.message_detail})") from error
    erased_user_rows = conn.execute(_DROP_ERASED_USERS, {"model": model, "modified_at": modified_at}).rowcount
    count -= erased_user_rows
    conn.execute(
        """
        INSERT INTO model_versions (model, source, modified_at, etag, rows) VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (model) DO UPDATE SET source = excluded.source, modified_at = excluded.modified_at,
            etag = excluded.etag, rows = excluded.rows, imported_at = now()
        """,
        (model, source, modified_at, etag, count),
    )
    return ReplacedScores(rows=count, erased_user_rows=erased_user_rows)
