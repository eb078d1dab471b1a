"""Import of model score files from S3 (moto) by the scheduled run, against the real database."""

from __future__ import annotations

import io
import json
import math
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from time import monotonic, sleep

import boto3
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from moto import mock_aws
from moto.s3 import models as moto_s3

from feedcore import settings
from feedcore.db import model_files
from feedcore.db import models as models_db
from feedcore.db.connection import reset_cached_connection
from feedcore.db.migrations import migrate
from feedcore.errors import ModelImportFailed
from feedcore.ingestion.privacy import delete_user
from feedcore.scoring.models import import_model_scores
from feedlocal.embedded import MIGRATIONS_DIR
from tests.aws_events import REGION, LambdaContext
from tests.conftest import (
    LOCK_WAIT_AT_MOST_S,
    load_function,
    migrate_before,
    run_feedctl,
    scratch_database,
    use_database,
    wait_until_blocked_by,
)
from tests.factories import purchase, record

recompute = load_function("recompute_scores")
BUCKET = "ml-model-scores"
IMPORT_TIMEOUT_MS = 60_000


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    with mock_aws():
        model_files._s3.cache_clear()  # the client is cached per container; make one inside moto
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        monkeypatch.setenv("MODEL_SCORES_BUCKET", BUCKET)
        settings.model_score_settings.cache_clear()
        yield client
    model_files._s3.cache_clear()
    settings.model_score_settings.cache_clear()


class S3Clock:
    """moto's clock for S3, stopped: files are written at `now` until it is moved."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 12, 0, 0)  # naive UTC, as moto keeps it


@pytest.fixture
def s3_clock(monkeypatch: pytest.MonkeyPatch) -> S3Clock:
    clock = S3Clock()
    monkeypatch.setattr(moto_s3, "utcnow", lambda: clock.now)
    return clock


def upload(s3, key: str, body: str | bytes) -> str:
    """Write the file `model-scores/<key>`; its ETag."""
    body = body.encode() if isinstance(body, str) else body
    return s3.put_object(Bucket=BUCKET, Key=f"model-scores/{key}", Body=body)["ETag"]


def files_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys of the files the import reads, in order (filled as it reads)."""
    read: list[str] = []
    read_scores = model_files.read_scores

    def counted(bucket: str, key: str, etag: str) -> Iterator[tuple[str, str, float]]:
        read.append(key)
        return read_scores(bucket, key, etag)

    monkeypatch.setattr(model_files, "read_scores", counted)
    return read


def parquet(**columns: pa.Array | list) -> bytes:
    """A Parquet file of the given columns."""
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


def corrupt_pages(file: bytes) -> bytes:
    """A Parquet file whose footer is intact but whose first data page is garbage (a damaged upload)."""
    return file[:200] + b"\xff" * 200 + file[400:]


def score_named_twice() -> bytes:
    """A Parquet file with two columns named score (Arrow tables may repeat a name)."""
    buffer = io.BytesIO()
    columns = [pa.array(["milk"]), pa.array([1.0]), pa.array([2.0])]
    pq.write_table(pa.Table.from_arrays(columns, names=["item_id", "score", "score"]), buffer)
    return buffer.getvalue()


def string_column(value: bytes) -> pa.Array:
    """A string column of one value holding `value` as it is, UTF-8 or not (as a writer that does not check makes
    it: pa.array would refuse it)."""
    offsets = pa.py_buffer(struct.pack("<2i", 0, len(value)))
    return pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(value)])


def batches_read(monkeypatch: pytest.MonkeyPatch, before_each: Callable[[int], None] = lambda n: None) -> list[int]:
    """The row counts of the batches the Parquet reader takes, in order (filled as it reads); `before_each` is
    called with a batch's index before the reader gets it."""
    taken: list[int] = []
    iter_batches = pq.ParquetFile.iter_batches

    def counted(self: pq.ParquetFile, *args: object, **kwargs: object) -> Iterator[pa.RecordBatch]:
        for batch in iter_batches(self, *args, **kwargs):
            before_each(len(taken))
            taken.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counted)
    return taken


def add_expired_snapshot(conn: psycopg.Connection) -> None:
    conn.execute(
        "INSERT INTO feed_snapshots (feed_id, user_id, expires_at, sections) "
        "VALUES ('f-expired', 'user-1', now() - interval '1 second', '[]')"
    )


def scores(conn: psycopg.Connection, model: str) -> dict[tuple[str, str], float]:
    rows = conn.execute("SELECT user_id, item_id, score FROM model_scores WHERE model = %s", (model,)).fetchall()
    return {(user, item): score for user, item, score in rows}


