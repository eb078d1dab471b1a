"""Model score files in S3: `s3://<bucket>/<prefix><model>/<file>.csv`, columns user_id, item_id, score
(user_id empty for a score that applies to everyone). The newest file of each model is its current version."""

from __future__ import annotations

import codecs
import csv
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

# The same spelling the API accepts for identifiers.
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")


@dataclass(frozen=True)
class ModelFile:
    model: str
    key: str
    modified_at: datetime


class InvalidModelFile(ValueError):
    """A model file has a row that is not (user_id, item_id, score)."""


@cache
def _s3() -> Any:
    import boto3

    return boto3.client("s3")


def newest_files(bucket: str, prefix: str) -> list[ModelFile]:
    """The newest CSV file under each model's folder."""
    newest: dict[str, ModelFile] = {}
    for page in _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            model, _, name = entry["Key"][len(prefix) :].partition("/")
            if not name.endswith(".csv") or not model:
                continue
            candidate = ModelFile(model, entry["Key"], entry["LastModified"])
            # Newest by modification time; a tie goes to the later name (files named by date or version).
            current = newest.get(model)
            if current is None or (candidate.modified_at, candidate.key) > (current.modified_at, current.key):
                newest[model] = candidate
    return sorted(newest.values(), key=lambda f: f.model)


def read_scores(bucket: str, key: str) -> Iterator[tuple[str, str, float]]:
    """Stream the file's rows as (user_id or '', item_id, score); raises InvalidModelFile on a bad row."""
    body = _s3().get_object(Bucket=bucket, Key=key)["Body"]
    reader = csv.DictReader(codecs.getreader("utf-8")(body))
    if not reader.fieldnames or not {"item_id", "score"} <= set(reader.fieldnames):
        raise InvalidModelFile(f"{key}: the header must name item_id and score (and optionally user_id)")
    for line, row in enumerate(reader, start=2):
        user_id, item_id = (row.get("user_id") or "").strip(), (row.get("item_id") or "").strip()
        try:
            score = float(row.get("score") or "nan")
        except ValueError:
            score = math.nan
        if not _IDENTIFIER.match(item_id) or (user_id and not _IDENTIFIER.match(user_id)) or not math.isfinite(score):
            raise InvalidModelFile(f"{key}, line {line}: expected user_id?, item_id, finite score; got {row}")
        yield user_id, item_id, score
