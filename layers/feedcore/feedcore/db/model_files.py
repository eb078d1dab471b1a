"""Model score files in S3: `s3://<bucket>/<prefix><model>/<file>.csv` or `….parquet`, columns user_id, item_id,
score (user_id empty, null or absent for a score that applies to everyone). The newest file of each model is its
current version, whichever its format. A version is a key as S3 listed it: its LastModified and its ETag (a file
written again under the key within the same second keeps its LastModified, S3's being whole seconds), and it is read
only while the key still holds it."""

from __future__ import annotations

import csv
import io
import math
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from feedcore.api.models import IDENTIFIER_PATTERN
from feedcore.aws_calls import client_config

# The same spelling the API accepts for identifiers.
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
# File formats by extension.
FORMATS = (".csv", ".parquet")
# The columns a file's rows are read from (user_id optional).
COLUMNS = ("user_id", "item_id", "score")
# Parquet rows validated and handed on per batch: bounds memory whatever the file's size.
PARQUET_BATCH_ROWS = 65_536
# A Parquet file is spooled in memory up to this size, beyond it to the function's ephemeral storage (/tmp),
# which then bounds the size of a Parquet file that can be imported (512 MB unless configured larger).
PARQUET_SPOOL_MEMORY_BYTES = 64 * 1024 * 1024
# The S3 client's bounds, in place of botocore's 60 s timeouts: the import runs in what the scheduled run's 300 s
# leave after the recompute. An in-region endpoint connects in milliseconds, and S3 answers a small request in tens of
# milliseconds (its performance guide retries a slow small GET after 2 s): one silent for these times is not
# answering. A call is tried S3_ATTEMPTS times in all (standard retry mode: throttling, 5xx, timeouts, dropped
# connections; backoffs under 0.2 s, 3 s when throttled), so an endpoint that does not answer costs a call about
# 3 × 10 s (3 × 2 s if it takes no connection), where botocore's 60 s took 3 minutes of the function's 5. Set here,
# not left to botocore's defaults or the environment (AWS_RETRY_MODE, AWS_MAX_ATTEMPTS). The read timeout bounds each
# wait for a body's next bytes too, not a whole download.
S3_CONNECT_TIMEOUT_S = 2
S3_READ_TIMEOUT_S = 10
S3_ATTEMPTS = 3


@dataclass(frozen=True)
class ModelFile:
    model: str
    key: str
    modified_at: datetime  # S3's LastModified: whole seconds
    etag: str  # S3's ETag, quoted as S3 gives it: tells apart files written under the key within the same second
    size: int  # bytes


class ModelFileReplaced(Exception):
    """The key holds another version than the one listed: it was written again since."""


class InvalidModelFile(ValueError):
    """A model file is not UTF-8 CSV or Parquet, or has a row that is not (user_id, item_id, score), or repeats a
    (user_id, item_id)."""


@cache
def _s3() -> Any:
    import boto3

    return boto3.client(
        "s3",
        config=client_config(
            connect_timeout_s=S3_CONNECT_TIMEOUT_S, read_timeout_s=S3_READ_TIMEOUT_S, attempts=S3_ATTEMPTS
        ),
    )


def newest_files(bucket: str, prefix: str) -> list[ModelFile]:
    """The newest score file (CSV or Parquet) under each model's folder, the smallest first: a file too large for
    the time left (imported last) does not keep the others out."""
    newest: dict[str, ModelFile] = {}
    for page in _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            model, _, name = entry["Key"][len(prefix) :].partition("/")
            if not name.endswith(FORMATS) or not model:
                continue
            candidate = ModelFile(model, entry["Key"], entry["LastModified"], entry["ETag"], entry["Size"])
            # Newest by modification time; a tie goes to the later name (files named by date or version).
            current = newest.get(model)
            if current is None or (candidate.modified_at, candidate.key) > (current.modified_at, current.key):
                newest[model] = candidate
    return sorted(newest.values(), key=lambda f: (f.size, f.model))


def read_scores(bucket: str, key: str, etag: str) -> Iterator[tuple[str, str, float]]:
    """Stream the rows of the file `key` holds as version `etag` as (user_id or '', item_id, score), read as CSV or
    Parquet by the key's extension; raises InvalidModelFile on a bad row, header or file (the caller's transaction
    then refuses it whole), and ModelFileReplaced when the key holds another version by then."""
    if key.endswith(".parquet"):
        return _read_parquet(bucket, key, etag)
    return _read_csv(bucket, key, etag)