def test_the_newest_file_of_each_model_is_swapped_in_once(s3, db: psycopg.Connection) -> None:
    upload(s3, "picked_for_you/2026-11-01.csv", "user_id,item_id,score\nuser-1,milk,0.9\nuser-1,eggs,0.4\n")
    upload(s3, "picked_for_you/2026-11-02.csv", "user_id,item_id,score\nuser-1,coffee,0.8\n,milk,0.1\n")
    upload(s3, "item_quality/v1.csv", "item_id,score\nmilk,3.5\n")
    upload(s3, "picked_for_you/notes.txt", "not a score file")

    first = import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)
    again = import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)

    assert sorted((i.model, i.rows) for i in first) == [("item_quality", 1), ("picked_for_you", 2)]
    assert again == []  # nothing new
    assert scores(db, "picked_for_you") == {("user-1", "coffee"): 0.8, ("", "milk"): 0.1}
    assert scores(db, "item_quality") == {("", "milk"): 3.5}

    upload(s3, "picked_for_you/2026-11-03.csv", "user_id,item_id,score\nuser-2,bread,0.7\n")
    (swapped,) = import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)
    assert swapped.source == "model-scores/picked_for_you/2026-11-03.csv"
    assert scores(db, "picked_for_you") == {("user-2", "bread"): 0.7}  # the old version is gone whole


@pytest.mark.parametrize(
    "bad_file",
    [
        "item_id,score\nmilk,high\n",
        "item_id,score\nbad item!,1\n",
        "product,score\nmilk,1\n",
        "item_id,score\nmilk,inf\n",
        "user_id,item_id,score\nuser-1,milk,1\nuser-1,milk,2\n",
        b"item_id,score\nmilk,1\neggs,2\xe9\n",
        b"item_id,sc\xf6re\nmilk,1\n",
        "item_id,score,score\nmilk,1,2\n",
        "user_id,item_id,score\nuser-1,eggs,2\nuser-1,milk,1,5\n",
    ],
    ids=["score-not-a-number", "bad-item-id", "wrong-header", "infinite-score", "repeated-pair", "latin-1-row",
         "latin-1-header", "score-named-twice", "decimal-comma"],
)  # fmt: skip
def test_a_bad_file_is_refused_and_the_previous_version_kept(s3, db: psycopg.Connection, bad_file: str | bytes) -> None:
    upload(s3, "item_quality/v1.csv", "item_id,score\nmilk,3.5\n")
    import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)
    upload(s3, "item_quality/v2.csv", bad_file)

    assert import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS) == []
    assert scores(db, "item_quality") == {("", "milk"): 3.5}


@pytest.mark.parametrize(
    "csv_file",
    [
        # Counted by rows, blank lines (and line breaks inside quotes) were left out: this row was called line 3.
        'item_id,score\n\n"milk",1\n\neggs,high\n',
        # Read through a codecs reader, U+2028 and U+0085 ended lines too, as str.splitlines has them: line 7.
        'item_id,score\nmilk,1\u2028\n"tea\u0085",2\neggs,1\r\neggs,high\n',
    ],
    ids=["blank-lines", "unicode-line-separators"],
)
def test_a_refusal_names_the_line_of_the_file_that_holds_the_bad_row(
    s3, db: psycopg.Connection, caplog: pytest.LogCaptureFixture, csv_file: str
) -> None:
    upload(s3, "item_quality/v1.csv", csv_file)

    assert import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS) == []
    [refused] = [r for r in caplog.records if r.getMessage() == "model file refused"]
    assert "item_quality/v1.csv, line 5: expected user_id?, item_id, finite score" in str(refused.exc_info[1])


def test_a_refused_file_is_remembered_and_not_read_again_until_a_newer_one_comes(
    s3, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = files_read(monkeypatch)
    upload(s3, "item_quality/v1.csv", "item_id,score\nmilk,high\n")

    assert import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS) == []
    assert import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS) == []
    assert read == ["model-scores/item_quality/v1.csv"]  # refused once, then known
    assert db.execute("SELECT model, source FROM model_refusals").fetchall() == [
        ("item_quality", "model-scores/item_quality/v1.csv")
    ]

    upload(s3, "item_quality/v2.csv", "item_id,score\nmilk,3.5\n")
    (imported,) = import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)
    assert imported.source == "model-scores/item_quality/v2.csv"
    assert scores(db, "item_quality") == {("", "milk"): 3.5}


