"""Assemble a user's feed at a store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from time import perf_counter

from aws_lambda_powertools.metrics import MetricUnit

from feedcore.api.models import Feed
from feedcore.db import feed as feed_db
from feedcore.db.connection import run
from feedcore.feed.sections import SECTIONS, select_sections
from feedcore.observability import logger, metrics

# Candidates read per source for each item shown, so items removed on the page still leave enough.
CANDIDATES_PER_SLOT = 3


def assemble_feed(user_id: str, store_id: str, section_size: int) -> Feed:
    """The user's feed at the store: its sections in order, each at most `section_size` items."""
    started = perf_counter()
    per_source = section_size * CANDIDATES_PER_SLOT
    # One read statement: no transaction needed, so one round trip.
    candidates = run(lambda conn: feed_db.feed_candidates(conn, user_id, store_id, per_source), in_transaction=False)
    sections = select_sections(candidates, SECTIONS, section_size)
    feed = Feed(
        feed_id=uuid.uuid4().hex,
        user_id=user_id,
        store_id=store_id,
        generated_at=datetime.now(UTC),
        sections=sections,
    )
    metrics.add_metric(name="FeedLatency", unit=MetricUnit.Milliseconds, value=(perf_counter() - started) * 1000)
    metrics.add_metric(name="FeedItems", unit=MetricUnit.Count, value=sum(len(s.items) for s in sections))
    logger.info(
        "feed assembled",
        extra={"feed_id": feed.feed_id, "sections": {s.id: len(s.items) for s in sections}},
    )
    return feed
