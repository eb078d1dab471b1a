"""Import of externally computed model scores: the newest file of each model, swapped in atomically."""

from __future__ import annotations

import psycopg
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel

from feedcore.db import model_files
from feedcore.db import models as models_db
from feedcore.db.connection import bound_transaction, run
from feedcore.observability import logger, metrics
from feedcore.settings import ModelScoreSettings


class ModelImport(BaseModel):
    model: str
    source: str
    rows: int
    erased_user_rows: int  # rows of erased users the file still held, left out


def import_model_scores(settings: ModelScoreSettings, timeout_ms: int) -> list[ModelImport]:
    """Import every model whose newest file differs from the imported version; others stay as they are.
    Each model's swap is one transaction whose statements get `timeout_ms`.

    A file with a bad row is refused whole (the model keeps its previous version) and logged.
    """
    if not settings.model_scores_bucket:
        return []
    imported = []
    for file in model_files.newest_files(settings.model_scores_bucket, settings.model_scores_prefix):

        def swap(conn: psycopg.Connection, file: model_files.ModelFile = file) -> ModelImport | None:
            bound_transaction(conn, timeout_ms)  # a large file outlasts a request's timeout
            if models_db.current_version(conn, file.model) == (file.key, file.modified_at):
                return None
            rows = model_files.read_scores(settings.model_scores_bucket, file.key)
            replaced = models_db.replace_scores(conn, file.model, file.key, file.modified_at, rows)
            return ModelImport(
                model=file.model, source=file.key, rows=replaced.rows, erased_user_rows=replaced.erased_user_rows
            )

        try:
            result = run(swap)
        except model_files.InvalidModelFile:
            logger.exception("model file refused", extra={"model": file.model, "key": file.key})
            metrics.add_metric(name="ModelFileRefused", unit=MetricUnit.Count, value=1)
            continue
        if result is not None:
            logger.info("model scores imported", extra=result.model_dump())
            imported.append(result)
    return imported