@pytest.mark.parametrize(
    "first", ["item_id,score\nmilk,3.5\n", "item_id,score\nmilk,high\n"], ids=["imported", "refused"]
)
def test_a_file_written_again_within_the_same_second_is_a_new_version(
    s3, s3_clock: S3Clock, db: psycopg.Connection, first: str
) -> None:
    # S3's LastModified has whole seconds: the two writes are listed alike but for their ETag.
    upload(s3, "item_quality/v1.csv", first)
    (listed_first,) = model_files.newest_files(BUCKET, "model-scores/")
    import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)
    etag = upload(s3, "item_quality/v1.csv", "item_id,score\nmilk,4.5\n")
    (listed_again,) = model_files.newest_files(BUCKET, "model-scores/")

    (imported,) = import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)

    assert listed_again.modified_at == listed_first.modified_at and listed_again.etag != listed_first.etag
    assert imported.source == "model-scores/item_quality/v1.csv"
    assert scores(db, "item_quality") == {("", "milk"): 4.5}
    assert db.execute("SELECT etag FROM model_versions").fetchall() == [(etag,)]
    assert import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS) == []  # then known


def test_versions_recorded_before_0127_stand_for_their_key_and_time_until_a_newer_file_comes(
    s3, s3_clock: S3Clock, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    upload(s3, "item_quality/v1.csv", "item_id,score\nmilk,3.5\n")
    upload(s3, "picked_for_you/v1.csv", "item_id,score\nmilk,high\n")
    listed = {f.model: f for f in model_files.newest_files(BUCKET, "model-scores/")}
    with scratch_database(database_url, "feed_etag") as url, psycopg.connect(url, autocommit=True) as conn:
        migrate_before(conn, "0127", tmp_path)
        # As the code before 0127 recorded them: the imported version of one model, the refused file of the other.
        quality, picked = listed["item_quality"], listed["picked_for_you"]
        conn.execute(
            "INSERT INTO model_versions (model, source, modified_at, rows) VALUES ('item_quality', %s, %s, 1)",
            (quality.key, quality.modified_at),
        )
        conn.execute(
            "INSERT INTO model_refusals (model, source, modified_at) VALUES ('picked_for_you', %s, %s)",
            (picked.key, picked.modified_at),
        )
        assert "0127" in migrate(conn, MIGRATIONS_DIR)
        use_database(url)
        try:
            read = files_read(monkeypatch)
            assert import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS) == []
            assert read == []  # neither file read again after the upgrade

            s3_clock.now += timedelta(seconds=1)  # both written again, a second later
            quality_etag = upload(s3, "item_quality/v1.csv", "item_id,score\nmilk,4.5\n")
            picked_etag = upload(s3, "picked_for_you/v1.csv", "item_id,score\nmilk,0.5\n")
            imported = import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)

            assert sorted(i.model for i in imported) == ["item_quality", "picked_for_you"]
            assert conn.execute("SELECT model, etag FROM model_versions ORDER BY model").fetchall() == [
                ("item_quality", quality_etag), ("picked_for_you", picked_etag)
            ]  # fmt: skip
        finally:
            use_database(database_url)


@pytest.mark.parametrize(
    ("name", "listed", "written_after"),
    [
        ("v1.csv", "item_id,score\nmilk,3.5\n", "item_id,score\nmilk,4.5\n"),
        ("v1.parquet", parquet(item_id=["milk"], score=[3.5]), parquet(item_id=["milk"], score=[4.5])),
    ],
    ids=["csv", "parquet"],
)
def test_a_file_written_again_after_it_was_listed_is_left_to_the_next_run_which_imports_it(
    s3, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch, name: str, listed: str | bytes,
    written_after: str | bytes,
) -> None:  # fmt: skip
    upload(s3, f"a_replaced/{name}", listed)
    upload(s3, "b_fine/v1.csv", "item_id,score\neggs,1.5\n")
    newest_files = model_files.newest_files

    def listed_then_written_again(bucket: str, prefix: str) -> list[model_files.ModelFile]:
        files = newest_files(bucket, prefix)
        upload(s3, f"a_replaced/{name}", written_after)
        return files

    monkeypatch.setattr(model_files, "newest_files", listed_then_written_again)
    added = []
    monkeypatch.setattr(
        "feedcore.scoring.models.metrics.add_metric", lambda name, unit, value: added.append((name, value))
    )

    imported = import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)  # not a failure

    assert [i.model for i in imported] == ["b_fine"]
    assert added == [("ModelFileReplaced", 1)]
    assert scores(db, "a_replaced") == {}  # not imported under the version listed
    assert scores(db, "b_fine") == {("", "eggs"): 1.5}
    assert db.execute("SELECT count(*) FROM model_refusals").fetchone() == (0,)  # not refused: read again next run
    monkeypatch.setattr(model_files, "newest_files", newest_files)
    (imported,) = import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)
    assert imported.model == "a_replaced"
    assert scores(db, "a_replaced") == {("", "milk"): 4.5}


