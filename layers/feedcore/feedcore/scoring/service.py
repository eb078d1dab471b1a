"""Recompute the score tables from the event log, one run at a time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict

from feedcore.db import scores as scores_db
from feedcore.db.connection import transaction
from feedcore.observability import logger, metrics
from feedcore.settings import scoring_settings


class RecomputeRequest(BaseModel):
    """What the scheduler asks for. Only the full rebuild exists so far."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["full"] = "full"


class RecomputeResult(BaseModel):
    status: Literal["completed", "skipped"]
    mode: str
    run_id: int | None = None
    events_scored: int = 0
    popularity_rows: int = 0
    affinity_rows: int = 0
    duration_ms: float = 0.0


def recompute_scores(request: RecomputeRequest, now: datetime | None = None) -> RecomputeResult:
    """Rebuild popularity and affinity as of `now` (default: the current time) in one transaction.

    A run that finds another one in progress skips rather than waits: the schedule will come again.
    """
    started_at = datetime.now(UTC)
    as_of = now or started_at
    with transaction() as conn:
        if not scores_db.try_lock_recompute(conn):
            logger.warning("another recompute is running; skipping this one")
            metrics.add_metric(name="RecomputeSkipped", unit=MetricUnit.Count, value=1)
            return RecomputeResult(status="skipped", mode=request.mode)
        counts = scores_db.rebuild_scores(conn, scoring_settings(), as_of)
        finished_at = datetime.now(UTC)
        run_id = scores_db.record_run(conn, request.mode, started_at, finished_at, counts)
    duration_ms = (finished_at - started_at).total_seconds() * 1000
    metrics.add_metric(name="RecomputeDuration", unit=MetricUnit.Milliseconds, value=duration_ms)
    metrics.add_metric(name="EventsScored", unit=MetricUnit.Count, value=counts.events_scored)
    result = RecomputeResult(
        status="completed",
        mode=request.mode,
        run_id=run_id,
        events_scored=counts.events_scored,
        popularity_rows=counts.popularity_rows,
        affinity_rows=counts.affinity_rows,
        duration_ms=round(duration_ms, 1),
    )
    logger.info("scores recomputed", extra=result.model_dump())
    return result
