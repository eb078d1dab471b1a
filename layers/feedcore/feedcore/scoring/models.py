"""Import of externally computed model scores: the newest file of each model, swapped in atomically."""

from __future__ import annotations

import psycopg
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel

from feedcore.db import model_files
from feedcore.db import models as models_db
from feedcore.db.connection import bound_transaction, run
from feedcore.errors import ModelImportFailed
from feedcore.observability import logger, metrics
from feedcore.settings import ModelScoreSettings


class ModelImport(BaseModel):
    model: str
    source: str
    rows: int
    erased_user_rows: int  # rows of erased users the file still held, left out


def import_model_scores(settings: ModelScoreSettings, timeout_ms: int) -> list[ModelImport]:
    """Import every model whose newest file is neither its imported version nor the file last refused; others stay
    as they are. Each model's swap is one transaction whose statements get `timeout_ms`.

    A file with a bad row is refused whole (the model keeps its previous version), logged and remembered, so that
    it is not read again. A file written again between the listing and its read is left to the next run, which
    lists the new version (logged and counted, not a failure). Any other failure of a model (S3, the database, its
    timeout) is logged and the other models are imported; then ModelImportFailed names the failed ones, so that the
    run fails (and alarms).

    A file is known by its S3 key, LastModified and ETag: one written again within the same second (LastModified
    has whole seconds) is a new version.
    """
    if not settings.model_scores_bucket:
        return []
    imported = []
    failures: dict[str, str] = {}
    for file in model_files.newest_files(settings.model_scores_bucket, settings.model_scores_prefix):
        try:
            result = _import_model(settings.model_scores_bucket, file, timeout_ms)
        except Exception as error:  # one model's S3 read, lock wait or timeout must not keep the others out
            logger.exception("model import failed", extra={"model": file.model, "key": file.key, "etag": file.etag})
            metrics.add_metric(name="ModelImportFailed", unit=MetricUnit.Count, value=1)
            failures[file.model] = f"{type(error).__name__}: {error}"
            continue
        if result is not None:
            logger.info("model scores imported", extra=result.model_dump())
            imported.append(result)
    if failures:
        raise ModelImportFailed(failures)
    return imported


def _import_model(bucket: str, file: model_files.ModelFile, timeout_ms: int) -> ModelImport | None:
    """Swap in `file` for its model; None when it is the imported or the refused version, or is refused now."""

    def swap(conn: psycopg.Connection) -> ModelImport | None:
        bound_transaction(conn, timeout_ms)  # a large file outlasts a request's timeout
        if models_db.is_known_version(conn, file.model, file.key, file.modified_at, file.etag):
            return None
        rows = model_files.read_scores(bucket, file.key, file.etag)
        replaced = models_db.replace_scores(conn, file.model, file.key, file.modified_at, file.etag, rows)
        return ModelImport(
            model=file.model, source=file.key, rows=replaced.rows, erased_user_rows=replaced.erased_user_rows
        )

    try:
        return run(swap)
    except model_files.ModelFileReplaced:
        logger.warning("model file written again since it was listed; the next run imports it",
                       extra={"model": file.model, "key": file.key, "etag": file.etag})  # fmt: skip
        metrics.add_metric(name="ModelFileReplaced", unit=MetricUnit.Count, value=1)
        return None
    except model_files.InvalidModelFile:
        logger.exception("model file refused", extra={"model": file.model, "key": file.key, "etag": file.etag})
        metrics.add_metric(name="ModelFileRefused", unit=MetricUnit.Count, value=1)
        run(lambda conn: models_db.remember_refusal(conn, file.model, file.key, file.modified_at, file.etag))
        return None