def test_the_s3_client_has_its_own_timeouts_and_attempts() -> None:
    model_files._s3.cache_clear()
    try:
        config = model_files._s3().meta.config
    finally:
        model_files._s3.cache_clear()

    assert (config.connect_timeout, config.read_timeout) == (
        model_files.S3_CONNECT_TIMEOUT_S, model_files.S3_READ_TIMEOUT_S
    )  # fmt: skip
    assert config.retries == {"total_max_attempts": model_files.S3_ATTEMPTS, "mode": "standard"}


def test_an_s3_endpoint_that_does_not_answer_costs_a_call_its_attempts_at_the_read_timeout_whatever_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(model_files, "S3_READ_TIMEOUT_S", 0.2)
    # Settings that would make botocore try once (legacy mode) if the client took them from the environment.
    for name, value in {"AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "legacy", "AWS_ACCESS_KEY_ID": "local",
                        "AWS_SECRET_ACCESS_KEY": "local"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    # The kernel completes the connections (up to the backlog); nothing reads or answers them.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
        model_files._s3.cache_clear()
        attempts: list[str] = []
        model_files._s3().meta.events.register(
            "before-send.s3.ListObjectsV2", lambda request, **kwargs: attempts.append(request.url)
        )
        started = monotonic()
        try:
            with pytest.raises(ReadTimeoutError):
                model_files.newest_files(BUCKET, "model-scores/")
        finally:
            model_files._s3.cache_clear()

    assert len(attempts) == model_files.S3_ATTEMPTS == 3
    assert monotonic() - started < 3 * 0.2 + 2  # three reads of 0.2 s and the backoffs, not botocore's 60 s


def test_one_models_failure_leaves_the_others_imported_and_fails_the_run_at_the_end(
    s3, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_expired_snapshot(db)
    upload(s3, "a_unreadable/v1.csv", "item_id,score\nmilk,1\n")  # named first, and smallest
    upload(s3, "b_refused/v1.csv", "item_id,score\nmilk,high\n")
    upload(s3, "c_fine/v1.csv", "item_id,score\nmilk,3.5\neggs,1.5\n")
    read_scores = model_files.read_scores

    def denied_for_a(bucket: str, key: str, etag: str) -> Iterator[tuple[str, str, float]]:
        if key.startswith("model-scores/a_unreadable/"):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")
        return read_scores(bucket, key, etag)

    monkeypatch.setattr(model_files, "read_scores", denied_for_a)
    added = []
    monkeypatch.setattr(
        "feedcore.scoring.models.metrics.add_metric", lambda name, unit, value: added.append((name, value))
    )

    with pytest.raises(ModelImportFailed, match="a_unreadable: ClientError") as failed:
        recompute.lambda_handler({"mode": "incremental"}, LambdaContext(function_name="recompute_scores"))

    assert set(failed.value.failures) == {"a_unreadable"}  # a refused file is not a failure of the run
    assert scores(db, "c_fine") == {("", "milk"): 3.5, ("", "eggs"): 1.5}
    assert scores(db, "a_unreadable") == {}
    assert sorted(m for m in added if m[0].startswith("Model")) == [("ModelFileRefused", 1), ("ModelImportFailed", 1)]
    assert db.execute("SELECT count(*) FROM feed_snapshots").fetchone()[0] == 0

    monkeypatch.setattr(model_files, "read_scores", read_scores)  # S3 answers again: the next run imports it
    assert [i.model for i in import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)] == [
        "a_unreadable"
    ]


def test_a_refusal_that_cannot_be_remembered_leaves_the_others_imported_and_fails_the_run(
    s3, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload(s3, "a_refused/v1.csv", "item_id,score\nmilk,high\n")
    upload(s3, "b_fine/v1.csv", "item_id,score\nmilk,3.5\neggs,1.5\n")

    def unreachable(*args: object) -> None:
        raise psycopg.OperationalError("the server closed the connection")

    remember_refusal = models_db.remember_refusal
    monkeypatch.setattr(models_db, "remember_refusal", unreachable)

    with pytest.raises(ModelImportFailed, match="a_refused: DatabaseUnavailable") as failed:
        import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)

    assert set(failed.value.failures) == {"a_refused"}
    assert scores(db, "b_fine") == {("", "milk"): 3.5, ("", "eggs"): 1.5}
    monkeypatch.setattr(models_db, "remember_refusal", remember_refusal)  # the next run refuses it again
    assert import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS) == []


