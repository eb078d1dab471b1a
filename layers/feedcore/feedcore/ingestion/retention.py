"""Retention of the event log: whole monthly partitions are dropped once they are old enough."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from feedcore.db import events as events_db
from feedcore.db import feed as feed_db
from feedcore.db.connection import run
from feedcore.observability import logger
from feedcore.settings import ingest_settings


class RetentionRequest(BaseModel):
    """What the daily retention schedule asks for (template.yaml, EventRetentionDays)."""

    model_config = ConfigDict(extra="forbid")

    keep_days: int = Field(gt=0)


def apply_retention(keep_days: int, *, now: datetime | None = None) -> list[str]:
    """Drop the event partitions that end more than `keep_days` ago, and the records of feeds served before
    then; returns the partitions' names.

    `keep_days` must exceed the late-event horizon: a retried event older than the kept data would
    otherwise no longer be recognized as a duplicate.
    """
    horizon = ingest_settings().late_event_horizon_days
    if keep_days <= horizon:
        raise ValueError(f"keep-days must exceed the late-event horizon ({horizon} days)")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    dropped = run(lambda conn: events_db.drop_partitions_before(conn, cutoff))
    run(lambda conn: feed_db.delete_feeds_before(conn, cutoff))
    logger.info("event retention applied", extra={"keep_days": keep_days, "dropped": dropped})
    return dropped
