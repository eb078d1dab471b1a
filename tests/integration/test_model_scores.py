"""Import of model score files from S3 (moto) by the scheduled run, against the real database."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import psycopg
import pytest
from moto import mock_aws

from feedcore import settings
from feedcore.db import model_files
from feedcore.scoring.models import import_model_scores
from tests.aws_events import REGION, LambdaContext
from tests.conftest import load_function

recompute = load_function("recompute_scores")
BUCKET = "ml-model-scores"


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


def upload(s3, key: str, body: str) -> None:
    s3.put_object(Bucket=BUCKET, Key=f"model-scores/{key}", Body=body.encode())


def scores(conn: psycopg.Connection, model: str) -> dict[tuple[str, str], float]:
    rows = conn.execute("SELECT user_id, item_id, score FROM model_scores WHERE model = %s", (model,)).fetchall()
    return {(user, item): score for user, item, score in rows}


def test_the_newest_file_of_each_model_is_swapped_in_once(s3, db: psycopg.Connection) -> None:
    upload(s3, "picked_for_you/2026-11-01.csv", "user_id,item_id,score\nuser-1,milk,0.9\nuser-1,eggs,0.4\n")
    upload(s3, "picked_for_you/2026-11-02.csv", "user_id,item_id,score\nuser-1,coffee,0.8\n,milk,0.1\n")
    upload(s3, "item_quality/v1.csv", "item_id,score\nmilk,3.5\n")
    upload(s3, "picked_for_you/notes.txt", "not a score file")

    first = import_model_scores(settings.model_score_settings())
    again = import_model_scores(settings.model_score_settings())

    assert sorted((i.model, i.rows) for i in first) == [("item_quality", 1), ("picked_for_you", 2)]
    assert again == []  # nothing new
    assert scores(db, "picked_for_you") == {("user-1", "coffee"): 0.8, ("", "milk"): 0.1}
    assert scores(db, "item_quality") == {("", "milk"): 3.5}

    upload(s3, "picked_for_you/2026-11-03.csv", "user_id,item_id,score\nuser-2,bread,0.7\n")
    (swapped,) = import_model_scores(settings.model_score_settings())
    assert swapped.source == "model-scores/picked_for_you/2026-11-03.csv"
    assert scores(db, "picked_for_you") == {("user-2", "bread"): 0.7}  # the old version is gone whole


@pytest.mark.parametrize(
    "bad_file",
    [
        "item_id,score\nmilk,high\n",
        "item_id,score\nbad item!,1\n",
        "product,score\nmilk,1\n",
        "item_id,score\nmilk,inf\n",
    ],
    ids=["score-not-a-number", "bad-item-id", "wrong-header", "infinite-score"],
)
def test_a_bad_file_is_refused_and_the_previous_version_kept(s3, db: psycopg.Connection, bad_file: str) -> None:
    upload(s3, "item_quality/v1.csv", "item_id,score\nmilk,3.5\n")
    import_model_scores(settings.model_score_settings())
    upload(s3, "item_quality/v2.csv", bad_file)

    assert import_model_scores(settings.model_score_settings()) == []
    assert scores(db, "item_quality") == {("", "milk"): 3.5}


def test_the_scheduled_run_imports_after_recomputing(s3, db: psycopg.Connection) -> None:
    upload(s3, "picked_for_you/a.csv", "user_id,item_id,score\nuser-1,milk,0.9\n")

    result = recompute.lambda_handler({"mode": "incremental"}, LambdaContext(function_name="recompute_scores"))

    assert result["status"] == "completed"
    assert result["models_imported"] == ["picked_for_you"]