def test_an_import_that_times_out_for_one_model_leaves_the_others_imported(
    s3, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload(s3, "a_slow/v1.csv", "item_id,score\nmilk,1\n")
    upload(s3, "b_fine/v1.csv", "item_id,score\nmilk,3.5\n")
    replace_scores = models_db.replace_scores

    def slow_for_a(conn: psycopg.Connection, model: str, *args: object) -> models_db.ReplacedScores:
        if model == "a_slow":
            conn.execute("SELECT pg_sleep(5)")  # past the import's statement timeout: a file too large for it
        return replace_scores(conn, model, *args)

    monkeypatch.setattr(models_db, "replace_scores", slow_for_a)

    with pytest.raises(ModelImportFailed, match="a_slow: DatabaseUnavailable: .*statement timeout"):
        import_model_scores(settings.model_score_settings(), 1_000)

    assert scores(db, "b_fine") == {("", "milk"): 3.5}
    assert scores(db, "a_slow") == {}


def test_the_smallest_files_are_imported_first_so_one_too_large_for_the_time_left_keeps_none_out(s3) -> None:
    upload(s3, "a_large/v1.csv", "item_id,score\n" + "".join(f"item-{i},1\n" for i in range(1000)))
    upload(s3, "b_small/v1.csv", "item_id,score\nmilk,1\n")
    upload(s3, "c_small/v1.csv", "item_id,score\neggs,1\n")

    newest = model_files.newest_files(BUCKET, "model-scores/")

    assert [f.model for f in newest] == ["b_small", "c_small", "a_large"]


@pytest.mark.parametrize(
    ("name", "body", "unknown"),
    [
        ("v1.csv", "userid,item_id,score\nuser-1,milk,1\n", "'userid'"),
        ("v1.csv", "user_id,item_id,score,\nuser-1,milk,1,\n", "''"),  # a trailing comma: an unnamed column
        ("v1.parquet", parquet(userid=["user-1"], item_id=["milk"], score=[1.0]), "'userid'"),
        ("v1.parquet", parquet(item_id=["milk"], score=[1.0], weight=[2.0], rank=[1]), "'weight', 'rank'"),
    ],
    ids=["csv-misspelt-user-id", "csv-unnamed", "parquet-misspelt-user-id", "parquet-two-extra"],
)
def test_a_file_with_an_unknown_column_is_refused_naming_it(
    s3, db: psycopg.Connection, name: str, body: str | bytes, unknown: str
) -> None:
    # Ignored, a misspelt user_id column would make every per-user row a score for everyone.
    etag = upload(s3, f"picked_for_you/{name}", body)

    with pytest.raises(model_files.InvalidModelFile, match=f"unknown columns {unknown};"):
        list(model_files.read_scores(BUCKET, f"model-scores/picked_for_you/{name}", etag))
    assert import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS) == []
    assert scores(db, "picked_for_you") == {}


def test_a_parquet_file_written_by_pandas_with_its_index_is_imported(s3, db: psycopg.Connection) -> None:
    # pandas.DataFrame.to_parquet stores an index that is not 0..n-1 (rows filtered, say) as a column it names in
    # the file's metadata.
    table = pa.table({"user_id": ["user-1"], "item_id": ["milk"], "score": [0.9], "__index_level_0__": [7]})
    pandas_metadata = {"index_columns": ["__index_level_0__"], "columns": [], "column_indexes": []}
    buffer = io.BytesIO()
    pq.write_table(table.replace_schema_metadata({"pandas": json.dumps(pandas_metadata)}), buffer)
    upload(s3, "picked_for_you/v1.parquet", buffer.getvalue())

    (imported,) = import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)

    assert imported.rows == 1
    assert scores(db, "picked_for_you") == {("user-1", "milk"): 0.9}


def test_a_parquet_file_of_categorical_or_string_view_ids_is_imported(s3, db: psycopg.Connection) -> None:
    # pandas writes a column of dtype "category" as a dictionary of its strings (user ids repeat: a natural
    # categorical); Arrow's string_view is text too. Both were refused as not string.
    user_ids = pa.array(["user-1", "user-1", None]).dictionary_encode()
    item_ids = pa.array(["milk", "eggs", "milk"], pa.string_view())
    upload(s3, "picked_for_you/v1.parquet", parquet(user_id=user_ids, item_id=item_ids, score=[0.9, 0.5, 0.1]))

    (imported,) = import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)

    assert imported.rows == 3
    assert scores(db, "picked_for_you") == {("user-1", "milk"): 0.9, ("user-1", "eggs"): 0.5, ("", "milk"): 0.1}