def _listed_body(bucket: str, key: str, etag: str) -> Any:
    """The body of the object `key` if it is still version `etag`; ModelFileReplaced if it was written again since it
    was listed (rather than be imported under the version listed: the next run lists the new one)."""
    from botocore.exceptions import ClientError

    try:
        return _s3().get_object(Bucket=bucket, Key=key, IfMatch=etag)["Body"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "PreconditionFailed":
            raise ModelFileReplaced(f"{key}: written again since it was listed as {etag}") from error
        raise


def _valid_row(user_id: str, item_id: str, score: float) -> bool:
    # fullmatch: `$` also matches before a final newline, which an id read from Parquet (not stripped) may end with.
    return bool(
        _IDENTIFIER.fullmatch(item_id) and (not user_id or _IDENTIFIER.fullmatch(user_id)) and math.isfinite(score)
    )


def _refuse_unknown_or_repeated_columns(key: str, names: list[str], ignored: frozenset[str] = frozenset()) -> None:
    """A column other than user_id, item_id and score is refused: a misspelt one (`userid`) would otherwise turn
    per-user rows into item-level scores. Naming one twice is ambiguous (and pyarrow finds no field by such a name).
    `ignored`: columns a writer adds on its own (pandas' index)."""
    if unknown := [name for name in names if name not in COLUMNS and name not in ignored]:
        raise InvalidModelFile(
            f"{key}: unknown columns {', '.join(map(repr, unknown))}; expected user_id (optional), item_id, score"
        )
    if repeated := [name for name in COLUMNS if names.count(name) > 1]:
        raise InvalidModelFile(f"{key}: the header names {', '.join(repeated)} more than once")


def _read_csv(bucket: str, key: str, etag: str) -> Iterator[tuple[str, str, float]]:
    body = _listed_body(bucket, key, etag)
    # utf-8-sig: a byte order mark, as spreadsheet tools write one, is not part of the header's first name. newline="":
    # lines end at \n, \r\n or \r alone, as the csv module reads them (a codecs reader also ended them at U+2028,
    # U+0085 and others, and a refused row was named by a line past its own).
    reader = csv.DictReader(io.TextIOWrapper(body, encoding="utf-8-sig", newline=""))
    try:
        if reader.fieldnames:  # names spaced like the values ("user_id, item_id, score"), which are read stripped
            reader.fieldnames = [name.strip() for name in reader.fieldnames]
        if not reader.fieldnames or not {"item_id", "score"} <= set(reader.fieldnames):
            raise InvalidModelFile(f"{key}: the header must name item_id and score (and optionally user_id)")
        _refuse_unknown_or_repeated_columns(key, reader.fieldnames)
        for row in reader:
            line = reader.line_num  # the line the row ends on (a count of rows would skip blank lines)
            if None in row:  # fields past the header's: a decimal comma (`milk,1,5`) would be read as a score of 1
                raise InvalidModelFile(f"{key}, line {line}: more fields than the header names; got {row}")
            user_id, item_id = (row.get("user_id") or "").strip(), (row.get("item_id") or "").strip()
            try:
                score = float(row.get("score") or "nan")
            except ValueError:
                score = math.nan
            if not _valid_row(user_id, item_id, score):
                raise InvalidModelFile(f"{key}, line {line}: expected user_id?, item_id, finite score; got {row}")
            yield user_id, item_id, score
    except (UnicodeDecodeError, csv.Error) as error:
        raise InvalidModelFile(f"{key}, after line {reader.line_num}: not UTF-8 CSV ({error})") from error


def _read_parquet(bucket: str, key: str, etag: str) -> Iterator[tuple[str, str, float]]:
    # Imported here: only Parquet imports pay for loading pyarrow.
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Parquet is read from its footer, so the object is spooled to local storage (memory while small). By one GET of
    # the listed version, not download_fileobj: s3transfer takes no IfMatch argument, and its first request (a HEAD)
    # would pick whichever version the key holds by then.
    with tempfile.SpooledTemporaryFile(max_size=PARQUET_SPOOL_MEMORY_BYTES) as spool:
        shutil.copyfileobj(_listed_body(bucket, key, etag), spool)
        spool.seek(0)
        try:
            parquet = pq.ParquetFile(spool)
        except (pa.ArrowException, OSError) as error:
            raise InvalidModelFile(f"{key}: not a Parquet file ({error})") from error
        schema = parquet.schema_arrow
        # pandas writes a DataFrame's index (one not 0..n-1, say after filtering) as columns its metadata names.
        index_columns = frozenset(
            c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)
        )
        _refuse_unknown_or_repeated_columns(key, schema.names, index_columns)
        columns = [name for name in COLUMNS if name in schema.names]

        def is_text(name: str) -> bool:
            kind = schema.field(name).type
            if pa.types.is_dictionary(kind):  # pandas writes a categorical column as a dictionary of its strings
                kind = kind.value_type
            return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)

        if (
            "item_id" not in columns
            or "score" not in columns
            or not is_text("item_id")
            or ("user_id" in columns and not is_text("user_id"))
            or not (pa.types.is_floating(schema.field("score").type) or pa.types.is_integer(schema.field("score").type))
        ):
            raise InvalidModelFile(f"{key}: expected string item_id, numeric score, optional string user_id; {schema}")
        row = 0
        try:
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
                values = batch.to_pydict()
                user_ids = values.get("user_id") or [None] * batch.num_rows
                for user_id, item_id, score in zip(user_ids, values["item_id"], values["score"], strict=True):
                    row += 1
                    if item_id is None or score is None or not _valid_row(user_id or "", item_id, float(score)):
                        raise InvalidModelFile(
                            f"{key}, row {row}: expected user_id?, item_id, finite score; got {user_id, item_id, score}"
                        )
                    yield user_id or "", item_id, float(score)
        # A damaged page raises OSError ("Corrupt snappy …"); a string column holding bytes that are not UTF-8,
        # UnicodeDecodeError (Parquet writers need not check).
        except (pa.ArrowException, OSError, UnicodeDecodeError) as error:
            raise InvalidModelFile(f"{key}: unreadable Parquet data ({error})") from error
