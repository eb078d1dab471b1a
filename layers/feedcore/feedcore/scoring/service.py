"""Recompute the score tables from the event log, one run at a time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import psycopg
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict

from feedcore.db import events as events_db
from feedcore.db import scores as scores_db
from feedcore.db.connection import run
from feedcore.observability import logger, metrics
from feedcore.settings import scoring_settings

# A run given less time than this would time out anyway; let it try.
MIN_STATEMENT_TIMEOUT_MS = 1_000


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


def run_timeout_ms(configured_ms: int, time_budget_ms: int | None) -> int:
    """The statement timeout of a run: the configured one, or less when the invocation has less time left."""
    if time_budget_ms is None:
        return configured_ms
    return max(MIN_STATEMENT_TIMEOUT_MS, min(configured_ms, time_budget_ms))


def recompute_scores(
    request: RecomputeRequest, *, now: datetime | None = None, time_budget_ms: int | None = None
) -> RecomputeResult:
    """Rebuild popularity and affinity as of `now` (default: the current time) in one transaction.

    `time_budget_ms` (e.g. the Lambda's remaining time less a margin) caps every statement, so a run
    never outlives its invocation holding the lock. A run that finds another one in progress skips rather
    than waits: the schedule will come again.
    """
    settings = scoring_settings()
    timeout_ms = run_timeout_ms(settings.recompute_statement_timeout_ms, time_budget_ms)
    started_at = datetime.now(UTC)
    as_of = now or started_at

    def rebuild(conn: psycopg.Connection) -> RecomputeResult:
        if not scores_db.try_lock_recompute(conn, timeout_ms):
            return RecomputeResult(status="skipped", mode=request.mode)
        counts = scores_db.rebuild_scores(conn, settings, as_of)
        finished_at = datetime.now(UTC)
        run_id = scores_db.record_run(conn, request.mode, started_at, finished_at, counts)
        return RecomputeResult(
            status="completed",
            mode=request.mode,
            run_id=run_id,
            events_scored=counts.events_scored,
            popularity_rows=counts.popularity_rows,
            affinity_rows=counts.affinity_rows,
            duration_ms=round((finished_at - started_at).total_seconds() * 1000, 1),
        )

    # Next month's event partition is made here, ahead of time, rather than by the first event of the month.
    this_month = events_db.month_of(as_of)
    run(
        lambda conn: events_db.ensure_event_partitions(conn, {this_month, events_db.next_month(this_month)}),
        in_transaction=False,
    )
    result = run(rebuild)
    if result.status == "skipped":
        logger.warning("another recompute is running; skipping this one")
        metrics.add_metric(name="RecomputeSkipped", unit=MetricUnit.Count, value=1)
        return result
    metrics.add_metric(name="RecomputeDuration", unit=MetricUnit.Milliseconds, value=result.duration_ms)
    metrics.add_metric(name="EventsScored", unit=MetricUnit.Count, value=result.events_scored)
    logger.info("scores recomputed", extra=result.model_dump())
    return result