def test_a_csv_file_written_with_a_byte_order_mark_keeps_its_user_ids(s3, db: psycopg.Connection) -> None:
    # As spreadsheet tools save "CSV UTF-8": read without its mark, the header's first column would not be user_id,
    # and every row would become a score for everyone.
    upload(s3, "picked_for_you/v1.csv", "\ufeffuser_id,item_id,score\nuser-1,milk,0.9\nuser-2,milk,0.4\n")

    (imported,) = import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)

    assert imported.rows == 2
    assert scores(db, "picked_for_you") == {("user-1", "milk"): 0.9, ("user-2", "milk"): 0.4}


def test_a_csv_header_spaced_like_its_values_keeps_its_user_ids(s3, db: psycopg.Connection) -> None:
    # "item_id,score, user_id" read as it stands has no user_id column: every row would be a score for everyone.
    upload(s3, "picked_for_you/v1.csv", "item_id,score, user_id\nmilk,0.9, user-1\n")

    import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)

    assert scores(db, "picked_for_you") == {("user-1", "milk"): 0.9}


def test_an_import_that_fails_still_lets_the_run_remove_expired_snapshots(
    s3, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_expired_snapshot(db)
    monkeypatch.setenv("MODEL_SCORES_BUCKET", "no-such-bucket")  # S3 answers NoSuchBucket
    settings.model_score_settings.cache_clear()

    with pytest.raises(ClientError, match="NoSuchBucket"):
        recompute.lambda_handler({"mode": "incremental"}, LambdaContext(function_name="recompute_scores"))

    assert db.execute("SELECT count(*) FROM feed_snapshots").fetchone()[0] == 0


def test_feedctl_recompute_with_a_bucket_it_cannot_reach_says_so_in_one_line(
    db: psycopg.Connection, database_url: str
) -> None:
    unreachable = {"MODEL_SCORES_BUCKET": BUCKET, "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
                   "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}  # fmt: skip

    done = run_feedctl(database_url, "recompute", check=False, env=unreachable)

    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("feedctl recompute: AWS: Could not connect to the endpoint")
    assert "Traceback" not in done.stderr


def test_the_scheduled_run_imports_after_recomputing(s3, db: psycopg.Connection) -> None:
    upload(s3, "picked_for_you/a.csv", "user_id,item_id,score\nuser-1,milk,0.9\n")

    result = recompute.lambda_handler({"mode": "incremental"}, LambdaContext(function_name="recompute_scores"))

    assert result["status"] == "completed"
    assert result["models_imported"] == ["picked_for_you"]


def test_parquet_files_are_imported_like_csv_and_the_newest_file_wins_whatever_its_format(
    s3, db: psycopg.Connection
) -> None:
    upload(s3, "picked_for_you/2026-11-01.csv", "user_id,item_id,score\nuser-1,milk,0.9\n")
    upload(s3, "item_quality/v1.parquet", parquet(item_id=["milk", "eggs"], score=pa.array([3, 1], pa.int32())))
    import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)
    assert scores(db, "item_quality") == {("", "milk"): 3.0, ("", "eggs"): 1.0}  # no user_id column: item-level

    upload(
        s3,
        "picked_for_you/2026-11-02.parquet",
        parquet(user_id=["user-1", None, ""], item_id=["coffee", "milk", "eggs"], score=[0.8, 0.1, 0.2]),
    )
    (swapped,) = import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)

    assert (swapped.source, swapped.rows) == ("model-scores/picked_for_you/2026-11-02.parquet", 3)
    assert scores(db, "picked_for_you") == {("user-1", "coffee"): 0.8, ("", "milk"): 0.1, ("", "eggs"): 0.2}


def test_a_large_parquet_file_is_read_batch_by_batch_within_the_import_timeout(
    s3, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Far too short for this file: the import must bound its statements by its own timeout instead.
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "100")
    settings.database_settings.cache_clear()
    reset_cached_connection()
    count = 2 * model_files.PARQUET_BATCH_ROWS + 5
    upload(s3, "item_quality/v1.parquet", parquet(item_id=[f"item-{n}" for n in range(count)], score=range(count)))
    batches = batches_read(monkeypatch)

    (imported,) = import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)

    assert batches == [model_files.PARQUET_BATCH_ROWS] * 2 + [5]
    assert imported.rows == count
    assert db.execute("SELECT sum(score) FROM model_scores").fetchone() == (count * (count - 1) / 2,)


def test_the_import_bounds_its_statements_and_idle_time_by_its_own_timeout(
    s3, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload(s3, "item_quality/v1.csv", "item_id,score\nmilk,3.5\n")
    limits = []
    is_known_version = models_db.is_known_version

    def read_limits_then_versions(conn: psycopg.Connection, *args: object) -> bool:
        limits.append(
            conn.execute(
                "SELECT current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout')"
            ).fetchone()
        )
        return is_known_version(conn, *args)

    monkeypatch.setattr(models_db, "is_known_version", read_limits_then_versions)
    (imported,) = import_model_scores(settings.model_score_settings(), 5_000)

    assert imported.rows == 1
    assert limits == [("5s", "5s")]


@pytest.mark.parametrize(
    "bad_file",
    [
        parquet(item_id=["milk"], score=["high"]),
        parquet(item_id=["bad item!"], score=[1.0]),
        parquet(product=["milk"], score=[1.0]),
        parquet(item_id=["milk"], score=[math.inf]),
        parquet(item_id=["milk", None], score=[1.0, 2.0]),
        parquet(item_id=["milk"], score=pa.array([None], pa.float64())),
        parquet(user_id=[7], item_id=["milk"], score=[1.0]),
        parquet(item_id=["milk\n"], score=[1.0]),
        b"item_id,score\nmilk,1\n",
        corrupt_pages(parquet(item_id=[f"item-{n}" for n in range(3000)], score=[1.0] * 3000)),
        score_named_twice(),
        parquet(item_id=string_column(b"mi\xfflk"), score=[1.0]),
    ],
    ids=[
        "score-not-a-number",
        "bad-item-id",
        "no-item-id",
        "infinite-score",
        "null-item-id",
        "null-score",
        "numeric-user-id",
        "item-id-ending-in-a-newline",
        "not-parquet",
        "corrupt-data-page",
        "score-named-twice",
        "item-id-not-utf-8",
    ],  # fmt: skip
)
def test_a_bad_parquet_file_is_refused_and_the_previous_version_kept(
    s3, db: psycopg.Connection, bad_file: bytes
) -> None:
    upload(s3, "item_quality/v1.csv", "item_id,score\nmilk,3.5\n")
    import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)
    upload(s3, "item_quality/v2.parquet", bad_file)

    assert import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS) == []
    assert scores(db, "item_quality") == {("", "milk"): 3.5}


def test_a_bad_row_in_a_later_batch_is_found_after_the_earlier_batches_were_copied_and_nothing_is_swapped_in(
    s3, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload(s3, "item_quality/v1.csv", "item_id,score\nmilk,3.5\n")
    import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)
    good_rows = 2 * model_files.PARQUET_BATCH_ROWS
    item_ids = [f"item-{n}" for n in range(good_rows)] + ["bad item!"]  # in the third batch
    upload(s3, "item_quality/v2.parquet", parquet(item_id=item_ids, score=[1.0] * len(item_ids)))
    copying_before: list[bool] = []  # whether the import's COPY had taken rows when the reader got each batch

    def copying(batch: int) -> None:
        # Waits (at most 30 s) for a later batch: the client sends rows ahead of the server reading them.
        deadline = monotonic() + 30
        while True:
            (copied,) = db.execute(
                "SELECT coalesce(sum(tuples_processed), 0) FROM pg_stat_progress_copy"
                " WHERE relid = 'model_scores'::regclass"
            ).fetchone()
            if batch == 0 or copied or monotonic() > deadline:
                copying_before.append(copied > 0)
                return
            sleep(0.01)

    batches = batches_read(monkeypatch, copying)

    assert import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS) == []

    assert batches == [model_files.PARQUET_BATCH_ROWS] * 2 + [1]
    assert copying_before == [False, True, True]  # the earlier batches' rows were copied as they were read
    assert scores(db, "item_quality") == {("", "milk"): 3.5}
    assert db.execute("SELECT source FROM model_versions WHERE model = 'item_quality'").fetchone() == (
        "model-scores/item_quality/v1.csv",
    )


def test_a_file_written_before_an_erasure_is_imported_without_the_erased_user(s3, db: psycopg.Connection) -> None:
    upload(
        s3,
        "picked_for_you/v1.csv",
        "user_id,item_id,score\nuser-1,milk,0.9\nuser-1,eggs,0.4\nuser-2,milk,0.7\n,milk,0.1\n",
    )
    delete_user("user-1")

    (imported,) = import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)

    assert (imported.rows, imported.erased_user_rows) == (2, 2)
    assert scores(db, "picked_for_you") == {("user-2", "milk"): 0.7, ("", "milk"): 0.1}
    assert db.execute("SELECT rows FROM model_versions WHERE model = 'picked_for_you'").fetchone() == (2,)


def test_an_erased_user_is_scored_again_only_by_a_file_written_after_their_return(s3, db: psycopg.Connection) -> None:
    upload(s3, "picked_for_you/v1.csv", "user_id,item_id,score\nuser-1,milk,0.9\n")
    delete_user("user-1")
    record(purchase("user-1"))  # the user comes back after the erasure
    db.execute("UPDATE user_erasures SET erased_at = erased_at - interval '1 hour'")  # the erasure was an hour ago
    upload(s3, "picked_for_you/v2.csv", "user_id,item_id,score\nuser-1,milk,0.9\n")
    (written_after,) = import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)
    assert scores(db, "picked_for_you") == {("user-1", "milk"): 0.9}

    # A file written after the erasure that lists a user who has sent nothing since (a stale training set).
    upload(s3, "picked_for_you/v3.csv", "user_id,item_id,score\nuser-1,milk,0.9\nuser-2,eggs,0.5\n")
    delete_user("user-1")
    db.execute("UPDATE user_erasures SET erased_at = erased_at - interval '1 hour'")
    (not_back,) = import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)

    assert written_after.erased_user_rows == 0
    assert scores(db, "picked_for_you") == {("user-2", "eggs"): 0.5}
    assert not_back.erased_user_rows == 1


def test_an_import_ending_during_an_erasure_waits_for_it_and_leaves_the_user_out(
    s3, db: psycopg.Connection, database_url: str
) -> None:
    upload(s3, "picked_for_you/v1.csv", "user_id,item_id,score\nuser-1,milk,0.9\nuser-2,milk,0.7\n")
    imported: list = []
    importing = threading.Thread(
        target=lambda: imported.extend(import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS))
    )

    with psycopg.connect(database_url) as erasing:  # an erasure between its lock and its commit
        models_db.lock_erasures(erasing)
        models_db.remember_erasure(erasing, "user-1")
        importing.start()
        wait_until_blocked_by(erasing)  # the import waits for the erasure's lock (or this fails)
    importing.join(timeout=10)

    assert scores(db, "picked_for_you") == {("user-2", "milk"): 0.7}
    assert imported[0].erased_user_rows == 1


def test_an_erasure_during_an_import_waits_for_it_instead_of_deadlocking(
    s3, db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload(s3, "picked_for_you/v1.csv", "user_id,item_id,score\nuser-1,milk,0.9\nuser-2,milk,0.7\n")
    import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS)
    upload(s3, "picked_for_you/v2.csv", "user_id,item_id,score\n")
    copying, release = threading.Event(), threading.Event()

    def slow_rows(bucket: str, key: str, etag: str) -> Iterator[tuple[str, str, float]]:  # a large file being copied
        copying.set()
        release.wait(10)
        yield from [("user-1", "eggs", 0.8), ("user-2", "eggs", 0.6)]

    monkeypatch.setattr(model_files, "read_scores", slow_rows)
    monkeypatch.setenv("INGEST_ERASURE_WAIT_MS", "5000")
    settings.ingest_settings.cache_clear()
    imported: list = []
    importing = threading.Thread(
        target=lambda: imported.extend(import_model_scores(settings.model_score_settings(), IMPORT_TIMEOUT_MS))
    )
    importing.start()
    assert copying.wait(10)
    erasure_waited: list[bool] = []

    def finish_the_import_once_the_erasure_waits() -> None:
        with psycopg.connect(database_url, autocommit=True) as observer:
            deadline = monotonic() + LOCK_WAIT_AT_MOST_S
            while monotonic() < deadline and not erasure_waited:
                waiting = observer.execute(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'advisory'"
                ).fetchone()[0]
                erasure_waited.extend([True] if waiting else [])
                sleep(0.01)
        release.set()

    threading.Thread(target=finish_the_import_once_the_erasure_waits).start()
    deletion = delete_user("user-1")  # waits for the import, then deletes what it imported
    importing.join(timeout=10)

    assert erasure_waited  # the erasure did wait for the import's lock
    assert deletion.scores_deleted == 1 and imported[0].rows == 2
    assert scores(db, "picked_for_you") == {("user-2", "eggs"): 0.6}
